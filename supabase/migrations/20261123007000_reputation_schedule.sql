-- The reputation refresh (issue 10) is a schedule like the other maintenance
-- tasks: pg_cron runs it where installed, `npm run worker` otherwise, and
-- every run is recorded in scheduled_runs.
insert into public.schedules (name, interval_seconds, kind, sql_call, description) values
  ('refresh_model_reputation', 60, 'sql', 'public.refresh_model_reputation(1000)',
   'Folds pending feedback and quality signals into model_reputation, 1000 rows per run.');

do $$
declare
  v_count integer := private.schedule_maintenance();
begin
  if v_count is not null then
    raise notice 'pg_cron: % schedules', v_count;
  end if;
end
$$;
