-- Schedules and retention.
--
-- Scheduled maintenance, defined once: public.schedules lists every task and
-- its interval, and pg_cron (below), `npm run worker` and the
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

-- Range-partitioned by month (started_at), like usage_records: retention drops
-- whole months of finished runs (below).
create table public.scheduled_runs (
  id bigint generated always as identity,
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
  constraint scheduled_runs_error_iff_failed check ((outcome = 'failed') = (error is not null)),
  primary key (id, started_at)
) partition by range (started_at);
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
   'Probes every enabled provider with its vault key and merges the outcome into provider_health.'),
  ('usage_rollup', 3600, 'sql', 'public.rollup_usage()', null,
   'Sums whole days of usage_records into usage_daily (exact totals) before retention may delete them.'),
  ('retention_purge', 3600, 'sql', 'public.run_retention()', null,
   'Drops whole months, then deletes job events, rolled-up usage records, requeued dead letters, key audit and run log past their retention.'),
  ('refresh_model_reputation', 60, 'sql', 'public.refresh_model_reputation(1000)', null,
   'Folds pending feedback and quality signals into model_reputation, 1000 rows per run.'),
  ('partition_maintenance', 3600, 'sql', 'public.create_partitions_ahead()', null,
   'Makes the monthly partitions of usage records, job events, scheduled runs and key audit ahead (this month and the next two).'),
  ('purge_response_cache', 3600, 'sql', 'public.purge_expired_response_cache()', null,
   'Deletes expired response-cache entries, 10000 per run.');

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

-- public.schedules on pg_cron, where it is installed (on Supabase: Database >
-- Extensions > pg_cron, and pg_net for the HTTP tasks). Without pg_cron the
-- migration schedules nothing and `npm run worker` runs the same schedules.
-- Enabling the extensions later, or after changing public.schedules:
-- `select private.schedule_maintenance();` (idempotent).
--
-- SQL tasks run as `select public.run_scheduled_task('<name>', 'pg_cron')`.
-- HTTP tasks are posted with pg_net, the way Supabase documents scheduling
-- Edge Functions; the URL and credentials come from Supabase Vault secrets
-- (never from this file):
--   select vault.create_secret('https://<ref>.supabase.co/functions/v1', 'switchyard_functions_url');
--   select vault.create_secret('<service role key>', 'switchyard_service_role_key');
--   select vault.create_secret('<one of JOB_TOKENS>', 'switchyard_job_token');
-- Rotating the job token: add the new token to JOB_TOKENS, update the secret
-- (vault.update_secret), then drop the old token from JOB_TOKENS.

-- The pg_cron expression for an interval: seconds (pg_cron 1.5+), minutes, hours or days.
create function private.cron_expression(interval_seconds integer)
returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when interval_seconds < 60 then interval_seconds || ' seconds'
    when interval_seconds < 3600 then '*/' || greatest(1, interval_seconds / 60) || ' * * * *'
    when interval_seconds < 86400 then '0 */' || greatest(1, interval_seconds / 3600) || ' * * *'
    else '0 0 * * *'
  end
$$;
comment on function private.cron_expression(integer) is 'The pg_cron schedule for an interval in seconds (rounded down to whole minutes, hours or a day).';
revoke execute on function private.cron_expression(integer) from public, anon, authenticated, service_role;

-- The pg_cron command that posts to an HTTP schedule's endpoint with pg_net.
create function private.http_schedule_command(http_path text)
returns text
language sql
immutable
set search_path = ''
as $$
  select format($cmd$select net.http_post(
  url := (select decrypted_secret from vault.decrypted_secrets where name = 'switchyard_functions_url') || %L,
  headers := pg_catalog.jsonb_build_object(
    'content-type', 'application/json',
    'apikey', (select decrypted_secret from vault.decrypted_secrets where name = 'switchyard_service_role_key'),
    'authorization', 'Bearer ' || (select decrypted_secret from vault.decrypted_secrets where name = 'switchyard_service_role_key'),
    'x-job-token', (select decrypted_secret from vault.decrypted_secrets where name = 'switchyard_job_token')),
  body := '{}'::jsonb,
  timeout_milliseconds := 30000)$cmd$, http_path)
$$;
comment on function private.http_schedule_command(text) is 'The pg_cron command posting to an HTTP schedule (pg_net), credentials from Vault secrets.';
revoke execute on function private.http_schedule_command(text) from public, anon, authenticated, service_role;

-- Schedules every enabled task of public.schedules with pg_cron (HTTP tasks
-- only where pg_net and Vault exist); returns how many were scheduled, or
-- null (and nothing) without pg_cron.
create function private.schedule_maintenance()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_schedule record;
  v_http boolean;
  v_count integer := 0;
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    return null;
  end if;
  v_http := exists (select 1 from pg_catalog.pg_extension where extname = 'pg_net')
    and pg_catalog.to_regclass('vault.decrypted_secrets') is not null;
  for v_schedule in select * from public.schedules order by name loop
    if not v_schedule.enabled or (v_schedule.kind = 'http' and not v_http) then
      execute format('select cron.unschedule(jobid) from cron.job where jobname = %L', 'switchyard-' || v_schedule.name);
      continue;
    end if;
    -- cron.schedule(name, ...) replaces a job of the same name, so this can run again.
    execute format('select cron.schedule(%L, %L, %L)',
      'switchyard-' || v_schedule.name,
      private.cron_expression(v_schedule.interval_seconds),
      case v_schedule.kind
        when 'sql' then format('select public.run_scheduled_task(%L, %L)', v_schedule.name, 'pg_cron')
        else private.http_schedule_command(v_schedule.http_path)
      end);
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$$;
comment on function private.schedule_maintenance() is 'Puts every enabled schedule of public.schedules on pg_cron (HTTP ones with pg_net and Vault secrets); null and nothing without pg_cron.';
revoke execute on function private.schedule_maintenance() from public, anon, authenticated, service_role;

-- Retention: how long each kind of data is kept (public.retention_settings)
-- and batched purges that keep the totals and the audit trail honest:
--   job_events        events of finished jobs (succeeded, cancelled, failed_dlq) older than the retention, through the
--                     one narrow path the append-only trigger allows (purge_job_events sets its marker);
--   usage_records     only days already rolled into usage_daily, counted in usage_rollups (the invariant stays empty);
--   job_dead_letters  only dead letters an operator requeued (pending ones wait for an operator);
--   secure_keys_audit kept longest: at least 365 days, and never shorter than any other kind;
--   scheduled_runs    the schedules' own run log.
-- Every purge that deletes something writes a row to public.retention_log.

create table public.retention_settings (
  kind text primary key
    check (kind in ('job_events', 'usage_records', 'job_dead_letters', 'secure_keys_audit', 'scheduled_runs')),
  days integer not null check (days between 1 and 36500),
  updated_at timestamptz not null default now(),
  constraint retention_settings_audit_kept_long check (kind <> 'secure_keys_audit' or days >= 365)
);
comment on table public.retention_settings is 'How many days each kind of data is kept before the retention purge deletes it; the key audit at least 365 and never less than any other kind.';

insert into public.retention_settings (kind, days) values
  ('job_events', 30), ('usage_records', 90), ('job_dead_letters', 30), ('secure_keys_audit', 730), ('scheduled_runs', 14);

create table public.retention_log (
  id bigint generated always as identity primary key,
  kind text not null,
  deleted bigint not null check (deleted > 0),
  -- Rows older than this were eligible.
  cutoff timestamptz not null,
  at timestamptz not null default now()
);
comment on table public.retention_log is 'Audit of the retention purge: what kind, how many rows, which cutoff and when.';
create index retention_log_at_idx on public.retention_log (at);

alter table public.retention_settings enable row level security;
alter table public.retention_log enable row level security;
revoke all on table public.retention_settings, public.retention_log from anon, authenticated, service_role;
revoke all on sequence public.retention_log_id_seq from anon, authenticated, service_role;
grant select on table public.retention_settings, public.retention_log to service_role;
grant update (days) on table public.retention_settings to service_role;

create policy "The service role reads the retention settings"
  on public.retention_settings for select to service_role
  using (true);

create policy "The service role changes retention periods"
  on public.retention_settings for update to service_role
  using (true) with check (true);

create policy "The service role reads the retention log"
  on public.retention_log for select to service_role
  using (true);

-- The cutoff of a kind: now minus its days; the key audit's never sooner than any other kind's.
create function private.retention_cutoff(kind text)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select pg_catalog.now() - pg_catalog.make_interval(days => case
    when retention_cutoff.kind = 'secure_keys_audit' then (select max(s.days) from public.retention_settings s)
    else (select s.days from public.retention_settings s where s.kind = retention_cutoff.kind)
  end)
$$;
comment on function private.retention_cutoff(text) is 'Rows of this kind older than the returned time may be purged.';
revoke execute on function private.retention_cutoff(text) from public, anon, authenticated, service_role;

create function private.check_purge_batch(batch integer)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if batch is null or batch < 1 or batch > 100000 then
    raise exception 'batch must be between 1 and 100000' using errcode = 'invalid_parameter_value';
  end if;
end
$$;
revoke execute on function private.check_purge_batch(integer) from public, anon, authenticated, service_role;

-- job_events is append-only but for this purge: it sets
-- switchyard.job_events_purge for its own call (a function-level SET), which
-- private.refuse_job_event_changes (jobs) lets through.
create function public.purge_job_events(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
set switchyard.job_events_purge = 'on'
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('job_events');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  -- Oldest first by id (ids grow with time), so the scan stops after one batch.
  delete from public.job_events e
  where e.id in (
    select e2.id from public.job_events e2
    join public.jobs j on j.id = e2.job_id
    where e2.at < v_cutoff and j.status in ('succeeded', 'cancelled', 'failed_dlq')
    order by e2.id
    limit batch
  );
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('job_events', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_job_events(integer) is 'Deletes up to batch events, older than the retention, of finished jobs (the only DELETE job_events allows); logged in retention_log.';

create function public.purge_usage_records(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('usage_records');
  v_rolled_through date;
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  select max(r.day) into v_rolled_through from public.usage_rollups r;
  if v_rolled_through is null then
    return 0;
  end if;
  -- Only days already rolled up; the purged amounts are counted on their rollup in the same statement.
  with doomed as (
    select u.request_id, u.created_at from public.usage_records u
    where u.created_at < least(v_cutoff, ((v_rolled_through + 1)::timestamp at time zone 'UTC'))
      and exists (select 1 from public.usage_rollups r
                  where r.tenant_id = u.tenant_id and r.day = (u.created_at at time zone 'UTC')::date)
    limit batch
    for update skip locked
  ),
  deleted as (
    delete from public.usage_records u using doomed d where u.request_id = d.request_id and u.created_at = d.created_at
    returning u.request_id, u.tenant_id, (u.created_at at time zone 'UTC')::date as day, u.cost_usd_micros,
              u.prompt_tokens + u.completion_tokens as tokens
  ),
  -- Feedback goes with its request (request_feedback has no foreign key to the partitioned table).
  feedback as (
    delete from public.request_feedback f using deleted d where f.request_id = d.request_id
    returning 1
  ),
  per_day as (
    select d.day, d.tenant_id, count(*) as records, sum(d.cost_usd_micros) as cost, sum(d.tokens) as tokens
    from deleted d group by d.day, d.tenant_id
  ),
  counted as (
    update public.usage_rollups r
    set purged_records = r.purged_records + p.records,
        purged_cost_usd_micros = r.purged_cost_usd_micros + p.cost,
        purged_tokens = r.purged_tokens + p.tokens
    from per_day p
    where r.day = p.day and r.tenant_id = p.tenant_id
    returning 1
  )
  select coalesce(sum(p.records), 0)::integer into v_deleted from per_day p;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('usage_records', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_usage_records(integer) is 'Deletes up to batch usage records older than the retention, of rolled-up days only, counting them on usage_rollups so totals stay exact.';

create function public.purge_dead_letters(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('job_dead_letters');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  delete from public.job_dead_letters l
  where l.id in (
    select l2.id from public.job_dead_letters l2
    where l2.requeued_at is not null and l2.requeued_at < v_cutoff
    limit batch
  );
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('job_dead_letters', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_dead_letters(integer) is 'Deletes up to batch dead letters requeued before the retention cutoff; pending ones are kept for an operator.';

create function public.purge_secure_keys_audit(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('secure_keys_audit');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  delete from public.secure_keys_audit a
  where a.id in (select a2.id from public.secure_keys_audit a2 where a2.at < v_cutoff order by a2.id limit batch);
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('secure_keys_audit', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_secure_keys_audit(integer) is 'Deletes up to batch key-audit rows older than the longest retention (at least 365 days).';

create function public.purge_scheduled_runs(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('scheduled_runs');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  delete from public.scheduled_runs r
  where r.id in (
    select r2.id from public.scheduled_runs r2 where r2.started_at < v_cutoff and r2.finished_at is not null
    order by r2.started_at limit batch
  );
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('scheduled_runs', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_scheduled_runs(integer) is 'Deletes up to batch finished scheduled runs older than the retention.';

-- Monthly partitions. usage_records, job_events, scheduled_runs and
-- secure_keys_audit grow with every request, transition, run or key use, so
-- each is range-partitioned by month on its time column. A month's partition
-- is private.<table>_pYYYYMM (UTC months), made ahead by
-- public.create_partitions_ahead (the partition_maintenance schedule, and this
-- migration); private.<table>_default takes a row outside every month, so no
-- write is ever refused for want of a partition, and when a month is made
-- later its rows move out of the default. Partitions are reachable only
-- through their parent: the parent's grants and RLS policies decide, and every
-- partition has RLS on, no policy and no grant (an API role naming one
-- directly is refused).
create function private.monthly_partitioned_tables()
returns table (table_name text, column_name text)
language sql
immutable
set search_path = ''
as $$
  values ('usage_records', 'created_at'), ('job_events', 'at'), ('scheduled_runs', 'started_at'),
         ('secure_keys_audit', 'at')
$$;
comment on function private.monthly_partitioned_tables() is 'The tables range-partitioned by month, with their partition column.';
revoke execute on function private.monthly_partitioned_tables() from public, anon, authenticated, service_role;

-- A partition is reached through its parent only.
create function private.seal_partition(partition_name text, parent_name text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  execute format('alter table private.%I enable row level security', partition_name);
  execute format('revoke all on table private.%I from public, anon, authenticated, service_role', partition_name);
  execute format('comment on table private.%I is %L', partition_name,
    'A partition of public.' || parent_name || '; read and written through the parent only.');
end
$$;
revoke execute on function private.seal_partition(text, text) from public, anon, authenticated, service_role;

-- Makes the month [month_start, +1 month) of a partitioned table; rows of that
-- month already in the default partition move into it. Returns false when it exists.
create function private.create_month_partition(table_name text, column_name text, month_start date)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_name text := table_name || '_p' || pg_catalog.to_char(month_start, 'YYYYMM');
  v_default text := table_name || '_default';
  v_from timestamptz := month_start::timestamp at time zone 'UTC';
  v_to timestamptz := (month_start + interval '1 month')::timestamp at time zone 'UTC';
  v_stray boolean;
begin
  if pg_catalog.to_regclass('private.' || v_name) is not null then
    return false;
  end if;
  execute format('select exists (select 1 from private.%I where %I >= %L and %I < %L)',
    v_default, column_name, v_from, column_name, v_to) into v_stray;
  if not v_stray then
    execute format('create table private.%I partition of public.%I for values from (%L) to (%L)',
      v_name, table_name, v_from, v_to);
  else
    -- The default holds rows of this month: move them into a new table, then attach it.
    execute format('create table private.%I (like public.%I including defaults including constraints)',
      v_name, table_name);
    execute format('insert into private.%I select * from private.%I where %I >= %L and %I < %L',
      v_name, v_default, column_name, v_from, column_name, v_to);
    -- job_events refuses deletes but for retention's marker; moving rows is not a deletion.
    perform pg_catalog.set_config('switchyard.job_events_purge', 'on', true);
    execute format('delete from private.%I where %I >= %L and %I < %L',
      v_default, column_name, v_from, column_name, v_to);
    perform pg_catalog.set_config('switchyard.job_events_purge', 'off', true);
    execute format('alter table public.%I attach partition private.%I for values from (%L) to (%L)',
      table_name, v_name, v_from, v_to);
  end if;
  perform private.seal_partition(v_name, table_name);
  return true;
end
$$;
revoke execute on function private.create_month_partition(text, text, date) from public, anon, authenticated, service_role;

-- The partition_maintenance schedule: the default partition and the current
-- and next months_ahead months of every partitioned table. Idempotent; returns
-- how many partitions it made.
create function public.create_partitions_ahead(months_ahead integer default 2)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_table record;
  v_month date := pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC')::date;
  v_made integer := 0;
begin
  if months_ahead is null or months_ahead < 0 or months_ahead > 24 then
    raise exception 'months_ahead must be between 0 and 24' using errcode = 'invalid_parameter_value';
  end if;
  -- One maker at a time: two would race to attach the same month.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('switchyard.create_partitions_ahead'));
  for v_table in select * from private.monthly_partitioned_tables() loop
    if pg_catalog.to_regclass('private.' || v_table.table_name || '_default') is null then
      execute format('create table private.%I partition of public.%I default',
        v_table.table_name || '_default', v_table.table_name);
      perform private.seal_partition(v_table.table_name || '_default', v_table.table_name);
      v_made := v_made + 1;
    end if;
    for i in 0 .. months_ahead loop
      if private.create_month_partition(v_table.table_name, v_table.column_name, (v_month + pg_catalog.make_interval(months => i))::date) then
        v_made := v_made + 1;
      end if;
    end loop;
  end loop;
  return v_made;
end
$$;
comment on function public.create_partitions_ahead(integer) is 'Makes the default partition and the current and next months_ahead monthly partitions of every partitioned table (idempotent); returns how many it made.';

-- The monthly partitions of a table with their bounds, oldest first.
create function private.month_partitions(table_name text)
returns table (partition_name text, month_start date, month_end timestamptz)
language sql
stable
set search_path = ''
as $$
  select c.relname::text, pg_catalog.to_date(pg_catalog.right(c.relname, 6), 'YYYYMM'),
         (pg_catalog.to_date(pg_catalog.right(c.relname, 6), 'YYYYMM') + interval '1 month')::timestamp at time zone 'UTC'
  from pg_catalog.pg_inherits i
  join pg_catalog.pg_class c on c.oid = i.inhrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where i.inhparent = ('public.' || month_partitions.table_name)::regclass
    and n.nspname = 'private' and c.relname ~ '_p[0-9]{6}$'
  order by 2
$$;
revoke execute on function private.month_partitions(text) from public, anon, authenticated, service_role;

-- Whether a partition holds a row (alias x) meeting the condition.
create function private.partition_has(partition_name text, condition text)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_found boolean;
begin
  execute format('select exists (select 1 from private.%I x where %s)', partition_name, condition) into v_found;
  return v_found;
end
$$;
revoke execute on function private.partition_has(text, text) from public, anon, authenticated, service_role;

-- Retention by partition: drops every month wholly past its table's retention
-- whose rows may all go, before the row purges below clean the rest (the
-- month that straddles the cutoff, the default partition):
--   usage_records     a month all of whose days are rolled up: its records are
--                     counted on usage_rollups (purged_*) in the same
--                     transaction, and its feedback deleted, so the rollup
--                     invariant holds across the drop;
--   job_events        a month holding no event of an unfinished job;
--   scheduled_runs    a month of finished runs;
--   secure_keys_audit a month past the longest retention.
-- Each drop is one retention_log row (kind, rows dropped, cutoff). Returns
-- {table: [partition, ...]} for the partitions dropped.
create function public.drop_expired_partitions()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_table record;
  v_part record;
  v_cutoff timestamptz;
  v_rolled_through date;
  v_rows bigint;
  v_blocked boolean;
  v_result jsonb := '{}'::jsonb;
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('switchyard.create_partitions_ahead'));
  select max(r.day) into v_rolled_through from public.usage_rollups r;
  for v_table in select * from private.monthly_partitioned_tables() loop
    v_cutoff := private.retention_cutoff(v_table.table_name);
    if v_table.table_name = 'usage_records' then
      v_cutoff := least(v_cutoff, coalesce((v_rolled_through + 1)::timestamp at time zone 'UTC', '-infinity'));
    end if;
    for v_part in select * from private.month_partitions(v_table.table_name) p where p.month_end <= v_cutoff loop
      v_blocked := case v_table.table_name
        -- usage_records: checked below, in the one pass that counts the month.
        when 'job_events' then private.partition_has(v_part.partition_name,
          'exists (select 1 from public.jobs j where j.id = x.job_id and j.status not in (''succeeded'', ''cancelled'', ''failed_dlq''))')
        when 'scheduled_runs' then private.partition_has(v_part.partition_name, 'x.finished_at is null')
        else false
      end;
      if v_blocked then
        continue;
      end if;
      if v_table.table_name = 'usage_records' then
        -- One pass over the month: its totals per (day, tenant), counted on the rollups only when
        -- every one of them has a rollup (a record written into a rolled day keeps the month).
        with per_day as (
          select (u.created_at at time zone 'UTC')::date as day, u.tenant_id, count(*) as records,
                 sum(u.cost_usd_micros) as cost, sum(u.prompt_tokens::bigint + u.completion_tokens) as tokens
          from public.usage_records u
          where u.created_at >= v_part.month_start::timestamp at time zone 'UTC' and u.created_at < v_part.month_end
          group by 1, 2
        ),
        -- The month's rollups only (the rollups key leads with day): not every day ever rolled.
        month_rollups as (
          select r.day, r.tenant_id from public.usage_rollups r
          where r.day >= v_part.month_start and r.day < (v_part.month_start + interval '1 month')::date
        ),
        unrolled as (
          select 1 from per_day p
          where not exists (select 1 from month_rollups r where r.day = p.day and r.tenant_id = p.tenant_id)
          limit 1
        ),
        counted as (
          update public.usage_rollups r
          set purged_records = r.purged_records + p.records,
              purged_cost_usd_micros = r.purged_cost_usd_micros + p.cost,
              purged_tokens = r.purged_tokens + p.tokens
          from per_day p
          where r.day = p.day and r.tenant_id = p.tenant_id and not exists (select 1 from unrolled)
            and r.day >= v_part.month_start and r.day < (v_part.month_start + interval '1 month')::date
          returning p.records
        )
        select exists (select 1 from unrolled), coalesce((select sum(c.records) from counted c), 0)
          into v_blocked, v_rows;
        if v_blocked then
          continue;
        end if;
        execute format('delete from public.request_feedback f using private.%I u where f.request_id = u.request_id',
          v_part.partition_name);
      else
        execute format('select count(*) from private.%I', v_part.partition_name) into v_rows;
      end if;
      execute format('drop table private.%I', v_part.partition_name);
      if v_rows > 0 then
        insert into public.retention_log (kind, deleted, cutoff) values (v_table.table_name, v_rows, v_cutoff);
      end if;
      v_result := pg_catalog.jsonb_set(v_result, array[v_table.table_name],
        coalesce(v_result -> v_table.table_name, '[]'::jsonb) || pg_catalog.to_jsonb(v_part.partition_name));
    end loop;
  end loop;
  return v_result;
end
$$;
comment on function public.drop_expired_partitions() is 'Drops every monthly partition wholly past its retention whose rows may all go (usage: rolled up and counted on usage_rollups); returns the partitions dropped per table.';

revoke execute on function public.create_partitions_ahead(integer), public.drop_expired_partitions()
  from public, anon, authenticated;
grant execute on function public.create_partitions_ahead(integer), public.drop_expired_partitions() to service_role;

select public.create_partitions_ahead();

-- usage_request_ids keeps an id for two days (public.usage_request_ids in economics).
create function public.purge_usage_request_ids(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := pg_catalog.now() - interval '2 days';
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  delete from public.usage_request_ids i
  where i.request_id in (
    select i2.request_id from public.usage_request_ids i2 where i2.created_at < v_cutoff order by i2.created_at limit batch
  );
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('usage_request_ids', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_usage_request_ids(integer) is 'Deletes up to batch request ids claimed more than two days ago (usage_records itself keeps refusing them).';
revoke execute on function public.purge_usage_request_ids(integer) from public, anon, authenticated;
grant execute on function public.purge_usage_request_ids(integer) to service_role;

-- The retention_purge schedule: first whole months (drop_expired_partitions),
-- then each purge in batches until a batch comes back short or max_batches ran
-- (the next run carries on). Returns the rows deleted per kind and, under
-- partitions_dropped, the partitions dropped per table.
create function public.run_retention(batch integer default 1000, max_batches integer default 10)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_kind text;
  v_deleted integer;
  v_total integer;
  v_batches integer;
  v_result jsonb := '{}'::jsonb;
  v_dropped jsonb;
begin
  perform private.check_purge_batch(batch);
  if max_batches is null or max_batches < 1 or max_batches > 1000 then
    raise exception 'max_batches must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  v_dropped := public.drop_expired_partitions();
  foreach v_kind in array array['job_events', 'usage_records', 'job_dead_letters', 'secure_keys_audit', 'scheduled_runs',
                                'usage_request_ids'] loop
    v_total := 0;
    v_batches := 0;
    loop
      v_deleted := case v_kind
        when 'job_events' then public.purge_job_events(batch)
        when 'usage_records' then public.purge_usage_records(batch)
        when 'job_dead_letters' then public.purge_dead_letters(batch)
        when 'secure_keys_audit' then public.purge_secure_keys_audit(batch)
        when 'usage_request_ids' then public.purge_usage_request_ids(batch)
        else public.purge_scheduled_runs(batch)
      end;
      v_total := v_total + v_deleted;
      v_batches := v_batches + 1;
      exit when v_deleted < batch or v_batches >= max_batches;
    end loop;
    v_result := v_result || pg_catalog.jsonb_build_object(v_kind, v_total);
  end loop;
  return v_result || pg_catalog.jsonb_build_object('partitions_dropped', v_dropped);
end
$$;
comment on function public.run_retention(integer, integer) is 'Runs every retention purge in batches (at most max_batches each); returns rows deleted per kind.';

revoke execute on function public.purge_job_events(integer), public.purge_usage_records(integer),
  public.purge_dead_letters(integer), public.purge_secure_keys_audit(integer), public.purge_scheduled_runs(integer),
  public.run_retention(integer, integer)
  from public, anon, authenticated;
grant execute on function public.purge_job_events(integer), public.purge_usage_records(integer),
  public.purge_dead_letters(integer), public.purge_secure_keys_audit(integer), public.purge_scheduled_runs(integer),
  public.run_retention(integer, integer)
  to service_role;

-- Put every schedule on pg_cron where it exists.
do $$
declare
  v_count integer := private.schedule_maintenance();
begin
  if v_count is null then
    raise notice 'pg_cron is not installed: run the schedules with `npm run worker`';
  else
    raise notice 'pg_cron: % schedules', v_count;
  end if;
end
$$;
