-- Jobs: the kinds a worker can run, the jobs themselves, their append-only
-- event log and the dead-letter queue; then the state machine that drives
-- them, the functions workers and operators call, and requeue out of the DLQ.
-- Nobody but those SECURITY DEFINER functions writes these tables: no role
-- holds INSERT, UPDATE or DELETE on jobs, job_events or job_dead_letters.
-- Job outputs (public.artifacts) are the artifacts migration's.

create table public.job_kinds (
  kind text primary key check (kind ~ '^[a-z][a-z0-9_.:-]{0,63}$'),
  description text not null default '' check (length(description) <= 1000),
  -- Defaults for jobs of this kind that do not set their own.
  max_attempts integer not null default 5 check (max_attempts between 1 and 100),
  timeout_seconds integer not null default 300 check (timeout_seconds between 1 and 86400),
  -- Retry delay after attempt n: min(cap, base * 2^(n-1)), then jittered to 50-100%.
  backoff_base_seconds numeric not null default 1 check (backoff_base_seconds > 0 and backoff_base_seconds <= 3600),
  backoff_cap_seconds numeric not null default 3600 check (backoff_cap_seconds > 0 and backoff_cap_seconds <= 86400),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (backoff_cap_seconds >= backoff_base_seconds)
);
comment on table public.job_kinds is 'The kinds of job a worker can run, with their default attempts, timeout and retry backoff; jobs of unknown kinds are refused.';

create table public.jobs (
  id uuid primary key default gen_random_uuid(),
  -- Null for the project's own maintenance jobs; otherwise the owning tenant.
  tenant_id uuid references public.tenants (id),
  kind text not null check (kind ~ '^[a-z][a-z0-9_.:-]{0,63}$'),
  payload jsonb not null default '{}'::jsonb,
  status text not null default 'queued'
    check (status in ('queued', 'assigned', 'succeeded', 'retry_scheduled', 'failed_dlq', 'cancelled')),
  -- Lower numbers are claimed first.
  priority integer not null default 0 check (priority between -32768 and 32767),
  run_at timestamptz not null default now(),
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null check (max_attempts between 1 and 100),
  timeout_seconds integer not null check (timeout_seconds between 1 and 86400),
  -- Held only while assigned: the token a worker must present to heartbeat,
  -- complete or fail the job, and when the lease runs out.
  lease_token uuid,
  lease_expires_at timestamptz,
  -- The worker that holds (or last held) the job.
  worker text check (length(worker) between 1 and 200),
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  last_error text,
  result jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint jobs_lease_iff_assigned check ((status = 'assigned') = (lease_token is not null)),
  constraint jobs_lease_complete check ((lease_token is null) = (lease_expires_at is null)),
  constraint jobs_attempts_within_max check (attempts <= max_attempts)
);
comment on table public.jobs is 'Background jobs: kind, payload, status (queued, assigned, succeeded, retry_scheduled, failed_dlq, cancelled), lease and attempts. Changed only through the job functions.';
-- Serves the tenant foreign key and "a tenant's jobs, newest first".
create index jobs_tenant_id_created_at_idx on public.jobs (tenant_id, created_at desc);
-- claim_jobs: due jobs by priority then run_at. Partial, so a claimed or
-- finished job leaves the index and claims scan only what is claimable.
create index jobs_claimable_idx on public.jobs (priority, run_at) where status in ('queued', 'retry_scheduled');
-- reap_expired_jobs: leases of assigned jobs only.
create index jobs_lease_expiry_idx on public.jobs (lease_expires_at) where status = 'assigned';
-- enqueue_job idempotency: one job per (tenant, key); maintenance jobs share the nil tenant.
create unique index jobs_idempotency_idx
  on public.jobs ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
  where idempotency_key is not null;

-- job_events grows with every transition, so it is range-partitioned by month
-- (at), like usage_records: retention drops a month whose jobs are all
-- finished. Partitions live in schema private (public.create_partitions_ahead
-- in schedules_and_retention); a default partition takes rows outside them.
create table public.job_events (
  id bigint generated always as identity,
  job_id uuid not null references public.jobs (id),
  -- Copied from the job, so the read policy needs no join.
  tenant_id uuid,
  -- The to_status, except for an operator's requeue out of the DLQ: 'requeued'.
  event text not null
    check (event in ('queued', 'assigned', 'succeeded', 'retry_scheduled', 'failed_dlq', 'requeued', 'cancelled')),
  from_status text,
  to_status text not null,
  attempt integer not null,
  worker text,
  details jsonb not null default '{}'::jsonb,
  at timestamptz not null default now(),
  primary key (id, at)
) partition by range (at);
comment on table public.job_events is 'Append-only log of every job status transition, one row per transition, written by a trigger in the same transaction; UPDATE and DELETE are refused to every role.';
create index job_events_job_id_idx on public.job_events (job_id, id);

create table public.job_dead_letters (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.jobs (id),
  tenant_id uuid references public.tenants (id),
  kind text not null,
  -- The payload as it was when the job was dead-lettered.
  payload jsonb not null,
  last_error text,
  attempts integer not null,
  failed_at timestamptz not null default now(),
  -- Set once, when an operator requeues the job (same job id) out of the DLQ.
  requeued_at timestamptz,
  requeued_by text check (length(requeued_by) between 1 and 200),
  requeue_reason text check (length(requeue_reason) between 1 and 1000),
  requeue_request_key text check (length(requeue_request_key) between 1 and 255),
  constraint job_dead_letters_requeue_audited check (
    (requeued_at is null) = (requeued_by is null) and (requeued_at is null) = (requeue_reason is null)
  )
);
comment on table public.job_dead_letters is 'One row each time a job enters failed_dlq: what failed and why, and who requeued it, when and why.';
create index job_dead_letters_job_id_idx on public.job_dead_letters (job_id, failed_at desc);
-- A job has at most one dead letter waiting for an operator.
create unique index job_dead_letters_pending_idx on public.job_dead_letters (job_id) where requeued_at is null;
-- dlq-list: newest first, per tenant or across tenants (keyset on failed_at, id).
create index job_dead_letters_tenant_listing_idx on public.job_dead_letters (tenant_id, failed_at desc, id desc);
create index job_dead_letters_listing_idx on public.job_dead_letters (failed_at desc, id desc);

alter table public.job_kinds enable row level security;
alter table public.jobs enable row level security;
alter table public.job_events enable row level security;
alter table public.job_dead_letters enable row level security;

-- Supabase grants everything on new public tables to anon, authenticated and
-- service_role: take it all back, then grant reads only. Writes happen in the
-- job functions (SECURITY DEFINER), where the state machine is enforced.
revoke all on table public.job_kinds, public.jobs, public.job_events, public.job_dead_letters
  from anon, authenticated, service_role;
revoke all on sequence public.job_events_id_seq from anon, authenticated, service_role;
grant select on table public.job_kinds, public.jobs, public.job_events, public.job_dead_letters
  to authenticated, service_role;

create policy "Signed-in users can read the job kinds"
  on public.job_kinds for select to authenticated
  using (true);

create policy "Members can read their tenant's jobs"
  on public.jobs for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

create policy "Members can read their tenant's job events"
  on public.job_events for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

create policy "Operators and admins can read their tenant's dead letters"
  on public.job_dead_letters for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user(array['operator', 'admin'])));

-- The job state machine, in one place: private.job_transitions lists every
-- allowed status change and the one operation (job function) that may make
-- it. A statement-level trigger on public.jobs checks every change of status
-- against it, raises on anything else, and writes exactly one job_events row
-- per transition in the same statement; a job entering failed_dlq gets its
-- dead-letter row there too. No code path can skip either.
--
-- The job functions name their operation with a function-level
-- `set switchyard.job_operation = '<operation>'`: it holds for the duration
-- of the call and is restored on return, so a status change made outside
-- those functions has no operation and is refused. That is how "only
-- complete_job reaches succeeded" is enforced.

create table private.job_transitions (
  -- null: the job is being created.
  from_status text check (from_status in ('queued', 'assigned', 'succeeded', 'retry_scheduled', 'failed_dlq', 'cancelled')),
  to_status text not null check (to_status in ('queued', 'assigned', 'succeeded', 'retry_scheduled', 'failed_dlq', 'cancelled')),
  operation text not null check (operation in ('enqueue', 'claim', 'complete', 'fail', 'reap', 'skip', 'cancel', 'requeue')),
  -- What job_events.event records for this transition.
  event text not null,
  constraint job_transitions_unique unique nulls not distinct (from_status, to_status, operation)
);
comment on table private.job_transitions is 'Every allowed job status transition and the job function (operation) that may perform it; anything else raises.';

insert into private.job_transitions (from_status, to_status, operation, event) values
  (null, 'queued', 'enqueue', 'queued'),
  ('queued', 'assigned', 'claim', 'assigned'),
  ('retry_scheduled', 'assigned', 'claim', 'assigned'),
  ('assigned', 'succeeded', 'complete', 'succeeded'),
  ('assigned', 'retry_scheduled', 'fail', 'retry_scheduled'),
  ('assigned', 'failed_dlq', 'fail', 'failed_dlq'),
  ('assigned', 'retry_scheduled', 'reap', 'retry_scheduled'),
  ('assigned', 'failed_dlq', 'reap', 'failed_dlq'),
  ('assigned', 'cancelled', 'skip', 'cancelled'),
  ('queued', 'cancelled', 'cancel', 'cancelled'),
  ('retry_scheduled', 'cancelled', 'cancel', 'cancelled'),
  ('failed_dlq', 'queued', 'requeue', 'requeued');

revoke all on table private.job_transitions from public, anon, authenticated;
grant select on table private.job_transitions to service_role;

-- Checks a statement's status changes and records them. Statement-level with
-- transition tables, so a batch claim or completion of n jobs costs one
-- check and one multi-row insert, not n trigger calls.
create function private.record_job_transitions()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_operation text := nullif(pg_catalog.current_setting('switchyard.job_operation', true), '');
  v_details jsonb := coalesce(nullif(pg_catalog.current_setting('switchyard.job_event_details', true), '')::jsonb, '{}'::jsonb);
  v_bad record;
begin
  if tg_op = 'INSERT' then
    select n.id, n.status into v_bad
    from new_rows n
    where not exists (
      select 1 from private.job_transitions t
      where t.from_status is null and t.to_status = n.status and t.operation = v_operation)
    limit 1;
    if found then
      raise exception 'illegal job transition: job % cannot be created as % (jobs are created queued, by enqueue_job)',
        v_bad.id, v_bad.status
        using errcode = 'SYJ01';
    end if;
    insert into public.job_events (job_id, tenant_id, event, from_status, to_status, attempt, worker, details)
    select n.id, n.tenant_id, 'queued', null, n.status, n.attempts, null, v_details
    from new_rows n;
    return null;
  end if;

  -- UPDATE: every row whose status changed must match an allowed transition
  -- for the current operation. Rows whose status did not change (heartbeats)
  -- are not transitions and record nothing.
  select o.id, o.status as from_status, n.status as to_status,
         (select pg_catalog.string_agg(t.operation, ', ' order by t.operation)
          from private.job_transitions t where t.from_status = o.status and t.to_status = n.status) as operations
  into v_bad
  from old_rows o
  join new_rows n on n.id = o.id
  where n.status is distinct from o.status
    and not exists (
      select 1 from private.job_transitions t
      where t.from_status = o.status and t.to_status = n.status and t.operation = v_operation)
  limit 1;
  if found then
    if v_bad.operations is null then
      raise exception 'illegal job transition % -> % (job %)', v_bad.from_status, v_bad.to_status, v_bad.id
        using errcode = 'SYJ01';
    end if;
    raise exception 'job transition % -> % (job %) is made only by the job function(s) for: %',
      v_bad.from_status, v_bad.to_status, v_bad.id, v_bad.operations
      using errcode = 'SYJ01';
  end if;
  -- A statement that changed a job's id would pair no old row with its new one.
  if (select count(*) from old_rows) <> (select count(*) from old_rows o join new_rows n on n.id = o.id) then
    raise exception 'a job''s id cannot change' using errcode = 'SYJ01';
  end if;

  insert into public.job_events (job_id, tenant_id, event, from_status, to_status, attempt, worker, details)
  select n.id, n.tenant_id, t.event, o.status, n.status,
         case when t.event = 'requeued' then o.attempts else n.attempts end,
         coalesce(n.worker, o.worker),
         v_details || case
           when n.status = 'assigned' then pg_catalog.jsonb_build_object('lease_expires_at', n.lease_expires_at)
           when n.status = 'retry_scheduled' then pg_catalog.jsonb_build_object('error', n.last_error, 'run_at', n.run_at)
           when n.status = 'failed_dlq' then pg_catalog.jsonb_build_object('error', n.last_error)
           else '{}'::jsonb
         end
  from old_rows o
  join new_rows n on n.id = o.id
  join private.job_transitions t
    on t.from_status = o.status and t.to_status = n.status and t.operation = v_operation
  where n.status is distinct from o.status
  order by n.id;

  insert into public.job_dead_letters (job_id, tenant_id, kind, payload, last_error, attempts)
  select n.id, n.tenant_id, n.kind, n.payload, n.last_error, n.attempts
  from old_rows o
  join new_rows n on n.id = o.id
  where n.status = 'failed_dlq' and o.status is distinct from 'failed_dlq';
  return null;
end
$$;
comment on function private.record_job_transitions() is 'Trigger: refuses job status changes not in private.job_transitions for the current operation; writes one job_events row per transition and a dead letter per entry into failed_dlq.';
revoke execute on function private.record_job_transitions() from public, anon, authenticated, service_role;

create trigger jobs_record_insert
  after insert on public.jobs
  referencing new table as new_rows
  for each statement execute function private.record_job_transitions();

create trigger jobs_record_transitions
  after update on public.jobs
  referencing old table as old_rows new table as new_rows
  for each statement execute function private.record_job_transitions();

-- job_events is append-only for every role, the table owner included (other
-- roles hold no UPDATE or DELETE privilege in the first place), except DELETE
-- inside public.purge_job_events (retention), which sets
-- switchyard.job_events_purge for its own call only (a function-level SET,
-- restored on return).
create function private.refuse_job_event_changes()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and pg_catalog.current_setting('switchyard.job_events_purge', true) = 'on' then
    return null;
  end if;
  raise exception 'job_events is append-only: % is not allowed', lower(tg_op)
    using errcode = 'SYJ06';
end
$$;
revoke execute on function private.refuse_job_event_changes() from public, anon, authenticated, service_role;

create trigger job_events_append_only
  before update or delete or truncate on public.job_events
  for each statement execute function private.refuse_job_event_changes();

-- The job functions: the public API for workers and the service, executable
-- by service_role only. Each names its operation (see the state machine
-- above) with a function-level SET, which is restored when it returns.
--
-- Leases: claim_jobs hands each job a fresh lease_token. heartbeat_job,
-- complete_job, fail_job and skip_job act only while the job is assigned
-- with that very token; otherwise they raise SYJ02 and change nothing. A
-- lease that has run out still belongs to its worker until the reaper takes
-- it (the reaper and the worker race on the row lock; exactly one wins).
--
-- Errors raised here carry SQLSTATEs the worker library and the API map:
--   SYJ01 illegal transition (state machine), SYJ02 lease not held,
--   SYJ03 job not found, SYJ04 unknown job kind, SYJ05 job not cancellable,
--   SYJ06 job_events is append-only, SYJ07 idempotency key reused,
--   22023 invalid argument (names the parameter).

-- Registers a kind or updates its defaults.
create function public.register_job_kind(
  kind text,
  description text default '',
  max_attempts integer default 5,
  timeout_seconds integer default 300,
  backoff_base_seconds numeric default 1,
  backoff_cap_seconds numeric default 3600
)
returns void
language sql
security definer
set search_path = ''
as $$
  insert into public.job_kinds as k (kind, description, max_attempts, timeout_seconds, backoff_base_seconds, backoff_cap_seconds)
  values (register_job_kind.kind, coalesce(register_job_kind.description, ''), register_job_kind.max_attempts,
          register_job_kind.timeout_seconds, register_job_kind.backoff_base_seconds, register_job_kind.backoff_cap_seconds)
  on conflict on constraint job_kinds_pkey do update
    set description = excluded.description, max_attempts = excluded.max_attempts,
        timeout_seconds = excluded.timeout_seconds, backoff_base_seconds = excluded.backoff_base_seconds,
        backoff_cap_seconds = excluded.backoff_cap_seconds, updated_at = pg_catalog.now()
$$;
comment on function public.register_job_kind(text, text, integer, integer, numeric, numeric) is 'Registers a job kind (or updates its defaults); jobs of unregistered kinds are refused.';

-- The delay before retrying after attempt n of a job of this kind:
-- exponential, capped, with "equal jitter" (50-100% of the capped delay).
create function private.job_retry_delay(p_kind text, p_attempt integer)
returns interval
language sql
volatile
set search_path = ''
as $$
  select pg_catalog.make_interval(secs => (capped * (0.5 + pg_catalog.random() * 0.5))::double precision)
  from (
    select coalesce((
      select least(k.backoff_cap_seconds, k.backoff_base_seconds * power(2::numeric, least(greatest(p_attempt - 1, 0), 60)))
      from public.job_kinds k
      where k.kind = p_kind
    ), 1::numeric) as capped
  ) d
$$;
comment on function private.job_retry_delay(text, integer) is 'Retry delay after attempt n: min(cap, base * 2^(n-1)) of the job kind, jittered to 50-100%.';

-- Raises the right error for a job that was not (or no longer) assigned
-- under this lease token. Never shows the current token.
create function private.raise_job_lease_error(p_job_id uuid, p_lease_token uuid, p_action text)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_status text;
  v_token uuid;
begin
  select j.status, j.lease_token into v_status, v_token from public.jobs j where j.id = p_job_id;
  if not found then
    raise exception 'job % not found', p_job_id using errcode = 'SYJ03';
  end if;
  if v_status <> 'assigned' then
    raise exception 'cannot % job %: its lease is no longer held (the job is %; it was finished, reaped or cancelled)',
      p_action, p_job_id, v_status
      using errcode = 'SYJ02';
  end if;
  raise exception 'cannot % job %: lease token % does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)',
    p_action, p_job_id, coalesce(p_lease_token::text, 'null')
    using errcode = 'SYJ02';
end
$$;
revoke execute on function private.raise_job_lease_error(uuid, uuid, text) from public, anon, authenticated, service_role;
revoke execute on function private.job_retry_delay(text, integer) from public, anon, authenticated, service_role;

-- Enqueues a job; the same (tenant_id, idempotency_key) with the same request
-- returns the existing job's id and creates nothing, with another request
-- raises SYJ07.
create function public.enqueue_job(
  kind text,
  payload jsonb,
  tenant_id uuid default null,
  run_at timestamptz default null,
  priority integer default 0,
  max_attempts integer default null,
  idempotency_key text default null,
  timeout_seconds integer default null
)
returns uuid
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'enqueue'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
declare
  v_kind public.job_kinds;
  v_id uuid;
begin
  select k.* into v_kind from public.job_kinds k where k.kind = enqueue_job.kind;
  if not found then
    raise exception 'unknown job kind "%"', enqueue_job.kind using errcode = 'SYJ04';
  end if;
  if coalesce(enqueue_job.priority, 0) not between -32768 and 32767 then
    raise exception 'priority: must be between -32768 and 32767' using errcode = '22023';
  end if;
  if enqueue_job.max_attempts is not null and enqueue_job.max_attempts not between 1 and 100 then
    raise exception 'max_attempts: must be between 1 and 100' using errcode = '22023';
  end if;
  if enqueue_job.timeout_seconds is not null and enqueue_job.timeout_seconds not between 1 and 86400 then
    raise exception 'timeout_seconds: must be between 1 and 86400' using errcode = '22023';
  end if;
  if enqueue_job.idempotency_key is not null and length(enqueue_job.idempotency_key) not between 1 and 255 then
    raise exception 'idempotency_key: must be 1 to 255 characters' using errcode = '22023';
  end if;

  insert into public.jobs as j (tenant_id, kind, payload, priority, run_at, max_attempts, timeout_seconds, idempotency_key)
  values (enqueue_job.tenant_id, enqueue_job.kind, coalesce(enqueue_job.payload, '{}'::jsonb), coalesce(enqueue_job.priority, 0),
          coalesce(enqueue_job.run_at, pg_catalog.now()), coalesce(enqueue_job.max_attempts, v_kind.max_attempts),
          coalesce(enqueue_job.timeout_seconds, v_kind.timeout_seconds), enqueue_job.idempotency_key)
  on conflict ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
    where idempotency_key is not null
    do nothing
  returning j.id into v_id;
  if v_id is null then
    -- The key names one request: a replay must ask for the same job, or it is refused.
    select j.id into v_id from public.jobs j
    where coalesce(j.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)
            = coalesce(enqueue_job.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)
      and j.idempotency_key = enqueue_job.idempotency_key
      and j.kind = enqueue_job.kind
      and j.payload = coalesce(enqueue_job.payload, '{}'::jsonb)
      and j.priority = coalesce(enqueue_job.priority, 0)
      and (enqueue_job.max_attempts is null or j.max_attempts = enqueue_job.max_attempts)
      and (enqueue_job.timeout_seconds is null or j.timeout_seconds = enqueue_job.timeout_seconds)
      and (enqueue_job.run_at is null or j.run_at = enqueue_job.run_at);
    if v_id is null then
      raise exception 'idempotency key "%" was already used for a different job', enqueue_job.idempotency_key
        using errcode = 'SYJ07';
    end if;
  end if;
  return v_id;
end
$$;
comment on function public.enqueue_job(text, jsonb, uuid, timestamptz, integer, integer, text, integer) is 'Enqueues a job (status queued); an existing (tenant_id, idempotency_key) returns that job''s id instead when the request is the same, else raises SYJ07.';

-- Enqueues many jobs in one statement: jobs is a JSON array of objects with
-- the enqueue_job parameters as keys (kind and payload required). Returns the
-- job ids in input order; idempotency keys behave as in enqueue_job.
create function public.enqueue_jobs(jobs jsonb)
returns table (ordinality bigint, id uuid)
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'enqueue'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
begin
  if pg_catalog.jsonb_typeof(enqueue_jobs.jobs) is distinct from 'array' then
    raise exception 'jobs: must be a JSON array' using errcode = '22023';
  end if;
  if exists (
    select 1 from pg_catalog.jsonb_array_elements(enqueue_jobs.jobs) e(item)
    where not exists (select 1 from public.job_kinds k where k.kind = e.item ->> 'kind')
  ) then
    raise exception 'unknown job kind "%"', (
      select e.item ->> 'kind' from pg_catalog.jsonb_array_elements(enqueue_jobs.jobs) e(item)
      where not exists (select 1 from public.job_kinds k where k.kind = e.item ->> 'kind') limit 1)
      using errcode = 'SYJ04';
  end if;

  return query
  with input as (
    select x.ordinality, x.item, gen_random_uuid() as new_id,
           (x.item ->> 'tenant_id')::uuid as item_tenant_id, x.item ->> 'idempotency_key' as item_key,
           k.max_attempts as kind_max_attempts, k.timeout_seconds as kind_timeout_seconds
    from pg_catalog.jsonb_array_elements(enqueue_jobs.jobs) with ordinality as x(item, ordinality)
    join public.job_kinds k on k.kind = x.item ->> 'kind'
  ),
  inserted as (
    insert into public.jobs as j (id, tenant_id, kind, payload, priority, run_at, max_attempts, timeout_seconds, idempotency_key)
    select i.new_id, i.item_tenant_id, i.item ->> 'kind', coalesce(i.item -> 'payload', '{}'::jsonb),
           coalesce((i.item ->> 'priority')::integer, 0), coalesce((i.item ->> 'run_at')::timestamptz, pg_catalog.now()),
           coalesce((i.item ->> 'max_attempts')::integer, i.kind_max_attempts),
           coalesce((i.item ->> 'timeout_seconds')::integer, i.kind_timeout_seconds), i.item_key
    from input i
    order by i.ordinality
    on conflict ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
      where idempotency_key is not null
      do nothing
    returning j.id, j.tenant_id, j.idempotency_key
  )
  select i.ordinality,
         coalesce(
           (select ins.id from inserted ins where ins.id = i.new_id),
           -- The same key twice in this batch: the first one's job.
           (select ins.id from inserted ins
            where i.item_key is not null and ins.idempotency_key = i.item_key
              and ins.tenant_id is not distinct from i.item_tenant_id),
           -- A job enqueued before with this key.
           (select j.id from public.jobs j
            where i.item_key is not null
              and coalesce(j.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)
                  = coalesce(i.item_tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)
              and j.idempotency_key = i.item_key))
  from input i
  order by i.ordinality;
end
$$;
comment on function public.enqueue_jobs(jsonb) is 'Enqueues a JSON array of jobs in one statement; returns (ordinality, id) in input order.';

-- Claims up to batch_size due jobs of the given kinds (all kinds when null),
-- by priority then run_at, skipping jobs other workers hold locked; each gets
-- a fresh lease token valid for lease_seconds.
create function public.claim_jobs(
  worker text,
  kinds text[] default null,
  batch_size integer default 10,
  lease_seconds integer default 30
)
returns table (
  id uuid,
  kind text,
  payload jsonb,
  attempt integer,
  lease_token uuid,
  lease_expires_at timestamptz,
  timeout_seconds integer,
  max_attempts integer,
  tenant_id uuid
)
language sql
security definer
set search_path = ''
set switchyard.job_operation = 'claim'
set switchyard.job_event_details = ''
as $$
  -- The ids go through an array so that the update finds its rows by primary
  -- key; joining a CTE lets the planner pick a scan of the whole table.
  update public.jobs j
  set status = 'assigned',
      attempts = j.attempts + 1,
      lease_token = gen_random_uuid(),
      lease_expires_at = pg_catalog.now()
        + pg_catalog.make_interval(secs => greatest(1, least(coalesce(claim_jobs.lease_seconds, 30), 3600))),
      worker = coalesce(nullif(claim_jobs.worker, ''), 'unnamed'),
      updated_at = pg_catalog.now()
  where j.id = any (array(
    select c.id
    from public.jobs c
    where c.status in ('queued', 'retry_scheduled')
      and c.run_at <= pg_catalog.now()
      and (claim_jobs.kinds is null or c.kind = any (claim_jobs.kinds))
    order by c.priority, c.run_at
    limit greatest(1, least(coalesce(claim_jobs.batch_size, 10), 1000))
    for update skip locked
  ))
  returning j.id, j.kind, j.payload, j.attempts, j.lease_token, j.lease_expires_at, j.timeout_seconds, j.max_attempts, j.tenant_id
$$;
comment on function public.claim_jobs(text, text[], integer, integer) is 'Claims due jobs (FOR UPDATE SKIP LOCKED, by priority then run_at) and leases them to the worker.';

-- Extends a lease; returns the new expiry. The lease never shrinks.
create function public.heartbeat_job(id uuid, lease_token uuid, extend_seconds integer default 30)
returns timestamptz
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_expires timestamptz;
begin
  update public.jobs j
  set lease_expires_at = greatest(j.lease_expires_at,
        pg_catalog.now() + pg_catalog.make_interval(secs => greatest(1, least(coalesce(heartbeat_job.extend_seconds, 30), 3600)))),
      updated_at = pg_catalog.now()
  where j.id = heartbeat_job.id and j.status = 'assigned' and j.lease_token = heartbeat_job.lease_token
  returning j.lease_expires_at into v_expires;
  if v_expires is null then
    perform private.raise_job_lease_error(heartbeat_job.id, heartbeat_job.lease_token, 'heartbeat');
  end if;
  return v_expires;
end
$$;
comment on function public.heartbeat_job(uuid, uuid, integer) is 'Extends the lease of an assigned job held under this token; raises SYJ02 otherwise.';

-- The only way to succeeded: the worker holding the lease says so.
create function public.complete_job(id uuid, lease_token uuid, result jsonb default null)
returns void
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'complete'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
begin
  update public.jobs j
  set status = 'succeeded', result = complete_job.result, lease_token = null, lease_expires_at = null,
      updated_at = pg_catalog.now()
  where j.id = complete_job.id and j.status = 'assigned' and j.lease_token = complete_job.lease_token;
  if not found then
    perform private.raise_job_lease_error(complete_job.id, complete_job.lease_token, 'complete');
  end if;
end
$$;
comment on function public.complete_job(uuid, uuid, jsonb) is 'Marks an assigned job succeeded, if the lease token is current; raises SYJ02 otherwise and changes nothing.';

-- Completes many jobs in one statement: items is a JSON array of
-- {id, lease_token, result}. Jobs whose lease is no longer held are left
-- alone and reported as lease_lost; the others succeed.
create function public.complete_jobs(items jsonb)
returns table (id uuid, status text)
language sql
security definer
set search_path = ''
set switchyard.job_operation = 'complete'
set switchyard.job_event_details = ''
as $$
  with input as (
    select (e.item ->> 'id')::uuid as id, (e.item ->> 'lease_token')::uuid as lease_token, e.item -> 'result' as result,
           e.ordinality
    from pg_catalog.jsonb_array_elements(complete_jobs.items) with ordinality as e(item, ordinality)
  ),
  done as (
    update public.jobs j
    set status = 'succeeded', result = i.result, lease_token = null, lease_expires_at = null, updated_at = pg_catalog.now()
    from input i
    where j.id = any (array(select x.id from input x))
      and j.id = i.id and j.status = 'assigned' and j.lease_token = i.lease_token
    returning j.id
  )
  select i.id, case when d.id is null then 'lease_lost' else 'succeeded' end
  from input i left join done d on d.id = i.id
  order by i.ordinality
$$;
comment on function public.complete_jobs(jsonb) is 'Completes a JSON array of {id, lease_token, result}; reports succeeded or lease_lost per job.';

-- A failed attempt: retry_scheduled (run_at = now + backoff, or
-- retry_in_seconds when given) while attempts remain and the error is
-- retryable, else failed_dlq with a dead-letter row. Returns the new status.
create function public.fail_job(
  id uuid,
  lease_token uuid,
  error text,
  retryable boolean default true,
  retry_in_seconds integer default null
)
returns text
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'fail'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
declare
  v_status text;
begin
  perform pg_catalog.set_config('switchyard.job_event_details',
    pg_catalog.jsonb_build_object('retryable', coalesce(fail_job.retryable, true))::text, true);
  update public.jobs j
  set status = case when coalesce(fail_job.retryable, true) and j.attempts < j.max_attempts
                    then 'retry_scheduled' else 'failed_dlq' end,
      run_at = case when coalesce(fail_job.retryable, true) and j.attempts < j.max_attempts
                    then pg_catalog.now() + case
                      when fail_job.retry_in_seconds is null then private.job_retry_delay(j.kind, j.attempts)
                      else pg_catalog.make_interval(secs => greatest(0, least(fail_job.retry_in_seconds, 86400)))
                    end
                    else j.run_at end,
      last_error = left(coalesce(nullif(fail_job.error, ''), 'failed without an error message'), 10000),
      lease_token = null,
      lease_expires_at = null,
      updated_at = pg_catalog.now()
  where j.id = fail_job.id and j.status = 'assigned' and j.lease_token = fail_job.lease_token
  returning j.status into v_status;
  if v_status is null then
    perform private.raise_job_lease_error(fail_job.id, fail_job.lease_token, 'fail');
  end if;
  return v_status;
end
$$;
comment on function public.fail_job(uuid, uuid, text, boolean, integer) is 'Records a failed attempt: retry_scheduled with backoff, or failed_dlq (dead letter) when not retryable or out of attempts.';

-- The handler decided the job should not run (skip): assigned -> cancelled.
create function public.skip_job(id uuid, lease_token uuid, reason text default null)
returns void
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'skip'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
begin
  perform pg_catalog.set_config('switchyard.job_event_details',
    pg_catalog.jsonb_build_object('reason', left(skip_job.reason, 1000))::text, true);
  update public.jobs j
  set status = 'cancelled', lease_token = null, lease_expires_at = null, updated_at = pg_catalog.now()
  where j.id = skip_job.id and j.status = 'assigned' and j.lease_token = skip_job.lease_token;
  if not found then
    perform private.raise_job_lease_error(skip_job.id, skip_job.lease_token, 'skip');
  end if;
end
$$;
comment on function public.skip_job(uuid, uuid, text) is 'The worker holding the lease cancels the job (handler said skip).';

-- Jobs whose lease ran out go to retry_scheduled or failed_dlq, as a
-- retryable failure would. Locked rows (a worker finishing right now) are
-- skipped and looked at on the next run. Returns how many were reaped.
create function public.reap_expired_jobs()
returns integer
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'reap'
set switchyard.job_event_details = '{"reason":"lease_expired"}'
as $$
#variable_conflict use_column
declare
  v_count integer;
begin
  update public.jobs j
  set status = case when j.attempts < j.max_attempts then 'retry_scheduled' else 'failed_dlq' end,
      run_at = case when j.attempts < j.max_attempts
                    then pg_catalog.now() + private.job_retry_delay(j.kind, j.attempts) else j.run_at end,
      last_error = pg_catalog.format('lease expired at %s: worker %s neither finished nor heartbeated attempt %s',
                                     j.lease_expires_at, j.worker, j.attempts),
      lease_token = null,
      lease_expires_at = null,
      updated_at = pg_catalog.now()
  where j.id = any (array(
    select x.id
    from public.jobs x
    where x.status = 'assigned' and x.lease_expires_at < pg_catalog.now()
    order by x.lease_expires_at
    limit 10000
    for update skip locked
  ));
  get diagnostics v_count = row_count;
  return v_count;
end
$$;
comment on function public.reap_expired_jobs() is 'Moves jobs with an expired lease to retry_scheduled or failed_dlq; returns the count. Scheduled by pg_cron or npm run worker.';

-- Cancels a job that is waiting (queued or retry_scheduled). Cancelling a
-- cancelled job is a no-op; any other status raises SYJ05.
create function public.cancel_job(id uuid, reason text default null)
returns void
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'cancel'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
declare
  v_status text;
begin
  perform pg_catalog.set_config('switchyard.job_event_details',
    pg_catalog.jsonb_build_object('reason', left(cancel_job.reason, 1000))::text, true);
  update public.jobs j
  set status = 'cancelled', updated_at = pg_catalog.now()
  where j.id = cancel_job.id and j.status in ('queued', 'retry_scheduled');
  if found then
    return;
  end if;
  select j.status into v_status from public.jobs j where j.id = cancel_job.id;
  if not found then
    raise exception 'job % not found', cancel_job.id using errcode = 'SYJ03';
  end if;
  if v_status <> 'cancelled' then
    raise exception 'job % is %: only queued or retry_scheduled jobs can be cancelled', cancel_job.id, v_status
      using errcode = 'SYJ05';
  end if;
end
$$;
comment on function public.cancel_job(uuid, text) is 'Cancels a queued or retry_scheduled job; a cancelled job stays cancelled; other statuses raise SYJ05.';

revoke execute on function
  public.register_job_kind(text, text, integer, integer, numeric, numeric),
  public.enqueue_job(text, jsonb, uuid, timestamptz, integer, integer, text, integer),
  public.enqueue_jobs(jsonb),
  public.claim_jobs(text, text[], integer, integer),
  public.heartbeat_job(uuid, uuid, integer),
  public.complete_job(uuid, uuid, jsonb),
  public.complete_jobs(jsonb),
  public.fail_job(uuid, uuid, text, boolean, integer),
  public.skip_job(uuid, uuid, text),
  public.reap_expired_jobs(),
  public.cancel_job(uuid, text)
  from public, anon, authenticated;
grant execute on function
  public.register_job_kind(text, text, integer, integer, numeric, numeric),
  public.enqueue_job(text, jsonb, uuid, timestamptz, integer, integer, text, integer),
  public.enqueue_jobs(jsonb),
  public.claim_jobs(text, text[], integer, integer),
  public.heartbeat_job(uuid, uuid, integer),
  public.complete_job(uuid, uuid, jsonb),
  public.complete_jobs(jsonb),
  public.fail_job(uuid, uuid, text, boolean, integer),
  public.skip_job(uuid, uuid, text),
  public.reap_expired_jobs(),
  public.cancel_job(uuid, text)
  to service_role;

-- Requeue out of the dead-letter queue. The job keeps its id and its history:
-- failed_dlq -> queued is a transition like any other (event 'requeued',
-- with who, why and the request key in its details), the dead-letter row is
-- stamped requeued_at/by/reason, and attempts start again from 0 so the job
-- gets its full max_attempts (the attempts it used are in the event and the
-- dead-letter row). Requeueing a dead letter that was already requeued
-- changes nothing, whichever request key is used.

-- Answers of requeue_dead_letters per (actor, request key), so a retried
-- request gets the same answer and changes nothing.
create table private.dead_letter_requeue_requests (
  actor text not null,
  request_key text not null check (length(request_key) between 1 and 255),
  -- md5 of the request's parameters: the same key with another request is refused.
  request_hash text not null,
  response jsonb not null,
  created_at timestamptz not null default now(),
  primary key (actor, request_key)
);
comment on table private.dead_letter_requeue_requests is 'Answers of dlq-retry by (actor, Idempotency-Key), replayed when a request is retried.';
revoke all on table private.dead_letter_requeue_requests from public, anon, authenticated;
grant select on table private.dead_letter_requeue_requests to service_role;

-- Requeues one job out of the DLQ. Returns what happened:
--   requeued           the pending dead letter was requeued now
--   would_requeue      dry_run: it would have been
--   already_requeued   no dead letter is waiting (an operator requeued it), or
--                      this request key already requeued this job: no-op
--   not_dead_lettered  the job never went to the DLQ
create function public.requeue_dead_letter(
  job_id uuid,
  actor text,
  reason text,
  request_key text default null,
  dry_run boolean default false
)
returns text
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'requeue'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
declare
  v_job record;
  v_letter_id uuid;
begin
  if nullif(btrim(requeue_dead_letter.actor), '') is null or length(requeue_dead_letter.actor) > 200 then
    raise exception 'actor: required, at most 200 characters' using errcode = '22023';
  end if;
  if nullif(btrim(requeue_dead_letter.reason), '') is null or length(requeue_dead_letter.reason) > 1000 then
    raise exception 'reason: required, at most 1000 characters' using errcode = '22023';
  end if;
  if requeue_dead_letter.request_key is not null and length(requeue_dead_letter.request_key) not between 1 and 255 then
    raise exception 'request_key: must be 1 to 255 characters' using errcode = '22023';
  end if;

  -- The job row lock serializes concurrent requeues of the same job.
  select j.id, j.status, j.attempts into v_job
  from public.jobs j where j.id = requeue_dead_letter.job_id
  for update;
  if not found then
    raise exception 'job % not found', requeue_dead_letter.job_id using errcode = 'SYJ03';
  end if;

  if requeue_dead_letter.request_key is not null and exists (
    select 1 from public.job_dead_letters d
    where d.job_id = requeue_dead_letter.job_id and d.requeue_request_key = requeue_dead_letter.request_key
  ) then
    return 'already_requeued';
  end if;

  select d.id into v_letter_id
  from public.job_dead_letters d
  where d.job_id = requeue_dead_letter.job_id and d.requeued_at is null;
  if not found then
    if exists (select 1 from public.job_dead_letters d where d.job_id = requeue_dead_letter.job_id) then
      return 'already_requeued';
    end if;
    return 'not_dead_lettered';
  end if;
  if v_job.status <> 'failed_dlq' then
    raise exception 'job % has a waiting dead letter but is %', requeue_dead_letter.job_id, v_job.status
      using errcode = 'SYJ01';
  end if;
  if coalesce(requeue_dead_letter.dry_run, false) then
    return 'would_requeue';
  end if;

  update public.job_dead_letters d
  set requeued_at = pg_catalog.now(),
      requeued_by = requeue_dead_letter.actor,
      requeue_reason = requeue_dead_letter.reason,
      requeue_request_key = requeue_dead_letter.request_key
  where d.id = v_letter_id;

  perform pg_catalog.set_config('switchyard.job_event_details', pg_catalog.jsonb_build_object(
    'actor', requeue_dead_letter.actor,
    'reason', requeue_dead_letter.reason,
    'request_key', requeue_dead_letter.request_key,
    'dead_letter_id', v_letter_id,
    'previous_attempts', v_job.attempts)::text, true);
  update public.jobs j
  set status = 'queued', attempts = 0, run_at = pg_catalog.now(), lease_token = null, lease_expires_at = null,
      worker = null, updated_at = pg_catalog.now()
  where j.id = requeue_dead_letter.job_id;
  return 'requeued';
end
$$;
comment on function public.requeue_dead_letter(uuid, text, text, text, boolean) is 'Requeues a dead-lettered job (same id, attempts reset) and audits who/why; idempotent: a requeued dead letter is not requeued again.';

-- Requeues many dead letters: by job ids, or by a filter {kind, since,
-- until, error, tenant_id} (oldest first, at most max_count). tenant_id
-- restricts everything to one tenant (tenant operators); job ids outside it
-- count as not found. Answers {requeued: [job ids], skipped: [{id, reason}],
-- dry_run}; with a request key the answer is stored and a retried request
-- gets it back (replayed: true) without changing anything.
-- A signed-in user (role authenticated, as dlq-retry calls it through
-- withIdentity) must name a tenant they operate or administer, and acts as
-- user:<auth.uid()> whatever actor is passed; the service role may act on
-- any tenant or all of them.
create function public.requeue_dead_letters(
  job_ids uuid[],
  filter jsonb,
  actor text,
  reason text,
  request_key text default null,
  dry_run boolean default false,
  max_count integer default 100,
  tenant_id uuid default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_dry_run boolean := coalesce(requeue_dead_letters.dry_run, false);
  v_max integer := coalesce(requeue_dead_letters.max_count, 100);
  v_hash text;
  v_stored record;
  v_ids uuid[];
  v_missing uuid[];
  v_unknown_key text;
  v_id uuid;
  v_outcomes jsonb := '{}'::jsonb;
  v_response jsonb;
  v_actor text := requeue_dead_letters.actor;
begin
  -- The database role set by withIdentity/PostgREST, or the JWT's role: either says a user is calling.
  if pg_catalog.current_setting('role', true) = 'authenticated' or (select auth.role()) = 'authenticated' then
    if requeue_dead_letters.tenant_id is null
      or requeue_dead_letters.tenant_id not in (select private.tenant_ids_of_current_user(array['operator', 'admin'])) then
      raise exception 'you are not an operator or admin of this tenant' using errcode = '42501';
    end if;
    v_actor := 'user:' || (select auth.uid())::text;
  end if;
  if nullif(btrim(requeue_dead_letters.reason), '') is null or length(requeue_dead_letters.reason) > 1000 then
    raise exception 'reason: required, at most 1000 characters' using errcode = '22023';
  end if;
  if v_max not between 1 and 1000 then
    raise exception 'max: must be between 1 and 1000' using errcode = '22023';
  end if;
  if (requeue_dead_letters.job_ids is null) = (requeue_dead_letters.filter is null) then
    raise exception 'ids: give either ids or filter, not both or neither' using errcode = '22023';
  end if;

  v_hash := pg_catalog.md5(pg_catalog.jsonb_build_object(
    'ids', requeue_dead_letters.job_ids, 'filter', requeue_dead_letters.filter, 'reason', requeue_dead_letters.reason,
    'max', v_max, 'tenant_id', requeue_dead_letters.tenant_id)::text);
  if requeue_dead_letters.request_key is not null and not v_dry_run then
    -- Two concurrent requests with one key: the second waits and replays.
    perform pg_catalog.pg_advisory_xact_lock(
      pg_catalog.hashtextextended(v_actor || '/' || requeue_dead_letters.request_key, 0));
    select r.request_hash, r.response into v_stored
    from private.dead_letter_requeue_requests r
    where r.actor = v_actor and r.request_key = requeue_dead_letters.request_key;
    if found then
      if v_stored.request_hash <> v_hash then
        raise exception 'Idempotency-Key % was already used for a different dlq-retry request', requeue_dead_letters.request_key
          using errcode = 'SYJ07';
      end if;
      return v_stored.response || '{"replayed": true}'::jsonb;
    end if;
  end if;

  if requeue_dead_letters.job_ids is not null then
    if cardinality(requeue_dead_letters.job_ids) > v_max then
      raise exception 'ids: at most % ids (max)', v_max using errcode = '22023';
    end if;
    select array_agg(x.id order by x.first) into v_ids
    from (select u.id, min(u.n) as first
          from unnest(requeue_dead_letters.job_ids) with ordinality as u(id, n)
          where u.id is not null
          group by u.id) x;
    v_ids := coalesce(v_ids, '{}');
    select array_agg(u.id) into v_missing
    from unnest(v_ids) as u(id)
    where not exists (
      select 1 from public.jobs j
      where j.id = u.id and (requeue_dead_letters.tenant_id is null or j.tenant_id = requeue_dead_letters.tenant_id));
    if v_missing is not null then
      raise exception 'dead letter not found: %', pg_catalog.array_to_string(v_missing, ', ') using errcode = 'SYJ03';
    end if;
  else
    if pg_catalog.jsonb_typeof(requeue_dead_letters.filter) <> 'object' then
      raise exception 'filter: must be an object' using errcode = '22023';
    end if;
    select k into v_unknown_key
    from pg_catalog.jsonb_object_keys(requeue_dead_letters.filter) k
    where k not in ('kind', 'since', 'until', 'error', 'tenant_id')
    limit 1;
    if v_unknown_key is not null then
      raise exception 'filter.%: unknown filter (use kind, since, until, error, tenant_id)', v_unknown_key using errcode = '22023';
    end if;
    if requeue_dead_letters.filter ? 'kind' and not exists (
      select 1 from public.job_kinds k where k.kind = requeue_dead_letters.filter ->> 'kind') then
      raise exception 'unknown job kind "%"', requeue_dead_letters.filter ->> 'kind' using errcode = 'SYJ04';
    end if;
    select array_agg(x.job_id order by x.failed_at, x.id) into v_ids
    from (
      select d.job_id, d.failed_at, d.id
      from public.job_dead_letters d
      where d.requeued_at is null
        and (requeue_dead_letters.tenant_id is null or d.tenant_id = requeue_dead_letters.tenant_id)
        and (requeue_dead_letters.filter ->> 'tenant_id' is null or d.tenant_id = (requeue_dead_letters.filter ->> 'tenant_id')::uuid)
        and (requeue_dead_letters.filter ->> 'kind' is null or d.kind = requeue_dead_letters.filter ->> 'kind')
        and (requeue_dead_letters.filter ->> 'since' is null or d.failed_at >= (requeue_dead_letters.filter ->> 'since')::timestamptz)
        and (requeue_dead_letters.filter ->> 'until' is null or d.failed_at < (requeue_dead_letters.filter ->> 'until')::timestamptz)
        and (requeue_dead_letters.filter ->> 'error' is null or d.last_error ilike
              '%' || replace(replace(replace(requeue_dead_letters.filter ->> 'error', '\', '\\'), '%', '\%'), '_', '\_') || '%')
      order by d.failed_at, d.id
      limit v_max
    ) x;
    v_ids := coalesce(v_ids, '{}');
  end if;

  -- Lock jobs in one global order (by id), so concurrent requests cannot
  -- deadlock; answer in the request's order.
  for v_id in select u.id from unnest(v_ids) as u(id) order by u.id loop
    v_outcomes := v_outcomes || pg_catalog.jsonb_build_object(v_id::text, public.requeue_dead_letter(
      v_id, v_actor, requeue_dead_letters.reason, requeue_dead_letters.request_key, v_dry_run));
  end loop;

  select pg_catalog.jsonb_build_object(
    'requeued', coalesce(pg_catalog.jsonb_agg(to_jsonb(u.id) order by u.n) filter (where v_outcomes ->> u.id::text in ('requeued', 'would_requeue')), '[]'::jsonb),
    'skipped', coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', u.id, 'reason', v_outcomes ->> u.id::text) order by u.n)
                 filter (where v_outcomes ->> u.id::text not in ('requeued', 'would_requeue')), '[]'::jsonb),
    'dry_run', v_dry_run)
  into v_response
  from unnest(v_ids) with ordinality as u(id, n);

  if requeue_dead_letters.request_key is not null and not v_dry_run then
    insert into private.dead_letter_requeue_requests (actor, request_key, request_hash, response)
    values (v_actor, requeue_dead_letters.request_key, v_hash, v_response);
  end if;
  return v_response;
end
$$;
comment on function public.requeue_dead_letters(uuid[], jsonb, text, text, text, boolean, integer, uuid) is 'Requeues dead letters by job ids or filter, with dry run and a stored answer per request key; backs dlq-retry.';

revoke execute on function
  public.requeue_dead_letter(uuid, text, text, text, boolean),
  public.requeue_dead_letters(uuid[], jsonb, text, text, text, boolean, integer, uuid)
  from public, anon, authenticated;
grant execute on function public.requeue_dead_letter(uuid, text, text, text, boolean) to service_role;
-- Users call it for the tenants they operate (checked inside).
grant execute on function public.requeue_dead_letters(uuid[], jsonb, text, text, text, boolean, integer, uuid)
  to authenticated, service_role;
