-- public.schedules on pg_cron, where it is installed (on Supabase: Database >
-- Extensions > pg_cron, and pg_net for the HTTP tasks). Without pg_cron this
-- migration changes nothing and `npm run worker` runs the same schedules.
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
  -- The reaper's own job from 20261123001400 is now the recorded 'reap_expired_jobs' schedule.
  execute $sql$select cron.unschedule(jobid) from cron.job where jobname = 'switchyard-reap-expired-jobs'$sql$;
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
