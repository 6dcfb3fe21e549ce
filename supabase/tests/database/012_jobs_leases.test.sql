-- Lease tokens: heartbeat, complete, fail and skip act only under the current
-- token of an assigned job; a stale or wrong token raises SYJ02 with a clear
-- message and changes nothing.
begin;
select plan(24);

select public.register_job_kind('test.lease', 'lease probe', 3, 60, 0.01, 0.01);
select public.enqueue_job('test.lease', '{"n":1}') as job \gset
select lease_token as token, lease_expires_at as expires from public.claim_jobs('lease-worker', array['test.lease'], 1, 30) \gset

create temporary table before_job as select * from public.jobs where id = :'job';
create function tests.job_unchanged(p_id uuid)
returns boolean
language sql
as $$
  select (select to_jsonb(j) from public.jobs j where j.id = p_id) = (select to_jsonb(b) from before_job b where b.id = p_id)
$$;
create function tests.event_count(p_id uuid)
returns int
language sql
as $$ select count(*)::int from public.job_events where job_id = p_id $$;

select is(tests.event_count(:'job'), 2, 'queued and assigned so far');

-- A wrong token.
select gen_random_uuid() as wrong_token \gset
select throws_like(format($$select public.complete_job(%L, gen_random_uuid(), null)$$, :'job'),
  'cannot complete job %: lease token % does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)',
  'complete with a wrong token raises, saying why');
select throws_ok(format($$select public.complete_job(%L, %L, null)$$, :'job', :'wrong_token'), 'SYJ02',
  format('cannot complete job %s: lease token %s does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)', :'job', :'wrong_token'),
  'with SQLSTATE SYJ02');
select throws_ok(format($$select public.heartbeat_job(%L, %L, 30)$$, :'job', :'wrong_token'), 'SYJ02',
  format('cannot heartbeat job %s: lease token %s does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)', :'job', :'wrong_token'),
  'heartbeat with a wrong token raises SYJ02');
select throws_ok(format($$select public.fail_job(%L, %L, 'x', true)$$, :'job', :'wrong_token'), 'SYJ02',
  format('cannot fail job %s: lease token %s does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)', :'job', :'wrong_token'),
  'fail with a wrong token raises SYJ02');
select throws_ok(format($$select public.skip_job(%L, %L, 'x')$$, :'job', :'wrong_token'), 'SYJ02',
  format('cannot skip job %s: lease token %s does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)', :'job', :'wrong_token'),
  'skip with a wrong token raises SYJ02');
select throws_ok(format($$select public.complete_job(%L, null, null)$$, :'job'), 'SYJ02',
  format('cannot complete job %s: lease token null does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)', :'job'),
  'a null token holds nothing');
select ok(tests.job_unchanged(:'job'), 'the refused calls changed nothing on the job');
select is(tests.event_count(:'job'), 2, 'and recorded no event');
select throws_ok($$select public.complete_job('00000000-0000-0000-0000-00000000beef', gen_random_uuid(), null)$$, 'SYJ03',
  'job 00000000-0000-0000-0000-00000000beef not found', 'an unknown job is SYJ03, not found');

-- Heartbeats extend the lease and never shrink it.
select ok(public.heartbeat_job(:'job', :'token', 300) > :'expires'::timestamptz, 'a heartbeat extends the lease');
select is(public.heartbeat_job(:'job', :'token', 1), (select lease_expires_at from public.jobs where id = :'job'),
  'a shorter heartbeat keeps the longer lease');

-- The reaper takes an expired lease: the old token is stale from then on.
update public.jobs set lease_expires_at = now() - interval '1 second' where id = :'job';
select is(public.reap_expired_jobs(), 1, 'the reaper takes the expired job');
select is((select status from public.jobs where id = :'job'), 'retry_scheduled', 'which waits for a retry');
drop table before_job;
create temporary table before_job as select * from public.jobs where id = :'job';
select throws_like(format($$select public.complete_job(%L, %L, null)$$, :'job', :'token'),
  'cannot complete job %: its lease is no longer held (the job is retry_scheduled; it was finished, reaped or cancelled)',
  'the late complete of the reaped worker is refused');
select throws_ok(format($$select public.heartbeat_job(%L, %L, 30)$$, :'job', :'token'), 'SYJ02',
  format('cannot heartbeat job %s: its lease is no longer held (the job is retry_scheduled; it was finished, reaped or cancelled)', :'job'),
  'so is its late heartbeat');
select ok(tests.job_unchanged(:'job'), 'and they change nothing');

-- Claimed again: only the new token holds it.
update public.jobs set run_at = now() where id = :'job';
select lease_token as token2 from public.claim_jobs('other-worker', array['test.lease'], 1, 30) \gset
select throws_ok(format($$select public.complete_job(%L, %L, null)$$, :'job', :'token'), 'SYJ02',
  format('cannot complete job %s: lease token %s does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)', :'job', :'token'),
  'the first worker''s token does not complete the re-claimed job');
select lives_ok(format($$select public.complete_job(%L, %L, '{"by":"second"}')$$, :'job', :'token2'),
  'the current holder completes it');
select is((select result ->> 'by' from public.jobs where id = :'job'), 'second', 'with its result');
select throws_ok(format($$select public.complete_job(%L, %L, null)$$, :'job', :'token2'), 'SYJ02',
  format('cannot complete job %s: its lease is no longer held (the job is succeeded; it was finished, reaped or cancelled)', :'job'),
  'completing twice is refused: the lease ended with the first');

-- A lease that ran out but was not reaped yet is still its worker's.
select public.enqueue_job('test.lease', '{"n":2}') as late \gset
select lease_token as late_token from public.claim_jobs('slow-worker', array['test.lease'], 1, 30) \gset
update public.jobs set lease_expires_at = now() - interval '1 second' where id = :'late';
select lives_ok(format($$select public.complete_job(%L, %L, null)$$, :'late', :'late_token'),
  'a worker whose lease ran out completes, as long as the reaper has not taken the job');
select is(public.reap_expired_jobs(), 0, 'and the reaper then has nothing to take');

-- complete_jobs reports lost leases and leaves those jobs alone.
select public.enqueue_job('test.lease', '{"n":3}') as batch_job \gset
select lease_token as batch_token from public.claim_jobs('batch-worker', array['test.lease'], 1, 30) \gset
select results_eq(
  format($$select id, status from public.complete_jobs(jsonb_build_array(
    jsonb_build_object('id', %L::uuid, 'lease_token', gen_random_uuid()),
    jsonb_build_object('id', %L::uuid, 'lease_token', %L::uuid)))$$, :'batch_job', :'late', :'late_token'),
  format($$values (%L::uuid, 'lease_lost'), (%L::uuid, 'lease_lost')$$, :'batch_job', :'late'),
  'complete_jobs reports a wrong token and a finished job as lease_lost');

select * from finish();
rollback;
