-- Every transition writes exactly one job_events row in the same
-- transaction, through every job function; nothing else writes one; the log
-- is append-only for every role; every entry into failed_dlq has its dead
-- letter.
begin;
select plan(22);

select public.register_job_kind('test.events', 'event probe', 2, 60, 0.01, 0.01);

-- One job through a whole life: queued, assigned, retry, assigned, succeeded.
select public.enqueue_job('test.events', '{"n":1}', null, null, 0) as job \gset
select is((select count(*)::int from public.job_events where job_id = :'job'), 1, 'enqueue writes one event');
select is((select event from public.job_events where job_id = :'job'), 'queued', 'the first event is queued');

select lease_token as token1 from public.claim_jobs('worker-a', array['test.events'], 1, 60) \gset
select is((select count(*)::int from public.job_events where job_id = :'job'), 2, 'claim writes one event');

select public.heartbeat_job(:'job', :'token1', 120);
select is((select count(*)::int from public.job_events where job_id = :'job'), 2, 'a heartbeat is not a transition: no event');

select is(public.fail_job(:'job', :'token1', 'flaky upstream', true, 0), 'retry_scheduled', 'a retryable failure schedules a retry');
select lease_token as token2 from public.claim_jobs('worker-b', array['test.events'], 1, 60) \gset
select public.complete_job(:'job', :'token2', '{"ok":true}');

select results_eq(
  format($$select event, coalesce(from_status, '-'), to_status, attempt, coalesce(worker, '-')
           from public.job_events where job_id = %L order by id$$, :'job'),
  $$values ('queued', '-', 'queued', 0, '-'),
           ('assigned', 'queued', 'assigned', 1, 'worker-a'),
           ('retry_scheduled', 'assigned', 'retry_scheduled', 1, 'worker-a'),
           ('assigned', 'retry_scheduled', 'assigned', 2, 'worker-b'),
           ('succeeded', 'assigned', 'succeeded', 2, 'worker-b')$$,
  'one event per transition, in order, each from the previous status, with attempt and worker');
select is((select details ->> 'error' from public.job_events where job_id = :'job' and event = 'retry_scheduled'),
  'flaky upstream', 'the retry event carries the error');
select is((select details ->> 'retryable' from public.job_events where job_id = :'job' and event = 'retry_scheduled'),
  'true', 'and whether it was retryable');

-- A batch: one statement, one event per job.
select public.enqueue_job('test.events', '{"n":2}') as b1 \gset
select public.enqueue_job('test.events', '{"n":3}') as b2 \gset
select public.enqueue_job('test.events', '{"n":4}') as b3 \gset
create temporary table batch as select * from public.claim_jobs('worker-c', array['test.events'], 10, 60);
select is((select count(*)::int from batch), 3, 'a batch claim takes the three due jobs');
select is((select count(*)::int from public.job_events e join batch b on b.id = e.job_id where e.event = 'assigned'), 3,
  'a batch claim writes one assigned event per job');
select results_eq(
  $$select status, count(*)::int from public.complete_jobs(
      (select jsonb_agg(jsonb_build_object('id', id, 'lease_token', lease_token, 'result', null)) from batch)) group by status$$,
  $$values ('succeeded', 3)$$,
  'complete_jobs completes the batch');
select is((select count(*)::int from public.job_events e join batch b on b.id = e.job_id where e.event = 'succeeded'), 3,
  'and writes one succeeded event per job');

-- Dead letters: a non-retryable failure and an expired lease on the last attempt.
select public.enqueue_job('test.events', '{"n":5}', null, null, 0, 1) as doomed \gset
select lease_token as doomed_token from public.claim_jobs('worker-d', array['test.events'], 1, 60) \gset
select is(public.fail_job(:'doomed', :'doomed_token', 'bad payload', false), 'failed_dlq', 'a non-retryable failure dead-letters the job');
select results_eq(format($$select kind, payload, last_error, attempts from public.job_dead_letters where job_id = %L$$, :'doomed'),
  $$values ('test.events', '{"n":5}'::jsonb, 'bad payload', 1)$$,
  'the dead letter keeps kind, payload, error and attempts');

select public.enqueue_job('test.events', '{"n":6}', null, null, 0, 1) as stuck \gset
select * from public.claim_jobs('worker-e', array['test.events'], 1, 60);
update public.jobs set lease_expires_at = now() - interval '1 second' where id = :'stuck';
select is(public.reap_expired_jobs(), 1, 'the reaper takes the expired lease');
select results_eq(format($$select event, details ->> 'reason' from public.job_events where job_id = %L order by id desc limit 1$$, :'stuck'),
  $$values ('failed_dlq', 'lease_expired')$$,
  'a reaped last attempt is dead-lettered, with the reason in its event');
select is_empty($$select j.id from public.jobs j where j.status = 'failed_dlq'
                  and not exists (select 1 from public.job_dead_letters d where d.job_id = j.id and d.requeued_at is null)$$,
  'every failed_dlq job has a waiting dead letter');

-- Nobody rewrites history, the owner included.
select throws_ok($$update public.job_events set details = '{}'$$, 'SYJ06', 'job_events is append-only: update is not allowed',
  'the owner cannot update job_events');
select throws_ok($$delete from public.job_events$$, 'SYJ06', 'job_events is append-only: delete is not allowed',
  'the owner cannot delete job_events');
select throws_ok($$truncate public.job_events cascade$$, 'SYJ06', 'job_events is append-only: truncate is not allowed',
  'the owner cannot truncate job_events');
select tests.authenticate_as_service_role();
select throws_ok($$delete from public.job_events$$, '42501', 'permission denied for table job_events',
  'service_role cannot delete job_events');
select throws_ok($$insert into public.job_events (job_id, event, to_status, attempt) values (gen_random_uuid(), 'succeeded', 'succeeded', 1)$$,
  '42501', 'permission denied for table job_events', 'service_role cannot forge an event');
select tests.clear_authentication();

select * from finish();
rollback;
