-- Idempotent enqueue, and requeue out of the DLQ: same job id, history
-- intact, audited, and a dead letter is requeued once however often it is
-- asked for.
begin;
select plan(34);

insert into public.tenants (id, name, slug) values
  ('a1000000-0000-0000-0000-000000000001', 'Jobs A', 'jobs-idem-a'),
  ('b1000000-0000-0000-0000-000000000002', 'Jobs B', 'jobs-idem-b');
select public.register_job_kind('test.idem', 'idempotency probe', 1, 60);

-- enqueue_job
select public.enqueue_job('test.idem', '{"v":1}', 'a1000000-0000-0000-0000-000000000001', null, 0, null, 'order-42') as first \gset
select is(public.enqueue_job('test.idem', '{"v":1}', 'a1000000-0000-0000-0000-000000000001', null, 0, null, 'order-42'),
  :'first'::uuid, 'the same tenant, key and request return the existing job');
select throws_ok($$select public.enqueue_job('test.idem', '{"v":2}', 'a1000000-0000-0000-0000-000000000001', null, 0, null, 'order-42')$$,
  'SYJ07', 'idempotency key "order-42" was already used for a different job',
  'the same key with another payload is refused, not answered with the first job');
select throws_ok($$select public.enqueue_job('test.idem', '{"v":1}', 'a1000000-0000-0000-0000-000000000001', null, 5, null, 'order-42')$$,
  'SYJ07', 'idempotency key "order-42" was already used for a different job',
  'and so is the same payload at another priority');
select is((select count(*)::int from public.jobs where idempotency_key = 'order-42'), 1, 'no second job');
select is((select payload from public.jobs where id = :'first'), '{"v":1}'::jsonb, 'the first payload stands');
select is((select count(*)::int from public.job_events where job_id = :'first'), 1, 'and one queued event');
select isnt(public.enqueue_job('test.idem', '{}', 'b1000000-0000-0000-0000-000000000002', null, 0, null, 'order-42'),
  :'first'::uuid, 'another tenant''s key is another job');
select is(public.enqueue_job('test.idem', '{}', null, null, 0, null, 'system-1'),
  public.enqueue_job('test.idem', '{}', null, null, 0, null, 'system-1'), 'keys of tenant-less jobs are idempotent too');
select results_eq(
  $$select count(distinct id)::int from public.enqueue_jobs('[
      {"kind":"test.idem","tenant_id":"a1000000-0000-0000-0000-000000000001","idempotency_key":"order-42"},
      {"kind":"test.idem","tenant_id":"a1000000-0000-0000-0000-000000000001","idempotency_key":"batch-1"},
      {"kind":"test.idem","tenant_id":"a1000000-0000-0000-0000-000000000001","idempotency_key":"batch-1"},
      {"kind":"test.idem","payload":{"n":1}}]')$$,
  $$values (3)$$, 'enqueue_jobs: a key seen before and a key twice in the batch each yield one job');
select throws_ok($$select public.enqueue_job('no.such.kind', '{}')$$, 'SYJ04', 'unknown job kind "no.such.kind"',
  'an unknown kind is refused');

-- A dead letter (max_attempts 1, retryable failure: out of attempts).
-- Priority -10: claimed before the jobs above.
select public.enqueue_job('test.idem', '{"doomed":true}', 'a1000000-0000-0000-0000-000000000001', null, -10) as dead \gset
select lease_token as dead_token from public.claim_jobs('w', array['test.idem'], 1, 30) c where c.id = :'dead' \gset
select is(public.fail_job(:'dead', :'dead_token', 'upstream 500', true), 'failed_dlq', 'out of attempts: dead-lettered');
select is((select count(*)::int from public.job_events where job_id = :'dead'), 3, 'queued, assigned, failed_dlq');

-- Dry run: says what would happen, changes nothing.
select is(public.requeue_dead_letter(:'dead', 'user:ops', 'fixed the upstream', 'key-1', true), 'would_requeue',
  'a dry run says it would requeue');
select is((select status from public.jobs where id = :'dead'), 'failed_dlq', 'and leaves the job dead-lettered');
select ok((select requeued_at is null from public.job_dead_letters where job_id = :'dead'), 'and the dead letter waiting');

-- Requeue: same id, back to queued, audited.
select is(public.requeue_dead_letter(:'dead', 'user:ops', 'fixed the upstream', 'key-1'), 'requeued', 'requeue answers requeued');
select results_eq(format($$select status, attempts, lease_token from public.jobs where id = %L$$, :'dead'),
  $$values ('queued', 0, null::uuid)$$, 'the same job is queued again with a fresh set of attempts');
select results_eq(format($$select requeued_by, requeue_reason, requeue_request_key, requeued_at is not null
                           from public.job_dead_letters where job_id = %L$$, :'dead'),
  $$values ('user:ops', 'fixed the upstream', 'key-1', true)$$, 'the dead letter records who, why and when');
select results_eq(format($$select event, from_status, to_status, attempt, details ->> 'actor', details ->> 'reason',
                                  details ->> 'request_key', (details ->> 'previous_attempts')::int
                           from public.job_events where job_id = %L order by id desc limit 1$$, :'dead'),
  $$values ('requeued', 'failed_dlq', 'queued', 1, 'user:ops', 'fixed the upstream', 'key-1', 1)$$,
  'a requeued event records the transition, who, why and the attempts used');
select is((select count(*)::int from public.job_events where job_id = :'dead'), 4, 'the history before the requeue is intact');

-- Twice, with the same key or another: requeued once.
select is(public.requeue_dead_letter(:'dead', 'user:ops', 'fixed the upstream', 'key-1'), 'already_requeued',
  'the same request again is a no-op');
select is(public.requeue_dead_letter(:'dead', 'user:other', 'again', 'key-2'), 'already_requeued',
  'another key on a requeued dead letter is a no-op');
select is((select count(*)::int from public.job_events where job_id = :'dead' and event = 'requeued'), 1,
  'one requeued event in all');

-- It fails again: a new dead letter. The old key does not requeue it; a new request does.
select lease_token as dead_token2 from public.claim_jobs('w', array['test.idem'], 1, 30) c where c.id = :'dead' \gset
select is(public.fail_job(:'dead', :'dead_token2', 'upstream 500 again', false), 'failed_dlq', 'the requeued job fails again');
select is((select count(*)::int from public.job_dead_letters where job_id = :'dead'), 2, 'a second dead letter for the same job');
select is(public.requeue_dead_letter(:'dead', 'user:ops', 'fixed the upstream', 'key-1'), 'already_requeued',
  'replaying the first request does not requeue the new dead letter');
select is(public.requeue_dead_letter(:'dead', 'user:ops', 'really fixed', 'key-3'), 'requeued', 'a new request does');

-- requeue_dead_letters: stored answers per key.
select public.enqueue_job('test.idem', '{}', 'a1000000-0000-0000-0000-000000000001', null, -20) as dead2 \gset
select lease_token as dead2_token from public.claim_jobs('w', array['test.idem'], 1, 30) c where c.id = :'dead2' \gset
select public.fail_job(:'dead2', :'dead2_token', 'bad input', false);
select public.requeue_dead_letters(array[:'dead2'::uuid, :'first'::uuid], null, 'service_role', 'bulk retry', 'bulk-1') as answer \gset
select is(:'answer'::jsonb,
  jsonb_build_object('requeued', jsonb_build_array(:'dead2'), 'skipped',
    jsonb_build_array(jsonb_build_object('id', :'first', 'reason', 'not_dead_lettered')), 'dry_run', false),
  'requeue_dead_letters answers requeued and skipped ids, in request order');
select is(public.requeue_dead_letters(array[:'dead2'::uuid, :'first'::uuid], null, 'service_role', 'bulk retry', 'bulk-1'),
  :'answer'::jsonb || '{"replayed": true}', 'the same key replays the stored answer');
select is(public.requeue_dead_letters(array[:'dead2'::uuid], null, 'service_role', 'bulk retry', 'bulk-2') -> 'skipped',
  jsonb_build_array(jsonb_build_object('id', :'dead2', 'reason', 'already_requeued')),
  'another key skips what is already requeued');
select throws_ok(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'service_role', 'other reason', 'bulk-1')$$, :'dead2'),
  'SYJ07', 'Idempotency-Key bulk-1 was already used for a different dlq-retry request', 'a key reused for another request is refused');
select throws_ok(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'user:b', 'x', null, false, 100,
                          'b1000000-0000-0000-0000-000000000002')$$, :'dead2'),
  'SYJ03', format('dead letter not found: %s', :'dead2'), 'another tenant''s job is not found');
select throws_ok($$select public.requeue_dead_letters(null, '{}', 'service_role', ' ')$$, '22023',
  'reason: required, at most 1000 characters', 'a reason is required');
select throws_ok($$select public.requeue_dead_letters(null, '{}', 'service_role', 'x', null, false, 1001)$$, '22023',
  'max: must be between 1 and 1000', 'max is capped at 1000');

select * from finish();
rollback;
