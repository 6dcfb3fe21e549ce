-- The budget saga: reserve, settle, release, reaper, rate limits and the
-- conservation invariant, and RLS on the economics tables.
begin;
select plan(37);

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
insert into public.tenants (id, name, slug) values ('eeeeeeee-0000-0000-0000-000000000003', 'Economics C', 'economics-c');
select is(public.reserve_budget('req-dialect', 'eeeeeeee-0000-0000-0000-000000000003', null, 'claude-test', 10, 10) ->> 'status',
  'reserved', 'a request of a tenant without budgets is reserved');
select is(public.settle_budgets('[{"request_id": "req-dialect", "prompt_tokens": 10, "completion_tokens": 2,
    "cache_write_tokens": 3, "cache_read_tokens": 4, "cost_usd_micros": 9, "provider": "anthropic",
    "upstream_model": "claude", "dialect": "anthropic_messages"}]'::jsonb) -> 0 ->> 'status', 'settled',
  'a settlement with its dialect and cache tokens applies');
select results_eq($$select dialect, cache_write_tokens, cache_read_tokens from public.usage_records where request_id = 'req-dialect'$$,
  $$values ('anthropic_messages'::text, 3, 4)$$, 'the usage record keeps the dialect and the cache writes and reads');
select throws_ok($$insert into public.usage_records (request_id, tenant_id, dialect)
    values ('req-soap', 'eeeeeeee-0000-0000-0000-000000000003', 'soap')$$,
  '23514', 'new row for relation "usage_records" violates check constraint "usage_records_dialect_check"',
  'a dialect the router does not speak is refused');
select throws_ok($$insert into public.usage_records (request_id, tenant_id, prompt_tokens, cache_read_tokens)
    values ('req-overcached', 'eeeeeeee-0000-0000-0000-000000000003', 2, 3)$$,
  '23514', 'new row for relation "usage_records" violates check constraint "usage_records_check"',
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

-- RLS: a member of B sees nothing of A; anon and members cannot call the saga.
select tests.authenticate_as(tests.create_user('econ.b@example.test'));
select throws_ok($$select public.reserve_budget('x', 'eeeeeeee-0000-0000-0000-000000000001', null, 'm', 1, 1)$$,
  '42501', 'permission denied for function reserve_budget', 'authenticated users cannot reserve budget directly');
select tests.clear_authentication();

select * from finish();
rollback;
