-- The job functions: the public API for workers and the service, executable
-- by service_role only. Each names its operation (see the state machine
-- migration) with a function-level SET, which is restored when it returns.
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

-- Records an output of a job, by the worker holding its lease.
create function public.add_job_artifact(
  job_id uuid,
  lease_token uuid,
  storage_path text default null,
  content jsonb default null,
  name text default 'output'
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_tenant_id uuid;
  v_id uuid;
begin
  select j.tenant_id into v_tenant_id
  from public.jobs j
  where j.id = add_job_artifact.job_id and j.status = 'assigned' and j.lease_token = add_job_artifact.lease_token
  for share;
  if not found then
    perform private.raise_job_lease_error(add_job_artifact.job_id, add_job_artifact.lease_token, 'add an artifact to');
  end if;
  insert into public.artifacts (job_id, tenant_id, name, storage_path, content)
  values (add_job_artifact.job_id, v_tenant_id, coalesce(add_job_artifact.name, 'output'), add_job_artifact.storage_path,
          add_job_artifact.content)
  returning id into v_id;
  return v_id;
end
$$;
comment on function public.add_job_artifact(uuid, uuid, text, jsonb, text) is 'Stores an output (Storage path or inline JSON) of a job, by the worker holding its lease.';

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
  public.cancel_job(uuid, text),
  public.add_job_artifact(uuid, uuid, text, jsonb, text)
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
  public.cancel_job(uuid, text),
  public.add_job_artifact(uuid, uuid, text, jsonb, text)
  to service_role;
