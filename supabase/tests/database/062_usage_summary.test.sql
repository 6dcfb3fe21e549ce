-- usage_summary (GET /ops/usage): the same totals before and after retention
-- purges a rolled-up day's records, grouped as asked, and only the caller's
-- tenant through RLS.
begin;
select plan(10);

insert into public.tenants (id, name, slug) values
  ('dddddddd-0000-0000-0000-000000000062', 'Summary A', 'summary-a'),
  ('dddddddd-0000-0000-0000-000000000063', 'Summary B', 'summary-b');

-- Ten days ago (rollable) five records over two model aliases, and one record today.
create temporary table summary_days as select (now() at time zone 'UTC')::date as today;
insert into public.usage_records (request_id, tenant_id, provider, upstream_model, model_alias, prompt_tokens,
  completion_tokens, cost_usd_micros, cache_hit, created_at)
select 'sum-' || n, 'dddddddd-0000-0000-0000-000000000062', 'openai', 'gpt-4o-mini',
       case when n % 2 = 0 then 'chat' else 'mini' end, 10 * n, n, 100 * n, n = 5,
       ((select today from summary_days) - 10)::timestamp at time zone 'UTC' + make_interval(mins => n * 7)
from generate_series(1, 5) n;
insert into public.usage_records (request_id, tenant_id, provider, upstream_model, model_alias, prompt_tokens,
  completion_tokens, cost_usd_micros, created_at)
values ('sum-today', 'dddddddd-0000-0000-0000-000000000062', 'openai', 'gpt-4o-mini', 'chat', 3, 4, 70, now());

create temporary table summary_before as
select * from public.usage_summary('dddddddd-0000-0000-0000-000000000062', null, null, array['model']);

select results_eq('select model, requests, prompt_tokens, completion_tokens, cost_usd_micros, cache_hits from summary_before',
  $$values ('chat'::text, 3::bigint, 63::bigint, 10::bigint, 670::bigint, 0::bigint),
           ('mini', 3, 90, 9, 900, 1)$$,
  'grouped by model: requests, tokens, cost and cache hits per alias, from the records');
select results_eq($$select provider, model, requests from public.usage_summary('dddddddd-0000-0000-0000-000000000062', null, null, '{}')$$,
  $$values (null::text, null::text, 6::bigint)$$, 'without groups: one row, group columns null');

-- Roll the old day up, then let retention purge its records.
select ok(public.rollup_usage(366) >= 1, 'the day ten days ago is rolled up');
update public.retention_settings set days = 1 where kind = 'usage_records';
select is(public.purge_usage_records(100), 5, 'retention purges that day''s five records');

select results_eq($$select model, requests, prompt_tokens, completion_tokens, cost_usd_micros, cache_hits
    from public.usage_summary('dddddddd-0000-0000-0000-000000000062', null, null, array['model'])$$,
  'select model, requests, prompt_tokens, completion_tokens, cost_usd_micros, cache_hits from summary_before',
  'after the purge the totals are the same: the purged day comes from usage_daily');
select results_eq($$select dialect, requests from public.usage_summary('dddddddd-0000-0000-0000-000000000062', null, null, array['dialect'])$$,
  $$values ('openai_chat'::text, 6::bigint)$$, 'grouped by dialect, the purged day keeps its dialect in usage_daily');
select results_eq($$select requests, cost_usd_micros from public.usage_summary('dddddddd-0000-0000-0000-000000000062',
    ((select today from summary_days) - 10)::timestamp at time zone 'UTC',
    ((select today from summary_days) - 9)::timestamp at time zone 'UTC', '{}')$$,
  $$values (5::bigint, 1500::bigint)$$, 'a range that covers exactly the rolled day counts it once');
select results_eq($$select requests, cost_usd_micros from public.usage_summary('dddddddd-0000-0000-0000-000000000062',
    now() - interval '1 hour', null, '{}')$$,
  $$values (1::bigint, 70::bigint)$$, 'a range that leaves the rolled day out counts only today''s record');

-- A member of tenant B sees nothing of tenant A through RLS; tenant A's own member sees it all.
create temporary table summary_users as
select tests.create_user('summary-b@example.test') as member_b, tests.create_user('summary-a@example.test') as member_a;
insert into public.memberships (tenant_id, user_id, role)
select 'dddddddd-0000-0000-0000-000000000063'::uuid, member_b, 'admin' from summary_users
union all
select 'dddddddd-0000-0000-0000-000000000062'::uuid, member_a, 'member' from summary_users;
select tests.authenticate_as((select member_b from summary_users));
select is_empty($$select * from public.usage_summary('dddddddd-0000-0000-0000-000000000062', null, null, array['model'])$$,
  'a member of another tenant gets no rows for tenant A');
select tests.clear_authentication();
select tests.authenticate_as((select member_a from summary_users));
select results_eq($$select requests from public.usage_summary('dddddddd-0000-0000-0000-000000000062', null, null, '{}')$$,
  $$values (6::bigint)$$, 'a member of tenant A gets its totals, the purged day included');
select tests.clear_authentication();

select * from finish();
rollback;
