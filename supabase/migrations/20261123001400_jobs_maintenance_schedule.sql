-- Scheduled maintenance of the job queue. Where pg_cron is installed (on
-- Supabase: Database > Extensions > pg_cron), the reaper runs every minute
-- from the database itself. Without pg_cron this migration changes nothing
-- and `npm run worker` runs the reaper instead. Enabling pg_cron later:
-- `select private.schedule_job_maintenance();` (idempotent).

create function private.schedule_job_maintenance()
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    return false;
  end if;
  -- cron.schedule(name, ...) replaces a job of the same name, so this can run again.
  execute $sql$select cron.schedule('switchyard-reap-expired-jobs', '* * * * *', 'select public.reap_expired_jobs()')$sql$;
  return true;
end
$$;
comment on function private.schedule_job_maintenance() is 'Schedules reap_expired_jobs() every minute with pg_cron when the extension is installed; false (and nothing) otherwise.';
revoke execute on function private.schedule_job_maintenance() from public, anon, authenticated, service_role;

do $$
begin
  if private.schedule_job_maintenance() then
    raise notice 'pg_cron: reap_expired_jobs() scheduled every minute';
  else
    raise notice 'pg_cron is not installed: run the reaper with `npm run worker`';
  end if;
end
$$;
