-- A request id is admitted once, whichever way it came in (issue 21): an id
-- with a usage record (a leased or cached request) is a duplicate to
-- reserve_budgets, on its fast path and in order, and to record_cache_hit; a
-- settle that meets a usage record does not fail its batch, and the invariant
-- reports the settled reservation that lacks its own record.
begin;
select plan(12);

insert into public.tenants (id, name, slug) values
  ('eeeeeeee-0000-0000-0000-000000000710', 'Request ids A', 'request-ids-a'),
  ('eeeeeeee-0000-0000-0000-000000000711', 'Request ids B', 'request-ids-b');
insert into public.budgets (id, tenant_id, scope, unit, period, limit_amount) values
  ('bbbbbbbb-0000-0000-0000-000000007101', 'eeeeeeee-0000-0000-0000-000000000710', 'tenant', 'usd_micros', 'total', 100000);

select tests.authenticate_as_service_role();

-- A leased request, settled: it has a usage record and no reservation of its own.
select public.acquire_budget_leases('[{"lease_id":"lease:ids","holder":"isolate-ids","tenant_id":"eeeeeeee-0000-0000-0000-000000000710","model_alias":"m","usd_micros":1000,"tokens":100,"requests":10,"ttl_seconds":600,"admit_seconds":120}]'::jsonb);
select is(public.settle_leased_usage('[{"lease_id":"lease:ids","request_id":"req_leased","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":10,"provider":"p","upstream_model":"m"}]'::jsonb) -> 0 ->> 'status',
  'settled', 'a leased request settles under its lease, leaving a usage record only');

-- 1. Reserving that id again is a duplicate, alone (fast path) or beside a request that is refused (in order).
select is(public.reserve_budgets('[{"request_id":"req_leased","tenant_id":"eeeeeeee-0000-0000-0000-000000000710","model_alias":"m","usd_micros":10,"tokens":5}]'::jsonb),
  '[{"status": "duplicate", "reservation_status": "settled"}]'::jsonb,
  'a leased request''s id is a duplicate to reserve_budgets');
select is((select jsonb_agg(a ->> 'status') from jsonb_array_elements(public.reserve_budgets('[
    {"request_id":"fresh-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000710","model_alias":"m","usd_micros":10,"tokens":5},
    {"request_id":"req_leased","tenant_id":"eeeeeeee-0000-0000-0000-000000000710","model_alias":"m","usd_micros":10,"tokens":5},
    {"request_id":"too-dear","tenant_id":"eeeeeeee-0000-0000-0000-000000000710","model_alias":"m","usd_micros":999999999,"tokens":5}]'::jsonb)) a),
  '["reserved", "duplicate", "refused"]'::jsonb,
  'in order too: the fresh id is reserved, the leased id is a duplicate, the dear one refused');
select is((select count(*)::int from public.budget_reservations where request_id = 'req_leased'), 0,
  'no reservation was written for the used id');

-- 2. Another tenant gets the same answer for the same id.
select is(public.reserve_budgets('[{"request_id":"req_leased","tenant_id":"eeeeeeee-0000-0000-0000-000000000711","model_alias":"m","usd_micros":10,"tokens":5}]'::jsonb),
  '[{"status": "duplicate", "reservation_status": "settled"}]'::jsonb,
  'another tenant''s reserve of the id gets the same duplicate answer');

-- 3. The response cache records a hit only under an unused id.
select is(public.record_cache_hit('req_leased', 'eeeeeeee-0000-0000-0000-000000000710', null, null, 'm', 1, 1, 1), null,
  'a cache hit under a used id records nothing (the router refuses it)');
select is(public.record_cache_hit('fresh-1', 'eeeeeeee-0000-0000-0000-000000000710', null, null, 'm', 1, 1, 1), null,
  'a cache hit under an id with a reservation records nothing');
select is(public.record_cache_hit('cached-1', 'eeeeeeee-0000-0000-0000-000000000710', null, null, 'm', 1, 1, 1),
  '{"status": "recorded"}'::jsonb, 'a cache hit under a fresh id is recorded');
select is(public.reserve_budgets('[{"request_id":"cached-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000710","model_alias":"m","usd_micros":10,"tokens":5}]'::jsonb) -> 0 ->> 'status',
  'duplicate', 'a cached request''s id is a duplicate to reserve_budgets');

-- 4. A settle that meets a usage record (made here by hand: reserve refuses such ids) settles and
-- charges without failing the batch beside it, and the invariant reports the missing record.
select is(public.flush_ledger('[{"request_id":"clash","tenant_id":"eeeeeeee-0000-0000-0000-000000000710","model_alias":"m","usd_micros":10,"tokens":5}]'::jsonb, '[]'::jsonb, '[]'::jsonb) #>> '{reserved,0,status}',
  'reserved', 'a fresh id is reserved');
insert into public.usage_records (request_id, tenant_id, provider, model_alias, prompt_tokens, completion_tokens, cost_usd_micros, status)
values ('clash', 'eeeeeeee-0000-0000-0000-000000000711', 'p', 'm', 0, 0, 0, 'succeeded');
select is((select jsonb_agg(a ->> 'status') from jsonb_array_elements(public.settle_budgets('[
    {"request_id":"fresh-1","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":7,"provider":"p","upstream_model":"m"},
    {"request_id":"clash","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":7,"provider":"p","upstream_model":"m"}]'::jsonb)) a),
  '["settled", "settled"]'::jsonb, 'the batch settles both: the clash does not fail the request beside it');
select results_eq($$select kind, expected, actual from public.usage_invariant_violations()
                    where kind = 'settled_without_usage_record'$$,
  $$values ('settled_without_usage_record'::text, 1::bigint, 0::bigint)$$,
  'the invariant reports the one settled reservation whose usage record is another tenant''s');

select * from finish();
rollback;
