-- Monthly partitions (issue 19): every partitioned table has its default and
-- the current and next two months; a month made later takes its rows out of
-- the default; retention drops a whole month only when every day of it is
-- rolled up, counting its records on usage_rollups so the rollup invariant
-- holds across the drop; members still see only their tenant's rows and no
-- API role reaches a partition directly; a request id stays used across months.
begin;
select plan(31);

insert into public.tenants (id, name, slug) values
  ('eeeeeeee-0000-0000-0000-000000000720', 'Partitions A', 'partitions-a'),
  ('eeeeeeee-0000-0000-0000-000000000721', 'Partitions B', 'partitions-b'),
  ('eeeeeeee-0000-0000-0000-000000000722', 'Partitions C', 'partitions-c');

-- 1. Partitions exist ahead.
select is((select count(*)::int
           from private.monthly_partitioned_tables() t, generate_series(0, 2) m
           where to_regclass(format('private.%s_p%s', t.table_name,
             to_char(date_trunc('month', now() at time zone 'UTC') + make_interval(months => m), 'YYYYMM'))) is not null),
  12, 'each of the four tables has this month and the next two');
select is((select count(*)::int from private.monthly_partitioned_tables() t
           where to_regclass(format('private.%s_default', t.table_name)) is not null),
  4, 'each has a default partition');
select is(public.create_partitions_ahead(), 0, 'making partitions ahead again makes none');
select is(public.create_partitions_ahead(3), 4, 'one more month ahead: one more partition per table');
select is((select sql_call from public.schedules where name = 'partition_maintenance'), 'public.create_partitions_ahead()',
  'the partition_maintenance schedule makes them');
select throws_ok('select public.create_partitions_ahead(25)', '22023', 'months_ahead must be between 0 and 24',
  'months_ahead is bounded');

-- 2. An old month: rows land in the default, and move into the month when it is made.
insert into public.usage_records (request_id, tenant_id, provider, upstream_model, model_alias, prompt_tokens,
  completion_tokens, cost_usd_micros, created_at) values
  ('part-jun-a1', 'eeeeeeee-0000-0000-0000-000000000720', 'openai', 'gpt-4o-mini', 'chat', 10, 5, 100, '2026-06-10 08:00Z'),
  ('part-jun-a2', 'eeeeeeee-0000-0000-0000-000000000720', 'openai', 'gpt-4o-mini', 'chat', 10, 5, 200, '2026-06-10 09:00Z'),
  ('part-jun-a3', 'eeeeeeee-0000-0000-0000-000000000720', 'openai', 'gpt-4o-mini', 'chat', 10, 5, 300, '2026-06-11 09:00Z'),
  ('part-jun-b1', 'eeeeeeee-0000-0000-0000-000000000721', 'openai', 'gpt-4o-mini', 'chat', 20, 5, 400, '2026-06-10 10:00Z'),
  ('part-jul-a1', 'eeeeeeee-0000-0000-0000-000000000720', 'openai', 'gpt-4o-mini', 'chat', 1, 1, 50, '2026-07-20 10:00Z');
select is((select count(*)::int from private.usage_records_default where request_id like 'part-j%'), 5,
  'rows of a month with no partition land in the default partition');
select ok(private.create_month_partition('usage_records', 'created_at', '2026-06-01')
      and private.create_month_partition('usage_records', 'created_at', '2026-07-01'),
  'June and July are made later');
select is((select count(*)::int from private.usage_records_p202606), 4, 'June''s rows moved into June');
select is((select count(*)::int from private.usage_records_default where request_id like 'part-j%'), 0,
  'and out of the default');
select is((select count(*)::int from public.usage_records where request_id like 'part-j%'), 5,
  'the parent still reads every row');

select is(public.rollup_usage(366), 3, 'the three days are rolled up');
select is(public.record_feedback('eeeeeeee-0000-0000-0000-000000000720', 'part-jun-a1',
  'api_key:00000000-0000-0000-0000-000000000720', null, null, 1) ->> 'status', 'created', 'June holds a rated request');

-- 3. Retention drops June only once every (tenant, day) of it is rolled up.
insert into public.usage_records (request_id, tenant_id, cost_usd_micros, created_at)
values ('part-jun-late', 'eeeeeeee-0000-0000-0000-000000000722', 9, '2026-06-15 10:00Z');
select ok(not (public.drop_expired_partitions() ? 'usage_records'),
  'a month with a record of a day not rolled up for its tenant is kept');
delete from public.usage_records where request_id = 'part-jun-late';
create temporary table daily_before as
select tenant_id, sum(requests) as requests, sum(cost_usd_micros) as cost from public.usage_daily
where tenant_id in ('eeeeeeee-0000-0000-0000-000000000720', 'eeeeeeee-0000-0000-0000-000000000721') group by tenant_id;
select is(public.drop_expired_partitions() -> 'usage_records', '["usage_records_p202606"]'::jsonb,
  'June, past the retention and rolled up, is dropped whole');
select ok(to_regclass('private.usage_records_p202606') is null and to_regclass('private.usage_records_p202607') is not null,
  'June is gone; July (days after the last rolled day) is kept');
select is_empty('select * from public.usage_invariant_violations()', 'the rollup invariant holds across the drop');
select results_eq($$select day, tenant_id, purged_records::int, purged_cost_usd_micros::int, purged_tokens::int
                    from public.usage_rollups where day < '2026-07-01' and tenant_id::text like 'eeeeeeee-%-00000000072_'
                    order by day, tenant_id$$,
  $$values ('2026-06-10'::date, 'eeeeeeee-0000-0000-0000-000000000720'::uuid, 2, 300, 30),
           ('2026-06-10'::date, 'eeeeeeee-0000-0000-0000-000000000721'::uuid, 1, 400, 25),
           ('2026-06-11'::date, 'eeeeeeee-0000-0000-0000-000000000720'::uuid, 1, 300, 15)$$,
  'the dropped records are counted on their days'' rollups');
select results_eq($$select tenant_id, sum(requests), sum(cost_usd_micros) from public.usage_daily
                    where tenant_id in ('eeeeeeee-0000-0000-0000-000000000720', 'eeeeeeee-0000-0000-0000-000000000721')
                    group by tenant_id order by tenant_id$$,
  $$select tenant_id, requests, cost from daily_before order by tenant_id$$,
  'the daily totals are unchanged by the drop');
select ok(exists (select 1 from public.retention_log where kind = 'usage_records' and deleted = 4),
  'the drop is logged with its row count');
select is((select count(*)::int from public.request_feedback where request_id = 'part-jun-a1'), 0,
  'the month''s feedback goes with it');

-- The other tables: months past their retention drop whole (the key audit past the longest one).
insert into public.secure_keys_audit (key_id, provider, label, action, actor, at) values
  (gen_random_uuid(), 'openai', 'default', 'decrypt', 'test', '2024-01-10Z');
insert into public.scheduled_runs (name, runner, started_at, finished_at, outcome)
overriding system value
select 'usage_rollup', 'test', '2026-05-10Z', '2026-05-10 00:00:01Z', 'ok';
select ok(private.create_month_partition('secure_keys_audit', 'at', '2024-01-01')
      and private.create_month_partition('scheduled_runs', 'started_at', '2026-05-01'), 'old months of the audit and the run log');
select is(public.drop_expired_partitions() - 'usage_records',
  '{"scheduled_runs": ["scheduled_runs_p202605"], "secure_keys_audit": ["secure_keys_audit_p202401"]}'::jsonb,
  'both are dropped whole');

-- 4. A request id is used once across months.
insert into public.usage_records (request_id, tenant_id, cost_usd_micros) values
  ('part-id-1', 'eeeeeeee-0000-0000-0000-000000000720', 1);
insert into public.usage_records (request_id, tenant_id, cost_usd_micros, created_at) values
  ('part-id-1', 'eeeeeeee-0000-0000-0000-000000000721', 1, date_trunc('month', now()) + interval '1 month 3 days');
select is((select count(*)::int from public.usage_records where request_id = 'part-id-1'), 1,
  'a second record of the id in another month is skipped (as on conflict do nothing was)');
select throws_ok($$insert into public.usage_records (request_id, tenant_id, cost_usd_micros, created_at, lease_id)
                   values ('part-id-1', 'eeeeeeee-0000-0000-0000-000000000721', 1, now() + interval '40 days', 'lease:x')$$,
  '23505', null, 'a leased record under a used id raises unique_violation');
delete from public.usage_request_ids where request_id = 'part-id-1';
select tests.authenticate_as_service_role();
select is(public.reserve_budgets('[{"request_id":"part-id-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000721","model_alias":"m","usd_micros":10,"tokens":5}]'::jsonb) -> 0 ->> 'status',
  'duplicate', 'past the two-day window the id is still a duplicate to reserve_budgets (found in usage_records)');
select is(public.record_cache_hit('part-id-1', 'eeeeeeee-0000-0000-0000-000000000721', null, null, 'm', 1, 1, 1), null,
  'and to record_cache_hit');
select throws_ok('select count(*) from private.usage_records_default', '42501', null,
  'the service role cannot read a partition directly');

-- 5. RLS through the parent; partitions closed to API roles.
select tests.clear_authentication();
select tests.create_user('partitions-a@example.test') as member_a \gset
insert into public.memberships (tenant_id, user_id, role) values ('eeeeeeee-0000-0000-0000-000000000720', :'member_a', 'member');
select tests.authenticate_as(:'member_a');
select is((select array_agg(distinct tenant_id)::text from public.usage_records where request_id like 'part-%'),
  '{eeeeeeee-0000-0000-0000-000000000720}', 'a member reads only their tenant''s records, across partitions');
select throws_ok(format('select count(*) from private.usage_records_p%s', to_char(now() at time zone 'UTC', 'YYYYMM')),
  '42501', null, 'a member cannot read a partition directly');
select tests.authenticate_as_anon();
select throws_ok('select count(*) from private.usage_records_default', '42501', null, 'nor can anon');

select * from finish();
rollback;
