-- Budget leases (migration 20261123000600_economics.sql): acquire, settle
-- under a lease, close, the 5-argument flush_ledger, the reaper on an expired
-- lease, the invariant with open leases, feedback on a leased request
-- (20261123000700_reputation.sql), and who may call it all.
begin;
select plan(59);

insert into public.tenants (id, name, slug) values
  ('eeeeeeee-0000-0000-0000-000000000070', 'Leases A', 'leases-a'),
  ('eeeeeeee-0000-0000-0000-000000000071', 'Leases C', 'leases-c');
insert into public.tenant_api_keys (id, tenant_id, name, key_hash, prefix) values
  ('aaaaaaaa-0000-0000-0000-000000000070', 'eeeeeeee-0000-0000-0000-000000000070', 'leases', repeat('7', 64), 'sy_lease0070');
insert into public.budgets (id, tenant_id, scope, api_key_id, unit, period, limit_amount) values
  ('bbbbbbbb-0000-0000-0000-000000000701', 'eeeeeeee-0000-0000-0000-000000000070', 'tenant', null, 'usd_micros', 'month', 10000),
  ('bbbbbbbb-0000-0000-0000-000000000702', 'eeeeeeee-0000-0000-0000-000000000070', 'api_key', 'aaaaaaaa-0000-0000-0000-000000000070', 'tokens', 'day', 5000),
  ('bbbbbbbb-0000-0000-0000-000000000711', 'eeeeeeee-0000-0000-0000-000000000071', 'tenant', null, 'usd_micros', 'total', 100000);
-- 100 requests and 100000 tokens a minute, 2 more in a burst: 102 requests in all.
insert into public.rate_limits (id, tenant_id, requests_per_minute, tokens_per_minute, burst) values
  ('dddddddd-0000-0000-0000-000000000701', 'eeeeeeee-0000-0000-0000-000000000070', 100, 100000, 2);

-- What tenant A's counters, rate window, reservations and leases hold.
create temporary view lease_state as
select (select coalesce(jsonb_agg(jsonb_build_array(c.budget_id, c.reserved, c.spent, c.overflow, c.request_count) order by c.budget_id), '[]')
          from public.usage_counters c join public.budgets b on b.id = c.budget_id
          where b.tenant_id = 'eeeeeeee-0000-0000-0000-000000000070') as counters,
       (select coalesce(jsonb_agg(jsonb_build_array(w.requests, w.tokens)), '[]')
          from public.rate_limit_windows w where w.rate_limit_id = 'dddddddd-0000-0000-0000-000000000701') as windows,
       (select coalesce(jsonb_agg(jsonb_build_array(r.request_id, r.status, r.items) order by r.request_id), '[]')
          from public.budget_reservations r where r.tenant_id = 'eeeeeeee-0000-0000-0000-000000000070') as reservations,
       (select coalesce(jsonb_agg(jsonb_build_array(l.reservation_id, l.requests_granted, l.requests_used) order by l.reservation_id), '[]')
          from public.budget_leases l) as leases;
grant select on lease_state to service_role;

-- Sections 1 to 6 run as the service role, as the router's ledger does.
select tests.authenticate_as_service_role();

-- 1. A lease is granted: a reservation of the slice plus its share of the minute's rate limit.
select public.acquire_budget_leases('[{"lease_id":"lease:a1","holder":"isolate-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":1000,"tokens":500,"requests":10,"ttl_seconds":600,"admit_seconds":120}]'::jsonb) as a1 \gset
select is(:'a1'::jsonb -> 0 ->> 'status', 'granted', 'a lease far from every limit is granted');
select is((select jsonb_agg(jsonb_build_array(i ->> 'budget_id', (i ->> 'amount')::bigint) order by i ->> 'budget_id')
           from jsonb_array_elements(:'a1'::jsonb -> 0 -> 'items') i),
  '[["bbbbbbbb-0000-0000-0000-000000000701", 1000], ["bbbbbbbb-0000-0000-0000-000000000702", 500]]'::jsonb,
  'the grant names its items: the usd slice on the tenant budget, the token slice on the key budget');
select results_eq($$select budget_id, reserved, spent from public.usage_counters
                    where budget_id in ('bbbbbbbb-0000-0000-0000-000000000701', 'bbbbbbbb-0000-0000-0000-000000000702') order by budget_id$$,
  $$values ('bbbbbbbb-0000-0000-0000-000000000701'::uuid, 1000::bigint, 0::bigint), ('bbbbbbbb-0000-0000-0000-000000000702'::uuid, 500::bigint, 0::bigint)$$,
  'the counters hold the slice as reserved: usd_micros on the usd budget, tokens on the token budget');
select results_eq($$select status, estimate_usd_micros, estimate_tokens, api_key_id, model_alias, expires_at = now() + interval '600 seconds'
                    from public.budget_reservations where request_id = 'lease:a1'$$,
  $$values ('reserved'::text, 1000::bigint, 500::bigint, 'aaaaaaaa-0000-0000-0000-000000000070'::uuid, 'lease-model'::text, true)$$,
  'the lease is an open reservation named by its lease id, expiring after ttl_seconds');
select results_eq($$select holder, requests_granted, requests_used, (rate_items -> 0 ->> 'requests')::int from public.budget_leases where reservation_id = 'lease:a1'$$,
  $$values ('isolate-1'::text, 10, 0, 10)$$, 'a budget_leases row records the holder and the requests granted from the rate window');
select results_eq($$select requests, tokens from public.rate_limit_windows
                    where rate_limit_id = 'dddddddd-0000-0000-0000-000000000701' and window_start = date_trunc('minute', now())$$,
  $$values (10, 500::bigint)$$, 'the minute''s rate window counts the lease''s requests and tokens');
select is(array[(:'a1'::jsonb #>> '{0,rate_limit,remaining_requests}')::int, (:'a1'::jsonb #>> '{0,rate_limit,remaining_tokens}')::int],
  array[92, 99502], 'the answer carries the rate limit left after the grant (100 + 2 burst - 10 requests)');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds with an open lease');

-- 2. Declined near a limit, for a lease id already used; declining writes nothing. Bad input raises.
select counters as before_counters, windows as before_windows, reservations as before_reservations, leases as before_leases from lease_state \gset
select is((select jsonb_agg(jsonb_build_array(d ->> 'status', d ->> 'reason'))
           from jsonb_array_elements(public.acquire_budget_leases('[
             {"lease_id":"lease:d1","holder":"isolate-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":4501,"tokens":1,"requests":1,"ttl_seconds":600,"admit_seconds":30},
             {"lease_id":"lease:d2","holder":"isolate-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":1,"tokens":1,"requests":47,"ttl_seconds":600,"admit_seconds":30},
             {"lease_id":"lease:a1","holder":"isolate-2","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":1,"tokens":1,"requests":1,"ttl_seconds":600,"admit_seconds":30},
             {"lease_id":"lease:d3","holder":"isolate-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":1,"tokens":2251,"requests":1,"ttl_seconds":600,"admit_seconds":30}
           ]'::jsonb)) d),
  '[["declined", "budget bbbbbbbb-0000-0000-0000-000000000701 is too close to its limit for a lease"],
    ["declined", "rate limit dddddddd-0000-0000-0000-000000000701 is too close to its limit for a lease"],
    ["declined", "lease_id is already used"],
    ["declined", "budget bbbbbbbb-0000-0000-0000-000000000702 is too close to its limit for a lease"]]'::jsonb,
  'declined: usd budget with 9000 free < 2 * 4501, 57 + 47 requests > 102, a used lease id, token budget with 4500 free < 2 * 2251');
select is((select jsonb_build_array(counters, windows, reservations, leases) from lease_state),
  jsonb_build_array(:'before_counters'::jsonb, :'before_windows'::jsonb, :'before_reservations'::jsonb, :'before_leases'::jsonb),
  'declined leases change no counter, rate window, reservation or lease');
select throws_ok($$select public.acquire_budget_leases('[{"lease_id":"lease:x1","holder":"i","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","usd_micros":1,"tokens":1,"requests":0,"ttl_seconds":600,"admit_seconds":30}]')$$,
  '22023', 'a lease needs lease_id lease:<id>, holder, tenant_id, usd_micros and tokens >= 0, requests >= 1, ttl_seconds 1..86400 and 0 < admit_seconds <= ttl_seconds', 'a lease of zero requests is invalid input');
select throws_ok($$select public.acquire_budget_leases('[{"lease_id":"lease:x2","holder":"i","usd_micros":1,"tokens":1,"requests":1,"ttl_seconds":600,"admit_seconds":30}]')$$,
  '22023', 'a lease needs lease_id lease:<id>, holder, tenant_id, usd_micros and tokens >= 0, requests >= 1, ttl_seconds 1..86400 and 0 < admit_seconds <= ttl_seconds', 'a lease without a tenant is invalid input');
select throws_ok($$select public.acquire_budget_leases('[{"lease_id":"lease:x3","holder":"i","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","usd_micros":1,"tokens":1,"requests":1,"ttl_seconds":60,"admit_seconds":61}]')$$,
  '22023', 'a lease needs lease_id lease:<id>, holder, tenant_id, usd_micros and tokens >= 0, requests >= 1, ttl_seconds 1..86400 and 0 < admit_seconds <= ttl_seconds', 'admit_seconds beyond ttl_seconds is invalid input');
select throws_ok($$select public.acquire_budget_leases('[{"lease_id":"req-x4","holder":"i","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","usd_micros":1,"tokens":1,"requests":1,"ttl_seconds":600,"admit_seconds":30}]')$$,
  '22023', 'a lease needs lease_id lease:<id>, holder, tenant_id, usd_micros and tokens >= 0, requests >= 1, ttl_seconds 1..86400 and 0 < admit_seconds <= ttl_seconds', 'a lease id not starting with lease: is invalid input');
-- At the edge: 9000 free = 2 * 4500 and 56 + 46 = 102 requests are still granted.
select public.acquire_budget_leases('[{"lease_id":"lease:a2","holder":"isolate-2","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":4500,"tokens":0,"requests":46,"ttl_seconds":600,"admit_seconds":30}]'::jsonb) as a2 \gset
select is(array[:'a2'::jsonb -> 0 ->> 'status', :'a2'::jsonb #>> '{0,rate_limit,remaining_requests}'], array['granted', '46'],
  'a lease leaving exactly its own size free on a budget and a rate limit is granted');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds after declines and a second lease');

-- 3. How long the holder may admit: to the end of the minute under a rate limit, else to the end of a day window, else as asked.
select is((:'a1'::jsonb #>> '{0,admit_seconds}')::numeric,
  extract(epoch from date_trunc('minute', now()) + interval '1 minute' - now()),
  'under a rate limit a lease admits until the end of the current minute, not the 120 seconds asked');
select public.acquire_budget_leases('[{"lease_id":"lease:c1","holder":"isolate-3","tenant_id":"eeeeeeee-0000-0000-0000-000000000071","model_alias":"m","usd_micros":100,"tokens":0,"requests":5,"ttl_seconds":300,"admit_seconds":250}]'::jsonb) as c1 \gset
select is(array[(:'c1'::jsonb #>> '{0,admit_seconds}')::numeric, (:'c1'::jsonb #>> '{0,rate_limit}')::numeric], array[250, null]::numeric[],
  'without a rate limit or a day or month budget a lease admits for the seconds asked');
insert into public.budgets (id, tenant_id, scope, unit, period, limit_amount) values
  ('bbbbbbbb-0000-0000-0000-000000000712', 'eeeeeeee-0000-0000-0000-000000000071', 'tenant', 'tokens', 'day', 100000);
select public.acquire_budget_leases('[{"lease_id":"lease:c2","holder":"isolate-3","tenant_id":"eeeeeeee-0000-0000-0000-000000000071","model_alias":"m","usd_micros":100,"tokens":100,"requests":5,"ttl_seconds":86400,"admit_seconds":86400}]'::jsonb) as c2 \gset
select is((:'c2'::jsonb #>> '{0,admit_seconds}')::numeric,
  extract(epoch from date_trunc('day', now(), 'UTC') + interval '1 day' - now()),
  'under a day budget a lease admits until the end of the budget''s day, not into the next window');

-- 4. Settling requests under a lease.
select is(public.settle_leased_usage('[
    {"lease_id":"lease:a1","request_id":"lr-1","user_id":"99999999-0000-0000-0000-000000000070","domain":"legal","prompt_tokens":100,"completion_tokens":50,"cost_usd_micros":300,"provider":"openai","upstream_model":"gpt-x","latency_ms":12},
    {"lease_id":"lease:a1","request_id":"lr-2","domain":"code","prompt_tokens":100,"completion_tokens":100,"cost_usd_micros":400,"provider":"openai","upstream_model":"gpt-x","latency_ms":15},
    {"lease_id":"lease:a1","request_id":"lr-1","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"openai","upstream_model":"gpt-x"},
    {"lease_id":"lease:nope","request_id":"lr-3","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"openai","upstream_model":"gpt-x"}
  ]'::jsonb),
  '[{"status": "settled", "overflow_usd_micros": 0}, {"status": "settled", "overflow_usd_micros": 0}, {"status": "duplicate"},
    {"status": "lease_closed", "lease_status": "unknown"}]'::jsonb,
  'settle answers in order: settled, settled, a repeat in the batch is a duplicate, an unknown lease is lease_closed');
select results_eq($$select request_id, lease_id, domain, user_id, tenant_id, api_key_id, model_alias, provider, cost_usd_micros, overflow_usd_micros, prompt_tokens
                    from public.usage_records where request_id in ('lr-1', 'lr-2', 'lr-3') order by request_id$$,
  $$values ('lr-1'::text, 'lease:a1'::text, 'legal'::text, '99999999-0000-0000-0000-000000000070'::uuid, 'eeeeeeee-0000-0000-0000-000000000070'::uuid,
            'aaaaaaaa-0000-0000-0000-000000000070'::uuid, 'lease-model'::text, 'openai'::text, 300::bigint, 0::bigint, 100),
           ('lr-2', 'lease:a1', 'code', null, 'eeeeeeee-0000-0000-0000-000000000070', 'aaaaaaaa-0000-0000-0000-000000000070', 'lease-model', 'openai', 400, 0, 100)$$,
  'usage records name the lease and domain, take tenant, key and model alias from the lease; none for the unknown lease');
select results_eq($$select budget_id, spent, reserved, overflow, request_count from public.usage_counters
                    where budget_id in ('bbbbbbbb-0000-0000-0000-000000000701', 'bbbbbbbb-0000-0000-0000-000000000702') order by budget_id$$,
  $$values ('bbbbbbbb-0000-0000-0000-000000000701'::uuid, 700::bigint, 4800::bigint, 0::bigint, 2::bigint),
           ('bbbbbbbb-0000-0000-0000-000000000702'::uuid, 350::bigint, 150::bigint, 0::bigint, 2::bigint)$$,
  'the charge moves from reserved to spent and each request is counted');
select is((select requests_used from public.budget_leases where reservation_id = 'lease:a1'), 2, 'the lease counts the requests settled under it');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds after settling under a lease');

-- What is left of the lease: 300 usd, 150 tokens. lr-4 fits; lr-5 takes the rest and overflows on both.
select is(public.settle_leased_usage('[
    {"lease_id":"lease:a1","request_id":"lr-4","domain":"legal","prompt_tokens":10,"completion_tokens":10,"cost_usd_micros":200,"provider":"openai","upstream_model":"gpt-x"},
    {"lease_id":"lease:a1","request_id":"lr-5","domain":"legal","prompt_tokens":100,"completion_tokens":50,"cost_usd_micros":300,"provider":"openai","upstream_model":"gpt-x"},
    {"lease_id":"lease:a1","request_id":"lr-1","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"openai","upstream_model":"gpt-x"}
  ]'::jsonb),
  '[{"status": "settled", "overflow_usd_micros": 0}, {"status": "settled", "overflow_usd_micros": 200}, {"status": "duplicate"}]'::jsonb,
  'a request costing more than the lease has left reports the excess as overflow; an already recorded request is a duplicate');
select results_eq($$select request_id, cost_usd_micros, overflow_usd_micros from public.usage_records where request_id in ('lr-4', 'lr-5') order by request_id$$,
  $$values ('lr-4'::text, 200::bigint, 0::bigint), ('lr-5', 300, 200)$$, 'the usage record keeps the full cost and its overflow');
select results_eq($$select budget_id, spent, reserved, overflow, request_count from public.usage_counters
                    where budget_id in ('bbbbbbbb-0000-0000-0000-000000000701', 'bbbbbbbb-0000-0000-0000-000000000702') order by budget_id$$,
  $$values ('bbbbbbbb-0000-0000-0000-000000000701'::uuid, 1000::bigint, 4500::bigint, 200::bigint, 4::bigint),
           ('bbbbbbbb-0000-0000-0000-000000000702'::uuid, 500::bigint, 0::bigint, 20::bigint, 4::bigint)$$,
  'only what was left is charged (spent up to the slice), the excess is counted as overflow outside the limit');
select results_eq($$select count(*)::int, sum(cost_usd_micros)::bigint from public.usage_records where request_id = 'lr-1'$$,
  $$values (1, 300::bigint)$$, 'a duplicate writes no second usage record and changes none');
select is((select requests_used from public.budget_leases where reservation_id = 'lease:a1'), 4, 'duplicates are not counted as used requests');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds after an overflow under a lease');

-- 5. Closing: the remainder goes back, unused requests and tokens return to the rate window.
select is(public.close_budget_leases('[{"lease_id":"lease:a1","requests_used":3,"tokens_used":400},{"lease_id":"lease:a2"},
                                       {"lease_id":"lease:a1","requests_used":9},{"lease_id":"lease:zzz"}]'::jsonb),
  '[{"status": "closed"}, {"status": "closed"}, {"status": "duplicate"}, {"status": "unknown"}]'::jsonb,
  'close answers in order: closed, closed, a repeat in the batch is a duplicate, an unknown lease is unknown');
select results_eq($$select requests, tokens from public.rate_limit_windows where rate_limit_id = 'dddddddd-0000-0000-0000-000000000701'$$,
  $$values (4, 400::bigint)$$,
  'the rate window gets back 10 - max(3 reported, 4 settled) and 46 unused requests, and 500 - 400 unused tokens');
select results_eq($$select budget_id, spent, reserved from public.usage_counters
                    where budget_id in ('bbbbbbbb-0000-0000-0000-000000000701', 'bbbbbbbb-0000-0000-0000-000000000702') order by budget_id$$,
  $$values ('bbbbbbbb-0000-0000-0000-000000000701'::uuid, 1000::bigint, 0::bigint), ('bbbbbbbb-0000-0000-0000-000000000702'::uuid, 500::bigint, 0::bigint)$$,
  'closing releases what is left: reserved back to 0, spent unchanged');
select results_eq($$select request_id, status, release_reason, finished_at is not null from public.budget_reservations
                    where request_id in ('lease:a1', 'lease:a2') order by request_id$$,
  $$values ('lease:a1'::text, 'settled'::text, 'lease closed'::text, true), ('lease:a2', 'released', 'lease closed', true)$$,
  'a lease that charged something ends settled, one that charged nothing ends released');
select is(public.close_budget_leases('[{"lease_id":"lease:a1"}]'::jsonb), '[{"status": "duplicate", "lease_status": "settled"}]'::jsonb,
  'closing a closed lease again is a duplicate naming its status');
select is(public.settle_leased_usage('[{"lease_id":"lease:a1","request_id":"lr-6","prompt_tokens":1,"completion_tokens":1,"cost_usd_micros":1,"provider":"openai","upstream_model":"gpt-x"}]'::jsonb),
  '[{"status": "lease_closed", "lease_status": "settled"}]'::jsonb, 'a settlement against a closed lease answers lease_closed');
select is((select count(*)::int from public.usage_records where request_id in ('lr-3', 'lr-6')), 0,
  'no usage record for settlements against an unknown or a closed lease');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds after closing leases');

-- 6. flush_ledger with leased settlements and lease closes, and in its old 3-argument form.
select is(public.acquire_budget_leases('[{"lease_id":"lease:a3","holder":"isolate-1","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":100,"tokens":100,"requests":5,"ttl_seconds":600,"admit_seconds":30}]'::jsonb) -> 0 ->> 'status',
  'granted', 'a new lease is granted once the others closed');
select public.flush_ledger('[]'::jsonb, '[]'::jsonb, '[]'::jsonb,
  '[{"lease_id":"lease:a3","request_id":"lr-7","domain":"legal","prompt_tokens":5,"completion_tokens":5,"cost_usd_micros":60,"provider":"openai","upstream_model":"gpt-x"}]'::jsonb,
  '[{"lease_id":"lease:a3","requests_used":1,"tokens_used":10}]'::jsonb) as f \gset
select is(array[:'f'::jsonb #>> '{leased_settled,0,status}', :'f'::jsonb #>> '{lease_closed,0,status}'], array['settled', 'closed'],
  'flush_ledger answers leased settlements under leased_settled and lease closes under lease_closed');
select is(current_setting('synchronous_commit'), 'on', 'a flush with leased settlements commits durably');
select results_eq($$select (select status from public.budget_reservations where request_id = 'lease:a3'),
                           (select lease_id from public.usage_records where request_id = 'lr-7'),
                           (select spent from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000701'),
                           (select reserved from public.usage_counters where budget_id = 'bbbbbbbb-0000-0000-0000-000000000701')$$,
  $$values ('settled'::text, 'lease:a3'::text, 1060::bigint, 0::bigint)$$,
  'the flush settled before it closed: the request is charged and the lease ends settled');
select is(public.flush_ledger('[]', '[]', '[]'),
  '{"reserved": [], "settled": [], "released": [], "leased_settled": [], "lease_closed": []}'::jsonb,
  'the 3-argument call still works, with empty lease answers');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds after a flush with leases');

select tests.clear_authentication();

-- 7. The reaper releases an expired lease: its remainder goes back, what it charged stays spent.
select is(public.acquire_budget_leases('[{"lease_id":"lease:a4","holder":"isolate-9","tenant_id":"eeeeeeee-0000-0000-0000-000000000070","api_key_id":"aaaaaaaa-0000-0000-0000-000000000070","model_alias":"lease-model","usd_micros":1000,"tokens":100,"requests":5,"ttl_seconds":60,"admit_seconds":30}]'::jsonb) -> 0 ->> 'status',
  'granted', 'a lease is granted to an isolate that will crash');
select is(public.settle_leased_usage('[{"lease_id":"lease:a4","request_id":"lr-8","prompt_tokens":20,"completion_tokens":10,"cost_usd_micros":400,"provider":"openai","upstream_model":"gpt-x"}]'::jsonb) -> 0 ->> 'status',
  'settled', 'one request settles under it');
update public.budget_reservations set expires_at = now() - interval '1 second' where request_id = 'lease:a4';
select is(public.reap_expired_reservations(), 1, 'the reaper releases the expired lease');
select results_eq($$select budget_id, spent, reserved from public.usage_counters
                    where budget_id in ('bbbbbbbb-0000-0000-0000-000000000701', 'bbbbbbbb-0000-0000-0000-000000000702') order by budget_id$$,
  $$values ('bbbbbbbb-0000-0000-0000-000000000701'::uuid, 1460::bigint, 0::bigint), ('bbbbbbbb-0000-0000-0000-000000000702'::uuid, 540::bigint, 0::bigint)$$,
  'the remainder of the expired lease goes back, its charge stays spent');
select is((select array[status, items -> 0 ->> 'charged', items -> 0 ->> 'amount'] from public.budget_reservations where request_id = 'lease:a4'),
  array['released', '400', '600'], 'the reaped lease is released and keeps what it charged in its items');
select is((select count(*)::int from public.usage_invariant_violations()), 0, 'conservation holds after the reaper released a lease that charged');

-- 8. Feedback on a leased request takes the domain from its usage record (it has no reservation of its own).
select is((select array[f ->> 'status', f #>> '{feedback,domain}']
           from public.record_feedback('eeeeeeee-0000-0000-0000-000000000070', 'lr-1', 'api_key:aaaaaaaa-0000-0000-0000-000000000070',
                                       'aaaaaaaa-0000-0000-0000-000000000070', null, 0.9) f),
  array['created', 'legal'], 'feedback on a request settled under a lease carries the domain of its usage record');

-- 9. Only the service role uses leases.
select tests.authenticate_as_anon();
select throws_ok($$select public.acquire_budget_leases('[]')$$, '42501', 'permission denied for function acquire_budget_leases', 'anon cannot acquire budget leases');
select throws_ok($$select public.settle_leased_usage('[]')$$, '42501', 'permission denied for function settle_leased_usage', 'anon cannot settle leased usage');
select throws_ok($$select public.close_budget_leases('[]')$$, '42501', 'permission denied for function close_budget_leases', 'anon cannot close budget leases');
select throws_ok($$select * from public.budget_leases$$, '42501', 'permission denied for table budget_leases', 'anon cannot read budget_leases');
select tests.clear_authentication();
select tests.authenticate_as(tests.create_user('leases.member@example.test'));
select throws_ok($$select public.acquire_budget_leases('[]')$$, '42501', 'permission denied for function acquire_budget_leases', 'authenticated users cannot acquire budget leases');
select throws_ok($$select public.settle_leased_usage('[]')$$, '42501', 'permission denied for function settle_leased_usage', 'authenticated users cannot settle leased usage');
select throws_ok($$select public.close_budget_leases('[]')$$, '42501', 'permission denied for function close_budget_leases', 'authenticated users cannot close budget leases');
select throws_ok($$select * from public.budget_leases$$, '42501', 'permission denied for table budget_leases', 'authenticated users cannot read budget_leases');
select tests.clear_authentication();

select * from finish();
rollback;
