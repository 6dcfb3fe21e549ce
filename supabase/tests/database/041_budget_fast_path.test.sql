-- The set-based reserve and settle (migration 20261123000600_economics.sql) answer and write exactly
-- what the request-by-request path does: each batch below runs through the
-- in-order function in a savepoint, its answers and resulting state are kept,
-- the savepoint is rolled back, and the public function must match.
begin;
select plan(25);

insert into public.tenants (id, name, slug) values
  ('eeeeeeee-0000-0000-0000-000000000041', 'Fast path', 'fast-path');
insert into public.tenant_api_keys (id, tenant_id, name, key_hash, prefix) values
  ('aaaaaaaa-0000-0000-0000-000000000041', 'eeeeeeee-0000-0000-0000-000000000041', 'fast', repeat('4', 64), 'sy_fast0041');
insert into public.budgets (id, tenant_id, scope, api_key_id, model_alias, unit, period, limit_amount) values
  ('bbbbbbbb-0000-0000-0000-000000000411', 'eeeeeeee-0000-0000-0000-000000000041', 'tenant', null, null, 'usd_micros', 'month', 1000),
  ('bbbbbbbb-0000-0000-0000-000000000412', 'eeeeeeee-0000-0000-0000-000000000041', 'api_key', 'aaaaaaaa-0000-0000-0000-000000000041', null, 'tokens', 'day', 500),
  ('bbbbbbbb-0000-0000-0000-000000000413', 'eeeeeeee-0000-0000-0000-000000000041', 'model', null, 'fast-model', 'tokens', 'total', 300);
insert into public.routing_policies (id, tenant_id, name, model_alias) values
  ('cccccccc-0000-0000-0000-000000000041', 'eeeeeeee-0000-0000-0000-000000000041', 'fast policy', 'fast-model');
insert into public.budgets (id, tenant_id, scope, policy_id, bucket, unit, period, limit_amount) values
  ('bbbbbbbb-0000-0000-0000-000000000414', 'eeeeeeee-0000-0000-0000-000000000041', 'bucket', 'cccccccc-0000-0000-0000-000000000041', 'treatment', 'usd_micros', 'total', 700);
insert into public.rate_limits (tenant_id, requests_per_minute, tokens_per_minute, burst) values
  ('eeeeeeee-0000-0000-0000-000000000041', 10, 10000, 1);

-- What a batch leaves behind, to compare the two paths.
create temporary view fast_path_state as
select (select coalesce(jsonb_agg(jsonb_build_array(c.budget_id, c.reserved, c.spent, c.overflow, c.request_count) order by c.budget_id), '[]')
          from public.usage_counters c join public.budgets b on b.id = c.budget_id
          where b.tenant_id = 'eeeeeeee-0000-0000-0000-000000000041') as counters,
       (select coalesce(jsonb_agg(jsonb_build_array(r.request_id, r.status, r.items, r.policy_id, r.bucket, r.domain) order by r.request_id), '[]')
          from public.budget_reservations r where r.tenant_id = 'eeeeeeee-0000-0000-0000-000000000041') as reservations,
       (select coalesce(jsonb_agg(jsonb_build_array(w.requests, w.tokens)), '[]')
          from public.rate_limit_windows w join public.rate_limits l on l.id = w.rate_limit_id
          where l.tenant_id = 'eeeeeeee-0000-0000-0000-000000000041') as windows;

-- 1. Three requests that all fit (key, model, bucket and tenant budgets, one rate limit, routing context).
\set batch1 '[{"request_id":"fp-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","api_key_id":"aaaaaaaa-0000-0000-0000-000000000041","model_alias":"fast-model","usd_micros":100,"tokens":50},{"request_id":"fp-2","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","api_key_id":"aaaaaaaa-0000-0000-0000-000000000041","model_alias":"other-model","usd_micros":200,"tokens":70,"policy_id":"cccccccc-0000-0000-0000-000000000041","bucket":"treatment","domain":"legal"},{"request_id":"fp-3","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","api_key_id":null,"model_alias":"fast-model","usd_micros":300,"tokens":90}]'
savepoint in_order;
select private.reserve_budgets_in_order(:'batch1'::jsonb) as expected \gset
select counters as expected_counters, reservations as expected_reservations, windows as expected_windows from fast_path_state \gset
rollback to savepoint in_order;
select is(public.reserve_budgets(:'batch1'::jsonb), :'expected'::jsonb, 'a batch that fits: the same answers as request by request');
select is((select counters from fast_path_state), :'expected_counters'::jsonb, 'the same counters');
select is((select reservations from fast_path_state), :'expected_reservations'::jsonb, 'the same reservations, with the same items');
select is((select windows from fast_path_state), :'expected_windows'::jsonb, 'the same rate-limit window');
select is(current_setting('synchronous_commit'), 'off', 'the reserving transaction commits asynchronously');

-- 2. A batch whose third request does not fit the tenant budget (1000 - 600 left = 400 < 500): in order, only it is refused.
\set batch2 '[{"request_id":"fp-4","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","api_key_id":null,"model_alias":"x","usd_micros":150,"tokens":1},{"request_id":"fp-5","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","api_key_id":null,"model_alias":"x","usd_micros":500,"tokens":1},{"request_id":"fp-6","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","api_key_id":null,"model_alias":"x","usd_micros":250,"tokens":1},{"request_id":"fp-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","api_key_id":null,"model_alias":"x","usd_micros":1,"tokens":1}]'
savepoint in_order;
select private.reserve_budgets_in_order(:'batch2'::jsonb) as expected \gset
select counters as expected_counters, reservations as expected_reservations from fast_path_state \gset
rollback to savepoint in_order;
select is(public.reserve_budgets(:'batch2'::jsonb), :'expected'::jsonb, 'a refusal and a duplicate in the batch: the same answers as in order');
select is(array[:'expected'::jsonb -> 0 ->> 'status', :'expected'::jsonb -> 1 ->> 'status', :'expected'::jsonb -> 2 ->> 'status', :'expected'::jsonb -> 3 ->> 'status'],
  array['reserved', 'refused', 'reserved', 'duplicate'], 'that batch did take the in-order path: fp-5 refused, fp-1 a duplicate');
select is((select counters from fast_path_state), :'expected_counters'::jsonb, 'the same counters after a refusal');
select is((select reservations from fast_path_state), :'expected_reservations'::jsonb, 'the same reservations after a refusal');

-- 3. Settle: one batch against the same settlements made one at a time, in order.
\set settle '[{"request_id":"fp-1","prompt_tokens":20,"completion_tokens":10,"cost_usd_micros":80,"provider":"p","upstream_model":"m","latency_ms":5},{"request_id":"fp-2","prompt_tokens":60,"completion_tokens":30,"cost_usd_micros":250,"provider":"p","upstream_model":"m","latency_ms":6},{"request_id":"fp-2","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"p","upstream_model":"m"},{"request_id":"nope","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"p","upstream_model":"m"}]'
savepoint in_order;
select jsonb_agg(public.settle_budget(s.value ->> 'request_id', (s.value ->> 'prompt_tokens')::integer,
         (s.value ->> 'completion_tokens')::integer, (s.value ->> 'cost_usd_micros')::bigint, s.value ->> 'provider',
         s.value ->> 'upstream_model', (s.value ->> 'latency_ms')::integer) order by s.position) as expected
from jsonb_array_elements(:'settle'::jsonb) with ordinality as s(value, position) \gset
select counters as expected_counters, reservations as expected_reservations from fast_path_state \gset
select jsonb_agg(jsonb_build_array(u.request_id, u.cost_usd_micros, u.overflow_usd_micros, u.prompt_tokens) order by u.request_id) as expected_records
from public.usage_records u where u.tenant_id = 'eeeeeeee-0000-0000-0000-000000000041' \gset
rollback to savepoint in_order;
select is(public.settle_budgets(:'settle'::jsonb), :'expected'::jsonb,
  'settle: a batch answers as one-at-a-time (settled with overflow, a repeat is a duplicate, unknown)');
select is((select counters from fast_path_state), :'expected_counters'::jsonb, 'settle: the same counters');
select is((select reservations from fast_path_state), :'expected_reservations'::jsonb, 'settle: the same reservations');
select is((select jsonb_agg(jsonb_build_array(u.request_id, u.cost_usd_micros, u.overflow_usd_micros, u.prompt_tokens) order by u.request_id)
           from public.usage_records u where u.tenant_id = 'eeeeeeee-0000-0000-0000-000000000041'),
  :'expected_records'::jsonb, 'settle: the same usage records');
select is((select jsonb_agg(jsonb_build_array(u.request_id, u.cost_usd_micros, u.overflow_usd_micros, u.prompt_tokens) order by u.request_id)
           from public.usage_records u where u.tenant_id = 'eeeeeeee-0000-0000-0000-000000000041'),
  '[["fp-1", 80, 0, 20], ["fp-2", 250, 50, 60]]'::jsonb,
  'settle: each charged at most its reservation (fp-2 cost 250 of 200 reserved: 50 overflow)');
-- 4. Release: a repeat in the batch is a duplicate, a settled request too, an unknown one is unknown.
select is(public.release_budgets('[{"request_id":"fp-3","reason":"a"},{"request_id":"fp-3","reason":"b"},{"request_id":"fp-1"},{"request_id":"nope"}]'::jsonb),
  '[{"status":"released"},{"status":"duplicate","reservation_status":"released"},{"status":"duplicate","reservation_status":"settled"},{"status":"unknown"}]'::jsonb,
  'release: answers in order, the first release of a request wins');
select is((select release_reason from public.budget_reservations where request_id = 'fp-3'), 'a', 'release: the first reason is kept');
-- 5. flush_ledger: settlements, releases and reservations in one transaction, answers per kind.
select tests.authenticate_as_service_role();
select is(public.flush_ledger(
    '[{"request_id":"fp-7","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","model_alias":"x","usd_micros":10,"tokens":1}]'::jsonb,
    '[{"request_id":"fp-4","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":100,"provider":"p","upstream_model":"m"}]'::jsonb,
    '[{"request_id":"fp-6"}]'::jsonb) #>> '{settled,0,status}',
  'settled', 'flush_ledger answers each settlement');
select is(current_setting('synchronous_commit'), 'on', 'a flush that settles commits durably, though it also reserved');
select is(array[(select status from public.budget_reservations where request_id = 'fp-4'), (select status from public.budget_reservations where request_id = 'fp-6'),
                (select status from public.budget_reservations where request_id = 'fp-7')],
  array['settled', 'released', 'reserved'], 'flush_ledger wrote the settlement, the release and the reservation');
select is(public.flush_ledger('[]', '[]', '[]'), '{"reserved": [], "settled": [], "released": [], "leased_settled": [], "lease_closed": []}'::jsonb, 'an empty flush answers empty arrays (the lease arguments default to none)');
set local synchronous_commit = off;
select lives_ok($$select public.flush_ledger('[{"request_id":"fp-8","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","model_alias":"x","usd_micros":10,"tokens":1}]', '[]', '[]')$$,
  'a flush that only reserves');
select is(current_setting('synchronous_commit'), 'on', 'commits durably too: the router calls upstream on a reservation''s answer');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds after both paths');
select tests.clear_authentication();

-- 6. The set-based path really runs: with the in-order function out of the way, a batch that
-- fits is still reserved, and only a batch that does not fit reaches for it.
alter function private.reserve_budgets_in_order(jsonb) rename to reserve_budgets_in_order_hidden;
select lives_ok($$select public.reserve_budgets('[{"request_id":"fp-fast","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","model_alias":"x","usd_micros":1,"tokens":1}]')$$,
  'a batch that fits is reserved by the set-based path alone');
select throws_ok($$select public.reserve_budgets('[{"request_id":"fp-fast","tenant_id":"eeeeeeee-0000-0000-0000-000000000041","model_alias":"x","usd_micros":1,"tokens":1}]')$$,
  '42883', 'function private.reserve_budgets_in_order(jsonb) does not exist', 'a duplicate goes to the request-by-request function');
-- Renamed back, not rolled back to a savepoint: that would also erase the two results above.
alter function private.reserve_budgets_in_order_hidden(jsonb) rename to reserve_budgets_in_order;

select * from finish();
rollback;
