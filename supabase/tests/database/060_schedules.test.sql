-- Schedules and their recorded runs: start/finish, run_scheduled_task
-- recording success and failure, schedule_status, the pg_cron guard, and
-- who may read or run them, down to anon.
begin;
select plan(23);

-- One definition for pg_cron, the worker and readiness.
select ok((select count(*) from public.schedules where name in
  ('reap_expired_jobs', 'reap_expired_reservations', 'provider_health')) = 3,
  'the reapers and provider health are defined as schedules');
select is((select kind from public.schedules where name = 'provider_health'), 'http',
  'provider health is an HTTP schedule (the function probes providers)');
select is((select sql_call from public.schedules where name = 'purge_response_cache'), 'public.purge_expired_response_cache()',
  'expired response-cache entries are purged on a schedule');
select throws_ok($$insert into public.schedules (name, interval_seconds, kind, sql_call, description)
  values ('bad_call', 60, 'sql', 'public.x(); drop table public.jobs', 'injection')$$,
  '23514', 'new row for relation "schedules" violates check constraint "schedules_sql_call_check"', 'a schedule''s SQL call is one qualified function call, nothing more');

-- start / finish.
create temporary table run_ids (label text primary key, id bigint);
insert into run_ids values ('manual', public.start_scheduled_run('reap_expired_jobs', 'test'));
select results_eq($$select name, runner, outcome from public.scheduled_runs where id = (select id from run_ids where label = 'manual')$$,
  $$values ('reap_expired_jobs'::text, 'test'::text, null::text)$$, 'a started run is open (no outcome yet)');
select lives_ok($$select public.finish_scheduled_run((select id from run_ids where label = 'manual'), 'ok', null, '{"n": 1}')$$,
  'a run finishes ok');
select results_eq($$select outcome, error, result, duration_ms >= 0, finished_at >= started_at from public.scheduled_runs
  where id = (select id from run_ids where label = 'manual')$$,
  $$values ('ok'::text, null::text, '{"n": 1}'::jsonb, true, true)$$, 'a finished run has its outcome, result and duration');
select throws_ok($$select public.finish_scheduled_run((select id from run_ids where label = 'manual'), 'failed', 'late')$$,
  'SYS03', format('scheduled run %s does not exist or is already finished', (select id from run_ids where label = 'manual')), 'a run finishes once');
select throws_ok($$select public.finish_scheduled_run((select id from run_ids where label = 'manual'), 'maybe')$$,
  'SYS02', 'outcome must be ok or failed', 'the outcome is ok or failed');
select throws_ok($$select public.start_scheduled_run('no_such_schedule', 'test')$$,
  'SYS01', 'unknown schedule: no_such_schedule', 'an unknown schedule is refused');

-- run_scheduled_task records success and failure.
select is(public.run_scheduled_task('reap_expired_jobs', 'test') ->> 'outcome', 'ok', 'a SQL task runs');
select results_eq($$select runner, outcome, jsonb_typeof(result) from public.scheduled_runs
  where name = 'reap_expired_jobs' order by id desc limit 1$$,
  $$values ('test'::text, 'ok'::text, 'number'::text)$$, 'its run is recorded with the task''s result');
insert into public.schedules (name, interval_seconds, kind, sql_call, description)
values ('test_broken', 60, 'sql', 'public.no_such_function()', 'fails on purpose');
select is(public.run_scheduled_task('test_broken', 'test') ->> 'outcome', 'failed', 'a failing task answers failed, not an exception');
select results_eq($$select outcome, error like '42883: function public.no_such_function() does not exist%' from public.scheduled_runs
  where name = 'test_broken'$$,
  $$values ('failed'::text, true)$$, 'the failure is recorded with its SQLSTATE and message');
select throws_ok($$select public.run_scheduled_task('provider_health', 'test')$$,
  'SYS04', 'schedule provider_health is an HTTP endpoint (/provider-health/run), not a SQL task', 'an HTTP schedule is not run as SQL');

-- schedule_status: latest run, latest success, due.
select results_eq($$select last_outcome, last_success_at is null, due from public.schedule_status() where name = 'test_broken'$$,
  $$values ('failed'::text, true, false)$$, 'status shows the latest failure and no success; just ran, so not due');
update public.scheduled_runs set started_at = now() - interval '2 minutes' where name = 'test_broken';
select is((select due from public.schedule_status() where name = 'test_broken'), true, 'a schedule is due once its interval passed');
update public.schedules set enabled = false where name = 'test_broken';
select is((select due from public.schedule_status() where name = 'test_broken'), false, 'a disabled schedule is never due');

-- pg_cron: schedules only where the extension exists.
select is(private.schedule_maintenance() is not null, exists (select 1 from pg_extension where extname = 'pg_cron'),
  'the schedules go on pg_cron exactly when it is installed');
select is(private.cron_expression(60) || ' | ' || private.cron_expression(300) || ' | ' || private.cron_expression(3600)
  || ' | ' || private.cron_expression(86400) || ' | ' || private.cron_expression(30),
  '*/1 * * * * | */5 * * * * | 0 */1 * * * | 0 0 * * * | 30 seconds', 'intervals map to pg_cron expressions');

-- Who may run and read them.
select tests.authenticate_as_service_role();
select ok((select count(*) from public.schedule_status()) >= 3, 'the service role reads the schedule status');
select tests.clear_authentication();
select tests.authenticate_as(tests.create_user('schedules-member@example.test'));
select throws_ok($$select public.run_scheduled_task('reap_expired_jobs', 'user')$$,
  '42501', 'permission denied for function run_scheduled_task', 'a signed-in user cannot run a schedule');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.scheduled_runs$$,
  '42501', 'permission denied for table scheduled_runs', 'anon cannot read the scheduled runs');
select tests.clear_authentication();

select * from finish();
rollback;
