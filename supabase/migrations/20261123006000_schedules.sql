-- Scheduled maintenance, defined once: public.schedules lists every task and
-- its interval, and pg_cron (next migration), `npm run worker` and the
-- readiness check `schedules_on_time` all read it. Every run, by whatever
-- runner, is recorded in public.scheduled_runs (started, finished, outcome).
--
-- A task is either 'sql' (run in the database by public.run_scheduled_task,
-- which records its own run) or 'http' (a function endpoint a scheduler calls
-- with the service role and X-Job-Token; the endpoint records the run).

create table public.schedules (
  name text primary key check (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  interval_seconds integer not null check (interval_seconds between 10 and 604800),
  kind text not null check (kind in ('sql', 'http')),
  -- sql: the call run_scheduled_task makes, e.g. 'public.reap_expired_jobs()'.
  sql_call text check (sql_call ~ '^public\.[a-z_]+\([a-z0-9_, ]*\)$'),
  -- http: the path under FUNCTIONS_URL the scheduler posts to.
  http_path text check (http_path ~ '^/[a-z0-9/_-]+$'),
  enabled boolean not null default true,
  description text not null check (length(description) between 1 and 500),
  constraint schedules_kind_target check (
    (kind = 'sql' and sql_call is not null and http_path is null)
    or (kind = 'http' and http_path is not null and sql_call is null)
  )
);
comment on table public.schedules is 'Every scheduled maintenance task and its interval: the one source pg_cron, `npm run worker` and readiness read.';

create table public.scheduled_runs (
  id bigint generated always as identity primary key,
  name text not null references public.schedules (name),
  -- Who ran it: 'pg_cron', 'worker', 'http', 'test', ...
  runner text not null check (length(runner) between 1 and 64),
  started_at timestamptz not null default pg_catalog.clock_timestamp(),
  finished_at timestamptz,
  outcome text check (outcome in ('ok', 'failed')),
  -- A short reason when failed; never a secret (database error messages only).
  error text check (length(error) <= 500),
  duration_ms integer check (duration_ms >= 0),
  -- What the task reported (row counts and the like).
  result jsonb,
  constraint scheduled_runs_finished check ((finished_at is null) = (outcome is null)),
  constraint scheduled_runs_error_iff_failed check ((outcome = 'failed') = (error is not null))
);
comment on table public.scheduled_runs is 'One row per run of a scheduled task: name, runner, started, finished, outcome (ok or failed with a short error), duration and result.';
-- The foreign key, and "the latest runs of a schedule".
create index scheduled_runs_name_started_idx on public.scheduled_runs (name, started_at desc);
-- Retention of the run log itself.
create index scheduled_runs_started_idx on public.scheduled_runs (started_at);

insert into public.schedules (name, interval_seconds, kind, sql_call, http_path, description) values
  ('reap_expired_jobs', 60, 'sql', 'public.reap_expired_jobs()', null,
   'Jobs whose lease ran out go to a retry or the DLQ.'),
  ('reap_expired_reservations', 60, 'sql', 'public.reap_expired_reservations()', null,
   'Budget reservations nobody settled are released.'),
  ('provider_health', 300, 'http', null, '/provider-health/run',
   'Probes every enabled provider with its vault key and merges the outcome into provider_health.');

alter table public.schedules enable row level security;
alter table public.scheduled_runs enable row level security;
revoke all on table public.schedules, public.scheduled_runs from anon, authenticated, service_role;
revoke all on sequence public.scheduled_runs_id_seq from anon, authenticated, service_role;
-- Runs are written only through the functions below; operators read both tables.
grant select on table public.schedules, public.scheduled_runs to service_role;

create policy "The service role reads the schedules"
  on public.schedules for select to service_role
  using (true);

create policy "The service role reads the scheduled runs"
  on public.scheduled_runs for select to service_role
  using (true);

-- Starts a run of a schedule; returns its id for finish_scheduled_run.
create function public.start_scheduled_run(name text, runner text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  if not exists (select 1 from public.schedules s where s.name = start_scheduled_run.name) then
    raise exception 'unknown schedule: %', start_scheduled_run.name using errcode = 'SYS01';
  end if;
  insert into public.scheduled_runs (name, runner) values (start_scheduled_run.name, start_scheduled_run.runner)
  returning id into v_id;
  return v_id;
end
$$;
comment on function public.start_scheduled_run(text, text) is 'Records the start of a run of a schedule; returns the run id.';

-- Finishes a run once: outcome ok, or failed with a short error.
create function public.finish_scheduled_run(run_id bigint, outcome text, error text default null, result jsonb default null)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if finish_scheduled_run.outcome not in ('ok', 'failed') then
    raise exception 'outcome must be ok or failed' using errcode = 'SYS02';
  end if;
  update public.scheduled_runs r
  set finished_at = pg_catalog.clock_timestamp(),
      outcome = finish_scheduled_run.outcome,
      error = case when finish_scheduled_run.outcome = 'failed'
                   then left(coalesce(nullif(finish_scheduled_run.error, ''), 'failed'), 500) end,
      duration_ms = greatest(0, (extract(epoch from pg_catalog.clock_timestamp() - r.started_at) * 1000)::integer),
      result = finish_scheduled_run.result
  where r.id = finish_scheduled_run.run_id and r.finished_at is null;
  if not found then
    raise exception 'scheduled run % does not exist or is already finished', finish_scheduled_run.run_id
      using errcode = 'SYS03';
  end if;
end
$$;
comment on function public.finish_scheduled_run(bigint, text, text, jsonb) is 'Records the end of a run (ok, or failed with a short error) and its duration; a run finishes once.';

-- Runs a 'sql' schedule and records the run; a failure is recorded, not raised,
-- so pg_cron and the worker keep going (the task's own changes roll back).
create function public.run_scheduled_task(name text, runner text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_schedule public.schedules;
  v_run_id bigint;
  v_result jsonb;
begin
  select * into v_schedule from public.schedules s where s.name = run_scheduled_task.name;
  if not found then
    raise exception 'unknown schedule: %', run_scheduled_task.name using errcode = 'SYS01';
  end if;
  if v_schedule.kind <> 'sql' then
    raise exception 'schedule % is an HTTP endpoint (%), not a SQL task', v_schedule.name, v_schedule.http_path
      using errcode = 'SYS04';
  end if;
  v_run_id := public.start_scheduled_run(v_schedule.name, run_scheduled_task.runner);
  begin
    -- sql_call is checked by the table's constraint and only the owner writes the table.
    execute 'select pg_catalog.to_jsonb(' || v_schedule.sql_call || ')' into v_result;
  exception when others then
    perform public.finish_scheduled_run(v_run_id, 'failed', sqlstate || ': ' || sqlerrm, null);
    return pg_catalog.jsonb_build_object('run_id', v_run_id, 'name', v_schedule.name, 'outcome', 'failed',
      'error', left(sqlstate || ': ' || sqlerrm, 500));
  end;
  perform public.finish_scheduled_run(v_run_id, 'ok', null, v_result);
  return pg_catalog.jsonb_build_object('run_id', v_run_id, 'name', v_schedule.name, 'outcome', 'ok', 'result', v_result);
end
$$;
comment on function public.run_scheduled_task(text, text) is 'Runs a SQL schedule and records it in scheduled_runs; a failure is recorded (outcome failed) and returned, not raised.';

-- Each schedule with its latest run, latest success and whether it is due.
create function public.schedule_status()
returns table (
  name text, kind text, interval_seconds integer, http_path text, enabled boolean,
  last_started_at timestamptz, last_outcome text, last_error text, last_success_at timestamptz, due boolean
)
language sql
stable
security definer
set search_path = ''
as $$
  select s.name, s.kind, s.interval_seconds, s.http_path, s.enabled,
         latest.started_at, latest.outcome, latest.error, success.started_at,
         s.enabled and (latest.started_at is null
           or latest.started_at <= pg_catalog.now() - pg_catalog.make_interval(secs => s.interval_seconds))
  from public.schedules s
  left join lateral (
    select r.started_at, r.outcome, r.error from public.scheduled_runs r
    where r.name = s.name order by r.started_at desc limit 1
  ) latest on true
  left join lateral (
    select r.started_at from public.scheduled_runs r
    where r.name = s.name and r.outcome = 'ok' order by r.started_at desc limit 1
  ) success on true
  order by s.name
$$;
comment on function public.schedule_status() is 'Every schedule with its latest run, latest successful run and whether it is due now.';

revoke execute on function public.start_scheduled_run(text, text), public.finish_scheduled_run(bigint, text, text, jsonb),
  public.run_scheduled_task(text, text), public.schedule_status()
  from public, anon, authenticated;
grant execute on function public.start_scheduled_run(text, text), public.finish_scheduled_run(bigint, text, text, jsonb),
  public.run_scheduled_task(text, text), public.schedule_status()
  to service_role;
