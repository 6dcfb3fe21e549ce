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
-- roles hold no UPDATE or DELETE privilege in the first place).
create function private.refuse_job_event_changes()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'job_events is append-only: % is not allowed', lower(tg_op)
    using errcode = 'SYJ06';
end
$$;
revoke execute on function private.refuse_job_event_changes() from public, anon, authenticated, service_role;

create trigger job_events_append_only
  before update or delete or truncate on public.job_events
  for each statement execute function private.refuse_job_event_changes();
