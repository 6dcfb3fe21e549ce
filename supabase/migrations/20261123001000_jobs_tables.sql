-- Jobs, tables: the kinds a worker can run, the jobs themselves, their
-- append-only event log, the dead-letter queue and job outputs (artifacts).
-- The state machine that drives them is the next migration; the functions
-- workers and operators call are the one after it. Nobody but those
-- SECURITY DEFINER functions writes these tables: no role holds INSERT,
-- UPDATE or DELETE on jobs, job_events, job_dead_letters or artifacts.

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

create table public.job_events (
  id bigint generated always as identity primary key,
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
  at timestamptz not null default now()
);
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

create table public.artifacts (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.jobs (id),
  tenant_id uuid references public.tenants (id),
  name text not null default 'output' check (length(name) between 1 and 200),
  -- Either a path in Storage or the output inline.
  storage_path text check (length(storage_path) between 1 and 1024),
  content jsonb,
  created_at timestamptz not null default now(),
  constraint artifacts_one_location check ((storage_path is null) <> (content is null))
);
comment on table public.artifacts is 'Outputs of jobs: a Storage path or inline JSON, owned by the job''s tenant.';
create index artifacts_job_id_idx on public.artifacts (job_id);
create index artifacts_tenant_id_created_at_idx on public.artifacts (tenant_id, created_at desc);

alter table public.job_kinds enable row level security;
alter table public.jobs enable row level security;
alter table public.job_events enable row level security;
alter table public.job_dead_letters enable row level security;
alter table public.artifacts enable row level security;

-- Supabase grants everything on new public tables to anon, authenticated and
-- service_role: take it all back, then grant reads only. Writes happen in the
-- job functions (SECURITY DEFINER), where the state machine is enforced.
revoke all on table public.job_kinds, public.jobs, public.job_events, public.job_dead_letters, public.artifacts
  from anon, authenticated, service_role;
revoke all on sequence public.job_events_id_seq from anon, authenticated, service_role;
grant select on table public.job_kinds, public.jobs, public.job_events, public.job_dead_letters, public.artifacts
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

create policy "Members can read their tenant's artifacts"
  on public.artifacts for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));
