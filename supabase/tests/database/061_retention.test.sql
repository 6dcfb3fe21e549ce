-- Usage rollup and retention: rolled-up totals are exact and the usage
-- invariant stays empty through a batched purge (and catches a record
-- deleted behind the rollup's back); job_events stay append-only except
-- through purge_job_events; requeued dead letters, the key audit (kept
-- longest) and the run log are purged by age; who may do what, down to anon.
begin;
select plan(30);

insert into public.tenants (id, name, slug) values
  ('dddddddd-0000-0000-0000-000000000061', 'Retention A', 'retention-a');

-- Usage: two whole days long ago (rollable), yesterday (not yet: a day of lag) and today.
create temporary table test_days as
select (now() at time zone 'UTC')::date as today;
insert into public.usage_records (request_id, tenant_id, provider, upstream_model, model_alias, prompt_tokens,
  completion_tokens, cost_usd_micros, cache_hit, created_at)
select 'ret-' || d || '-' || n, 'dddddddd-0000-0000-0000-000000000061', 'openai', 'gpt-4o-mini',
       case when n % 2 = 0 then 'chat' else 'mini' end, 10 * n, n, 100 * n, n = 5,
       ((select today from test_days) - d)::timestamp at time zone 'UTC' + make_interval(mins => n * 7)
from generate_series(1, 3) d, generate_series(1, 5) n;
insert into public.usage_records (request_id, tenant_id, cost_usd_micros, created_at)
values ('ret-today', 'dddddddd-0000-0000-0000-000000000061', 7, now());

create temporary table usage_before as
select count(*) as records, sum(cost_usd_micros) as cost, sum(prompt_tokens + completion_tokens) as tokens
from public.usage_records where tenant_id = 'dddddddd-0000-0000-0000-000000000061';

select is(public.rollup_usage(), 2, 'two whole days that ended over a day ago are rolled up');
select is(public.rollup_usage(), 0, 'a day is rolled up once');
select results_eq($$select day, sum(requests)::int, sum(cost_usd_micros)::int from public.usage_daily
  where tenant_id = 'dddddddd-0000-0000-0000-000000000061' group by day order by day$$,
  $$values ((select today from test_days) - 3, 5, 1500), ((select today from test_days) - 2, 5, 1500)$$,
  'usage_daily holds each rolled day''s exact requests and cost');
select is((select count(*)::int from public.usage_daily
  where tenant_id = 'dddddddd-0000-0000-0000-000000000061' and day = (select today from test_days) - 3), 3,
  'totals are kept per model alias and cache hit (3 combinations that day)');
select is_empty('select * from public.usage_invariant_violations()', 'the invariant holds after the rollup');
select throws_ok('select public.rollup_usage(0)', '22023', 'max_days must be between 1 and 366', 'max_days is bounded');

-- The purge deletes only rolled days past the retention, in batches, counted on the rollup.
update public.retention_settings set days = 1 where kind = 'usage_records';
select is(public.purge_usage_records(4), 4, 'a purge deletes at most one batch');
select is_empty('select * from public.usage_invariant_violations()', 'the invariant holds in the middle of a purge');
select is(public.purge_usage_records(100), 6, 'the next batch takes the rest of the rolled days');
select is(public.purge_usage_records(100), 0, 'nothing more: yesterday is past the retention but not rolled up, today is recent');
select results_eq($$select count(*)::int from public.usage_records where tenant_id = 'dddddddd-0000-0000-0000-000000000061'$$,
  $$values (6)$$, 'yesterday''s five and today''s record remain');
select is_empty('select * from public.usage_invariant_violations()', 'the invariant holds after the purge');
select results_eq($$
  select ((select sum(requests) from public.usage_daily where tenant_id = 'dddddddd-0000-0000-0000-000000000061')
         + (select count(*) from public.usage_records where tenant_id = 'dddddddd-0000-0000-0000-000000000061'
            and created_at >= ((select today from test_days) - 1)::timestamp at time zone 'UTC'))::bigint,
         ((select sum(cost_usd_micros) from public.usage_daily where tenant_id = 'dddddddd-0000-0000-0000-000000000061')
         + (select sum(cost_usd_micros) from public.usage_records where tenant_id = 'dddddddd-0000-0000-0000-000000000061'
            and created_at >= ((select today from test_days) - 1)::timestamp at time zone 'UTC'))::bigint$$,
  $$select records::bigint, cost::bigint from usage_before$$,
  'daily totals plus the records still there equal what there was before: totals stay exact');
select is((select sum(purged_records)::int from public.usage_rollups where tenant_id = 'dddddddd-0000-0000-0000-000000000061'),
  10, 'the rollups count what the purge removed');
select ok(exists (select 1 from public.retention_log where kind = 'usage_records' and deleted = 4),
  'each purge batch is logged');

-- A record of a rolled day deleted any other way shows in the invariant.
update public.retention_settings set days = 90 where kind = 'usage_records';
insert into public.usage_records (request_id, tenant_id, cost_usd_micros, created_at)
values ('ret-late', 'dddddddd-0000-0000-0000-000000000061', 5,
        ((select today from test_days) - 2)::timestamp at time zone 'UTC' + interval '23 hours');
select results_eq($$select kind, expected, actual from public.usage_invariant_violations() order by kind$$,
  $$values ('rollup_cost_mismatch'::text, 1500::bigint, 1505::bigint), ('rollup_requests_mismatch', 5, 6)$$,
  'a record that appears in a rolled day after its rollup breaks the invariant, naming it');
delete from public.usage_records where request_id = 'ret-late';

-- job_events: append-only, except purge_job_events on finished jobs.
select public.register_job_kind('test.retention', 'retention probe', 1, 60, 1, 1);
select public.enqueue_job('test.retention', '{}', null, null, 0) as finished_job \gset
select lease_token as token from public.claim_jobs('retention-worker', array['test.retention'], 1, 60) \gset
select public.complete_job(:'finished_job', :'token', '{}');
select public.enqueue_job('test.retention', '{}', null, null, 0) as queued_job \gset
alter table public.job_events disable trigger job_events_append_only;
update public.job_events set at = now() - interval '40 days' where job_id in (:'finished_job', :'queued_job');
alter table public.job_events enable trigger job_events_append_only;
select throws_ok(format('delete from public.job_events where job_id = %L', :'finished_job'),
  'SYJ06', 'job_events is append-only: delete is not allowed', 'a plain DELETE of job events is still refused');
select throws_ok($$set local switchyard.job_events_purge = 'off'; update public.job_events set details = '{}'$$,
  'SYJ06', 'job_events is append-only: update is not allowed', 'UPDATE is refused whatever the session sets');
select ok(public.purge_job_events(1000) >= 3, 'the purge deletes old events of finished jobs');
select is((select count(*)::int from public.job_events where job_id = :'finished_job'), 0,
  'the finished job''s old events are gone');
select is((select count(*)::int from public.job_events where job_id = :'queued_job'), 1,
  'a job that is not finished keeps its events');

-- Dead letters: requeued ones past the retention go, pending ones stay.
insert into public.job_dead_letters (job_id, kind, payload, attempts, failed_at, requeued_at, requeued_by, requeue_reason)
values (:'finished_job', 'test.retention', '{}', 1, now() - interval '60 days', now() - interval '59 days', 'ops', 'old'),
       (:'queued_job', 'test.retention', '{}', 1, now() - interval '60 days', null, null, null);
select is(public.purge_dead_letters(), 1, 'one old requeued dead letter is purged');
select is((select count(*)::int from public.job_dead_letters where job_id = :'queued_job'), 1,
  'a pending dead letter waits for an operator, however old');

-- Key audit: kept at least 365 days and never less than any other kind.
select throws_ok($$update public.retention_settings set days = 30 where kind = 'secure_keys_audit'$$,
  '23514', 'new row for relation "retention_settings" violates check constraint "retention_settings_audit_kept_long"', 'the key audit cannot be kept less than 365 days');
insert into public.secure_keys_audit (key_id, provider, label, action, actor, at) values
  (gen_random_uuid(), 'openai', 'default', 'decrypt', 'test', now() - interval '800 days'),
  (gen_random_uuid(), 'openai', 'default', 'decrypt', 'test', now() - interval '500 days');
update public.retention_settings set days = 600 where kind = 'job_events';
select is(public.purge_secure_keys_audit(), 1,
  'audit rows are purged past the longest retention of any kind (600 days here, not the audit''s 730)');

-- The retention_purge schedule runs every purge and records the run.
select is(public.run_scheduled_task('retention_purge', 'test') ->> 'outcome', 'ok', 'the retention schedule runs');
select throws_ok('select public.run_retention(0)', '22023', 'batch must be between 1 and 100000', 'the batch is bounded');

-- Who may do what.
select tests.authenticate_as_service_role();
select lives_ok($$update public.retention_settings set days = 45 where kind = 'job_events'$$,
  'the service role changes a retention period');
select tests.clear_authentication();
select tests.authenticate_as(tests.create_user('retention-member@example.test'));
select throws_ok('select public.run_retention()', '42501', 'permission denied for function run_retention', 'a signed-in user cannot purge');
select tests.authenticate_as_anon();
select throws_ok('select * from public.retention_settings', '42501', 'permission denied for table retention_settings', 'anon cannot read the retention settings');
select tests.clear_authentication();

select * from finish();
rollback;
