-- The budget saga: reserve, settle, release, reaper, rate limits and the
-- conservation invariant, settle's one core for reservations and leases, and
-- RLS on the economics tables.
begin;
select plan(53);

insert into public.tenants (id, name, slug) values
  ('eeeeeeee-0000-0000-0000-000000000001', 'Economics A', 'economics-a'),
  ('eeeeeeee-0000-0000-0000-000000000002', 'Economics B', 'economics-b');
insert into public.budgets (id, tenant_id, scope, model_alias, unit, period, limit_amount) values
  ('bbbbbbbb-0000-0000-0000-000000000001', 'eeeeeeee-0000-0000-0000-000000000001', 'tenant', null, 'usd_micros', 'total', 1000),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'eeeeeeee-0000-0000-0000-000000000001', 'model', 'gpt-test', 'tokens', 'day', 50);

-- Reserve.
select is(public.reserve_budget('req-1', 'eeeeeeee-0000-0000-0000-000000000001', null, 'gpt-test', 400, 20) ->> 'status',
  'reserved', 'a reservation that fits is taken');
select is((select reserved from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000001'),
  400::bigint, 'the USD budget holds the reservation');
select is((select reserved from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000002'),
  20::bigint, 'the token budget of the model holds it too');
select is(public.reserve_budget('req-1', 'eeeeeeee-0000-0000-0000-000000000001', null, 'gpt-test', 400, 20) ->> 'status',
  'duplicate', 'reserving the same request id again is a duplicate');
select is((select reserved from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000001'),
  400::bigint, 'a duplicate reservation changes nothing');

select is(public.reserve_budget('req-2', 'eeeeeeee-0000-0000-0000-000000000001', null, 'gpt-test', 700, 1) ->> 'budget_id',
  'bbbbbbbb-0000-0000-0000-000000000001', 'a reservation over the limit is refused naming the budget');
select is(public.reserve_budget('req-3', 'eeeeeeee-0000-0000-0000-000000000001', null, 'gpt-test', 1, 31) ->> 'status',
  'refused', 'the token budget of the model refuses too');
select is((select count(*)::int from public.budget_reservations where request_id in ('req-2', 'req-3')), 0,
  'refused requests leave no reservation');
select is((select reserved from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000001'),
  400::bigint, 'a refusal reserves nothing anywhere');
select is(public.reserve_budget('req-other-model', 'eeeeeeee-0000-0000-0000-000000000001', null, 'other', 1, 1000) ->> 'status',
  'reserved', 'a model budget applies to its model only');

-- Settle: actual below the estimate.
select is(public.settle_budget('req-1', 10, 5, 300, 'openai', 'gpt-4o-mini') ->> 'status', 'settled', 'settle applies');
select results_eq($$select spent, reserved from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000001'$$,
  $$values (300::bigint, 1::bigint)$$, 'settle moves the actual cost to spent and frees the rest');
select is(public.settle_budget('req-1', 10, 5, 300, 'openai', 'gpt-4o-mini') ->> 'status', 'duplicate',
  'a second settle is a duplicate');
select is((select spent from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000001'),
  300::bigint, 'a duplicate settle changes nothing');
select is((select count(*)::int from public.usage_records where request_id = 'req-1'), 1, 'exactly one usage record');
select is(public.settle_budget('never-reserved', 1, 1, 1, 'p', 'm') ->> 'status', 'unknown', 'settling an unknown request says so');

-- Usage records carry the dialect and the prompt-cache parts of the prompt.
select col_not_null('public', 'usage_records', 'dialect', 'usage_records.dialect is not null');
select is((select dialect from public.usage_records where request_id = 'req-1'), 'openai_chat',
  'a settlement that names no dialect records openai_chat (the column default)');
insert into public.tenants (id, name, slug) values ('eeeeeeee-0000-0000-0000-000000000004', 'Economics D', 'economics-d');
select is(public.reserve_budget('req-dialect', 'eeeeeeee-0000-0000-0000-000000000004', null, 'claude-test', 10, 10) ->> 'status',
  'reserved', 'a request of a tenant without budgets is reserved');
select is(public.settle_budgets('[{"request_id": "req-dialect", "prompt_tokens": 10, "completion_tokens": 2,
    "cache_write_tokens": 3, "cache_read_tokens": 4, "cost_usd_micros": 9, "provider": "anthropic",
    "upstream_model": "claude", "dialect": "anthropic_messages"}]'::jsonb) -> 0 ->> 'status', 'settled',
  'a settlement with its dialect and cache tokens applies');
select results_eq($$select dialect, cache_write_tokens, cache_read_tokens from public.usage_records where request_id = 'req-dialect'$$,
  $$values ('anthropic_messages'::text, 3, 4)$$, 'the usage record keeps the dialect and the cache writes and reads');
-- The row lands in a monthly partition, whose name the message carries: match the constraint.
select throws_like($$insert into public.usage_records (request_id, tenant_id, dialect)
    values ('req-soap', 'eeeeeeee-0000-0000-0000-000000000004', 'soap')$$,
  '%violates check constraint "usage_records_dialect_check"%',
  'a dialect the router does not speak is refused');
select throws_like($$insert into public.usage_records (request_id, tenant_id, prompt_tokens, cache_read_tokens)
    values ('req-overcached', 'eeeeeeee-0000-0000-0000-000000000004', 2, 3)$$,
  '%violates check constraint "usage_records_check"%',
  'cache writes and reads are parts of the prompt, never more than it');

-- Settle above the estimate: the excess is overflow, never over the limit.
select is(public.reserve_budget('req-4', 'eeeeeeee-0000-0000-0000-000000000001', null, 'gpt-test', 600, 10) ->> 'status',
  'reserved', 'a reservation up to the limit is taken');
select is(public.settle_budget('req-4', 10, 10, 900, 'openai', 'gpt-4o-mini') #>> '{overflow_usd_micros}', '300',
  'cost above the reservation is reported as overflow');
select results_eq($$select spent, overflow from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000001'$$,
  $$values (900::bigint, 300::bigint)$$, 'spent grows by the reservation only; overflow is counted apart');
select throws_ok($$update public.usage_counters set reserved = reserved + 1000 where budget_id = 'bbbbbbbb-0000-0000-0000-000000000001'$$,
  '23514', 'new row for relation "usage_counters" violates check constraint "usage_counters_conservation"', 'the CHECK refuses any write that breaks spent + reserved <= limit');

-- Release and the reaper.
select is(public.release_budget('req-other-model', 'upstream failed') ->> 'status', 'released', 'release frees a reservation');
select is(public.release_budget('req-other-model') ->> 'status', 'duplicate', 'a second release is a duplicate');
select is(public.settle_budget('req-other-model', 1, 1, 1, 'p', 'm') ->> 'status', 'duplicate', 'settle after release changes nothing');
select is(public.reserve_budget('req-stale', 'eeeeeeee-0000-0000-0000-000000000001', null, 'gpt-test', 10, 1, null, 1) ->> 'status',
  'reserved', 'a short-lived reservation is taken');
update public.budget_reservations set expires_at = now() - interval '1 second' where request_id = 'req-stale';
select is(public.reap_expired_reservations(), 1, 'the reaper releases the expired reservation');
select is_empty('select * from public.usage_invariant_violations()', 'the conservation invariant holds after all of it');

-- Rate limits: two requests a minute.
insert into public.rate_limits (tenant_id, requests_per_minute) values ('eeeeeeee-0000-0000-0000-000000000002', 2);
select is(public.reserve_budget('rl-1', 'eeeeeeee-0000-0000-0000-000000000002', null, 'm', 0, 0) ->> 'status', 'reserved', 'first request within the rate');
select is(public.reserve_budget('rl-2', 'eeeeeeee-0000-0000-0000-000000000002', null, 'm', 0, 0) #>> '{rate_limit,remaining_requests}', '0',
  'the answer carries the remaining requests');
select is(public.reserve_budget('rl-3', 'eeeeeeee-0000-0000-0000-000000000002', null, 'm', 0, 0) ->> 'status', 'rate_limited',
  'the third request in the minute is rate limited');

-- Settle's one core (private.settle_usage) for a request's own reservation and for a lease.
insert into public.tenants (id, name, slug) values ('eeeeeeee-0000-0000-0000-000000000003', 'Economics C', 'economics-c');
insert into public.budgets (id, tenant_id, scope, unit, period, limit_amount) values
  ('bbbbbbbb-0000-0000-0000-000000000003', 'eeeeeeee-0000-0000-0000-000000000003', 'tenant', 'usd_micros', 'total', 100000),
  ('bbbbbbbb-0000-0000-0000-000000000004', 'eeeeeeee-0000-0000-0000-000000000003', 'tenant', 'tokens', 'total', 100000);
select public.reserve_budgets('[
  {"request_id":"core-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000003","user_id":"99999999-0000-0000-0000-000000000003","model_alias":"m","usd_micros":100,"tokens":50,"domain":"legal"},
  {"request_id":"core-2","tenant_id":"eeeeeeee-0000-0000-0000-000000000003","model_alias":"m","usd_micros":100,"tokens":50}]'::jsonb) as core_reserved \gset
select public.acquire_budget_leases('[
  {"lease_id":"lease:core-a","holder":"i","tenant_id":"eeeeeeee-0000-0000-0000-000000000003","model_alias":"m","usd_micros":300,"tokens":100,"requests":10,"ttl_seconds":600,"admit_seconds":60},
  {"lease_id":"lease:core-b","holder":"i","tenant_id":"eeeeeeee-0000-0000-0000-000000000003","model_alias":"m","usd_micros":100,"tokens":1000,"requests":10,"ttl_seconds":600,"admit_seconds":60}]'::jsonb) as core_leased \gset
-- [amount, charged, overflow] of each item of a reservation or lease, in budget order.
create temporary view core_items as
select r.request_id, jsonb_agg(jsonb_build_array((i ->> 'amount')::bigint, (i ->> 'charged')::bigint, (i ->> 'overflow')::bigint)
         order by i ->> 'budget_id') as items
from public.budget_reservations r, jsonb_array_elements(r.items) i
where r.tenant_id = 'eeeeeeee-0000-0000-0000-000000000003'
group by r.request_id;

-- Per request: each settlement closes its own reservation; a repeat in the batch is a duplicate.
select public.settle_budgets('[
    {"request_id":"core-1","prompt_tokens":10,"completion_tokens":20,"cost_usd_micros":150,"provider":"p","upstream_model":"u","latency_ms":7},
    {"request_id":"core-1","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"p","upstream_model":"u"},
    {"request_id":"core-2","prompt_tokens":40,"completion_tokens":30,"cost_usd_micros":40,"provider":"p","upstream_model":"u","status":"cancelled"}
  ]'::jsonb) as core_settled \gset
select is((select jsonb_agg(jsonb_build_array(a ->> 'status', a ->> 'reservation_status', (a ->> 'overflow_usd_micros')::bigint))
           from jsonb_array_elements(:'core_settled'::jsonb) a),
  '[["settled", null, 50], ["duplicate", "settled", null], ["settled", null, 0]]'::jsonb,
  'per request: settled with the usd overflow, a repeat in the batch a duplicate naming settled');
select is((select jsonb_agg(jsonb_build_array((i ->> 'amount')::bigint, (i ->> 'charged')::bigint, (i ->> 'overflow')::bigint) order by i ->> 'budget_id')
           from jsonb_array_elements(:'core_settled'::jsonb #> '{0,items}') i),
  '[[100, 100, 50], [50, 30, 0]]'::jsonb, 'per request: the answer''s items keep their amount and say what was charged and what overflowed');
select is((select jsonb_agg(jsonb_build_array(r.request_id, r.status, c.items) order by r.request_id)
           from core_items c join public.budget_reservations r on r.request_id = c.request_id where r.request_id in ('core-1', 'core-2')),
  '[["core-1", "settled", [[100, 100, 50], [50, 30, 0]]], ["core-2", "settled", [[100, 40, 0], [50, 50, 20]]]]'::jsonb,
  'per request: the reservations end settled with those items (core-2 overflows on tokens only)');
select results_eq($$select request_id, user_id, lease_id, domain, cost_usd_micros, overflow_usd_micros, status, latency_ms
                    from public.usage_records where request_id in ('core-1', 'core-2') order by request_id$$,
  $$values ('core-1'::text, '99999999-0000-0000-0000-000000000003'::uuid, null::text, null::text, 150::bigint, 50::bigint, 'succeeded'::text, 7),
           ('core-2', null, null, null, 40, 0, 'cancelled', null)$$,
  'per request: one usage record each, the user from the reservation, no lease, the domain left on the reservation');

-- Under leases: two leases interleaved in one batch, each drawn down by its own running sum.
select is(public.settle_leased_usage('[
    {"lease_id":"lease:core-a","request_id":"lc-1","prompt_tokens":20,"completion_tokens":20,"cost_usd_micros":200,"provider":"p","upstream_model":"u"},
    {"lease_id":"lease:core-b","request_id":"lc-2","prompt_tokens":5,"completion_tokens":5,"cost_usd_micros":80,"provider":"p","upstream_model":"u"},
    {"lease_id":"lease:core-a","request_id":"lc-3","user_id":"99999999-0000-0000-0000-000000000004","domain":"code","prompt_tokens":30,"completion_tokens":40,"cost_usd_micros":150,"provider":"p","upstream_model":"u"},
    {"lease_id":"lease:core-b","request_id":"lc-4","prompt_tokens":0,"completion_tokens":0,"cost_usd_micros":10,"provider":"p","upstream_model":"u"},
    {"lease_id":"lease:core-a","request_id":"lc-1","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"p","upstream_model":"u"},
    {"lease_id":"lease:core-a","request_id":"core-1","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"p","upstream_model":"u"},
    {"lease_id":"lease:core-a","request_id":"lc-5","prompt_tokens":0,"completion_tokens":0,"cost_usd_micros":30,"provider":"p","upstream_model":"u"}
  ]'::jsonb),
  '[{"status": "settled", "overflow_usd_micros": 0}, {"status": "settled", "overflow_usd_micros": 0}, {"status": "settled", "overflow_usd_micros": 50},
    {"status": "settled", "overflow_usd_micros": 0}, {"status": "duplicate"}, {"status": "duplicate"}, {"status": "settled", "overflow_usd_micros": 30}]'::jsonb,
  'leased: lc-3 overflows what lease a has left after lc-1, lc-5 finds nothing left; a repeat and a per-request id are duplicates');
select is((select jsonb_agg(jsonb_build_array(r.request_id, r.status, c.items) order by r.request_id)
           from core_items c join public.budget_reservations r on r.request_id = c.request_id where r.request_id like 'lease:core-%'),
  '[["lease:core-a", "reserved", [[0, 300, 80], [0, 100, 10]]], ["lease:core-b", "reserved", [[10, 90, 0], [990, 10, 0]]]]'::jsonb,
  'leased: the leases stay open, their items drawn down by what each batch row charged, overflow accumulated');
select is((select jsonb_agg(jsonb_build_array(reservation_id, requests_used) order by reservation_id) from public.budget_leases where reservation_id like 'lease:core-%'),
  '[["lease:core-a", 3], ["lease:core-b", 2]]'::jsonb, 'leased: each lease counts the requests settled under it, not the duplicates');
select results_eq($$select request_id, user_id, lease_id, domain, cost_usd_micros, overflow_usd_micros from public.usage_records
                    where request_id in ('lc-3', 'lc-5', 'core-1') order by request_id$$,
  $$values ('core-1'::text, '99999999-0000-0000-0000-000000000003'::uuid, null::text, null::text, 150::bigint, 50::bigint),
           ('lc-3', '99999999-0000-0000-0000-000000000004', 'lease:core-a', 'code', 150, 50),
           ('lc-5', null, 'lease:core-a', null, 30, 30)$$,
  'leased: records name the lease, the user and domain the settlement gave; the per-request record is untouched');
select is((select jsonb_agg(jsonb_build_array(c.spent, c.reserved, c.overflow, c.request_count) order by c.budget_id)
           from public.usage_counters c join public.budgets b on b.id = c.budget_id where b.tenant_id = 'eeeeeeee-0000-0000-0000-000000000003'),
  '[[530, 10, 130, 7], [190, 990, 30, 7]]'::jsonb,
  'counters (usd, tokens): a reservation releases its whole amount, a lease what it charged; overflow counted apart');

-- The same request id on both paths of one flush: the per-request settlement runs first, the leased one is a duplicate.
select public.reserve_budgets('[{"request_id":"core-3","tenant_id":"eeeeeeee-0000-0000-0000-000000000003","model_alias":"m","usd_micros":10,"tokens":10}]'::jsonb) as core_reserved \gset
select public.flush_ledger('[]'::jsonb,
  '[{"request_id":"core-3","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":5,"provider":"p","upstream_model":"u"}]'::jsonb, '[]'::jsonb,
  '[{"lease_id":"lease:core-b","request_id":"core-3","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":5,"provider":"p","upstream_model":"u"}]'::jsonb) as core_flush \gset
select is(array[:'core_flush'::jsonb #>> '{settled,0,status}', :'core_flush'::jsonb #>> '{leased_settled,0,status}'], array['settled', 'duplicate'],
  'flush_ledger: the per-request settlement settles, the leased one of the same id is a duplicate');
select results_eq($$select (select count(*)::int from public.usage_records where request_id = 'core-3'),
                           (select lease_id from public.usage_records where request_id = 'core-3'),
                           (select items from core_items where request_id = 'lease:core-b'),
                           (select requests_used from public.budget_leases where reservation_id = 'lease:core-b')$$,
  $$values (1, null::text, '[[10, 90, 0], [990, 10, 0]]'::jsonb, 2)$$,
  'flush_ledger: one usage record, the reservation''s; the lease is neither charged nor counted');
select is_empty('select * from public.usage_invariant_violations()', 'the conservation invariant holds after settling both ways');

-- Bad input raises, each public function with its own message; the core is the service role's only.
select throws_ok($$select public.settle_budgets('[{"request_id":"core-x","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":-1}]')$$,
  '22023', 'usage must be zero or more, status succeeded, failed or cancelled', 'settle_budgets refuses negative usage');
select throws_ok($$select public.settle_leased_usage('[{"lease_id":"lease:core-a","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1}]')$$,
  '22023', 'each settlement needs a request_id, usage of zero or more, status succeeded, failed or cancelled',
  'settle_leased_usage refuses a settlement without a request id');
select throws_ok($$select public.settle_leased_usage('{}')$$, '22023', 'settle_leased_usage takes a JSON array',
  'settle_leased_usage takes an array only');
select is(array[has_function_privilege('anon', 'private.settle_usage(jsonb, boolean)', 'execute'),
                has_function_privilege('authenticated', 'private.settle_usage(jsonb, boolean)', 'execute'),
                has_function_privilege('service_role', 'private.settle_usage(jsonb, boolean)', 'execute')],
  array[false, false, true], 'only the service role may execute the settlement core');

-- RLS: a member of B sees nothing of A; anon and members cannot call the saga.
select tests.authenticate_as(tests.create_user('econ.b@example.test'));
select throws_ok($$select public.reserve_budget('x', 'eeeeeeee-0000-0000-0000-000000000001', null, 'm', 1, 1)$$,
  '42501', 'permission denied for function reserve_budget', 'authenticated users cannot reserve budget directly');
select tests.clear_authentication();

select * from finish();
rollback;
