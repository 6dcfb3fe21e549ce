-- Retry backoff (exponential, capped, jittered), and the reaper's pg_cron
-- setup, which now lives in private.schedule_maintenance (060_schedules).
begin;
select plan(6);

select public.register_job_kind('test.backoff', 'backoff probe', 10, 60, 1, 8);

create temporary table delays as
select attempt, extract(epoch from private.job_retry_delay('test.backoff', attempt))::numeric as seconds
from generate_series(1, 12) attempt, generate_series(1, 50) sample;

select is_empty($$select * from delays where attempt = 1 and seconds not between 0.5 and 1$$,
  'after attempt 1 the delay is 50-100% of the base (1 s)');
select is_empty($$select * from delays where attempt = 3 and seconds not between 2 and 4$$,
  'after attempt 3 it is 50-100% of base * 2^2');
select is_empty($$select * from delays where attempt >= 5 and seconds not between 4 and 8$$,
  'from attempt 5 on it is capped (50-100% of the 8 s cap)');
select ok((select count(distinct seconds) from delays where attempt = 3) > 10, 'the delay is jittered');

select hasnt_function('private', 'schedule_job_maintenance', array[]::text[],
  'the reaper-only pg_cron setup is gone: private.schedule_maintenance schedules every schedule, the reaper included');
select ok(not exists (select 1 from pg_namespace where nspname = 'cron')
          or exists (select 1 from pg_extension where extname = 'pg_cron'),
  'without pg_cron the migration created nothing of its own');

select * from finish();
rollback;
