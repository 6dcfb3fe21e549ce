-- Feedback and model reputation: record_feedback idempotency and refusals,
-- the decay math of refresh_model_reputation and its batches, bucket-scoped
-- budget caps in reserve_budgets, and RLS per actor down to anon.
begin;
select plan(39);

insert into public.tenants (id, name, slug) values
  ('a1000000-0000-0000-0000-000000000001', 'Reputation A', 'reputation-a'),
  ('a1000000-0000-0000-0000-000000000002', 'Reputation B', 'reputation-b');
insert into public.llm_providers (id, slug, kind, base_url) values
  ('c1000000-0000-0000-0000-000000000001', 'reputation-provider', 'openai', 'http://127.0.0.1:1/v1');
insert into public.usage_records (request_id, tenant_id, provider, upstream_model) values
  ('rep-req-1', 'a1000000-0000-0000-0000-000000000001', 'reputation-provider', 'model-x'),
  ('rep-req-2', 'a1000000-0000-0000-0000-000000000001', 'reputation-provider', 'model-x'),
  ('rep-req-b', 'a1000000-0000-0000-0000-000000000002', 'reputation-provider', 'model-x');
insert into public.budget_reservations (request_id, tenant_id, estimate_usd_micros, estimate_tokens, status, expires_at,
                                        finished_at, domain)
values ('rep-req-2', 'a1000000-0000-0000-0000-000000000001', 0, 0, 'settled', now(), now(), 'law');

-- record_feedback.
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-1',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 0, '{wrong}', 'made things up') ->> 'status',
  'created', 'a rating of an own request is recorded');
select results_eq($$select score, domain, provider_id, upstream_model from public.request_feedback where request_id = 'rep-req-1'$$,
  $$values (0::real, ''::text, 'c1000000-0000-0000-0000-000000000001'::uuid, 'model-x'::text)$$,
  'the rating carries the provider and model of the request');
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-1',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 0, '{wrong}', 'made things up') ->> 'status',
  'existing', 'the same rating again returns the stored one');
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-1',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 1) ->> 'status',
  'conflict', 'a different rating from the same source is a conflict');
select is((select score from public.request_feedback where request_id = 'rep-req-1'), 0::real,
  'a conflicting rating changes nothing');
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-1',
  'user:a1000000-0000-0000-0000-0000000000bb', null, null, 1) ->> 'status',
  'created', 'another source may rate the same request');
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'no-such-request',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 1) ->> 'status',
  'unknown_request', 'an unknown request id is refused');
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-b',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 1) ->> 'status',
  'unknown_request', 'another tenant''s request looks unknown');
select throws_ok($$select public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-2',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 1.5)$$,
  '22023', 'score must be between 0 and 1', 'a score above 1 is refused');
select throws_ok($$select public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-2',
  'nobody', null, null, 0.5)$$, '23514', 'new row for relation "request_feedback" violates check constraint "request_feedback_source_check"', 'a source that is not an API key or user is refused');
select is((select count(*)::int from public.request_feedback), 2, 'refusals left no rows');
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-2',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 0.5) #>> '{feedback,domain}',
  'law', 'the domain tag comes from the request''s reservation');

-- Refresh in batches, and the math.
select is(public.refresh_model_reputation(1), 1, 'a batch of one folds one rating');
select is((select count(*)::int from public.request_feedback where applied_at is null), 2, 'two ratings still pending');
select is(public.refresh_model_reputation(1000), 2, 'the next batch folds the rest');
select is(public.refresh_model_reputation(1000), 0, 'nothing left: a refresh folds nothing twice');
-- Tenant A, any domain: ratings 0, 1 and 0.5 -> average 0.5 over weight 3;
-- quality = (0.5 * 3 + 0.5) / (3 + 1) = 0.5; no signals -> reliability 1.
select results_eq($$select feedback_score, feedback_weight, score, sample_count from public.model_reputation
                    where tenant_id = 'a1000000-0000-0000-0000-000000000001' and domain = ''$$,
  $$values (0.5::float8, 3::float8, 0.5::real, 3::bigint)$$, 'the tenant row averages every rating');
select results_eq($$select feedback_score, feedback_weight, score from public.model_reputation
                    where tenant_id = 'a1000000-0000-0000-0000-000000000001' and domain = 'law'$$,
  $$values (0.5::float8, 1::float8, 0.5::real)$$, 'the domain row has only the rating of its domain');
select is((select count(*)::int from public.model_reputation where tenant_id is null), 2,
  'global rows exist for any domain and for the domain');

-- Quality signals: 4 requests, 1 failure -> reliability (3 + 1) / (4 + 1) = 0.8.
select is(public.record_quality_signals(
  '[{"tenant_id": "a1000000-0000-0000-0000-000000000002", "domain": "", "provider_id": "c1000000-0000-0000-0000-000000000001",
     "upstream_model": "model-y", "requests": 4, "failures": 1, "kinds": {"timeout": 1}}]'), 1, 'a batch of signals is stored');
select is(public.refresh_model_reputation(1000), 1, 'the refresh folds the signal row');
select is((select score from public.model_reputation
           where tenant_id = 'a1000000-0000-0000-0000-000000000002' and upstream_model = 'model-y'), 0.4::real,
  'score = neutral quality 0.5 x reliability 0.8');
select is((select count(*)::int from public.model_quality_signals), 0, 'folded signal rows are deleted');

-- Decay: one half-life later the old evidence weighs half.
update public.model_reputation set updated_at = now() - interval '1 day'
where tenant_id = 'a1000000-0000-0000-0000-000000000001' and domain = '';
insert into public.usage_records (request_id, tenant_id, provider, upstream_model) values
  ('rep-req-3', 'a1000000-0000-0000-0000-000000000001', 'reputation-provider', 'model-x');
select is(public.record_feedback('a1000000-0000-0000-0000-000000000001', 'rep-req-3',
  'api_key:a1000000-0000-0000-0000-0000000000aa', null, null, 1) ->> 'status', 'created', 'a later rating');
select is(public.refresh_model_reputation(10, 86400), 1, 'refresh with a one-day half-life');
-- weight 3 * 0.5 + 1 = 2.5; average (0.5 * 1.5 + 1) / 2.5 = 0.7.
select results_eq($$select round(feedback_weight::numeric, 6), round(feedback_score::numeric, 6), sample_count
                    from public.model_reputation
                    where tenant_id = 'a1000000-0000-0000-0000-000000000001' and domain = ''$$,
  $$values (2.5::numeric, 0.7::numeric, 4::bigint)$$, 'older evidence is halved after one half-life');
select throws_ok($$select public.refresh_model_reputation(0)$$, '22023', 'batch size must be between 1 and 100000', 'a batch size of 0 is refused');

-- Bucket caps in reserve_budgets.
insert into public.routing_policies (id, name, model_alias, ab_hash_by, ab_buckets) values
  ('d1000000-0000-0000-0000-000000000001', 'ab', 'rep-alias', 'tenant',
   '[{"name": "control", "percent": 50}, {"name": "treatment", "percent": 50}]');
insert into public.budgets (id, tenant_id, scope, policy_id, bucket, unit, period, limit_amount) values
  ('b1000000-0000-0000-0000-000000000001', 'a1000000-0000-0000-0000-000000000002', 'bucket',
   'd1000000-0000-0000-0000-000000000001', 'treatment', 'usd_micros', 'total', 100);
select throws_ok($$insert into public.budgets (tenant_id, scope, unit, period, limit_amount)
                   values ('a1000000-0000-0000-0000-000000000002', 'bucket', 'tokens', 'total', 1)$$,
  '23514', 'new row for relation "budgets" violates check constraint "budgets_bucket_target_check"', 'a bucket budget must name its policy and bucket');
select public.reserve_budgets('[
  {"request_id": "bk-1", "tenant_id": "a1000000-0000-0000-0000-000000000002", "model_alias": "rep-alias", "usd_micros": 60, "tokens": 1,
   "policy_id": "d1000000-0000-0000-0000-000000000001", "bucket": "treatment", "domain": "law"},
  {"request_id": "bk-2", "tenant_id": "a1000000-0000-0000-0000-000000000002", "model_alias": "rep-alias", "usd_micros": 40, "tokens": 1,
   "policy_id": "d1000000-0000-0000-0000-000000000001", "bucket": "treatment"},
  {"request_id": "bk-3", "tenant_id": "a1000000-0000-0000-0000-000000000002", "model_alias": "rep-alias", "usd_micros": 1, "tokens": 1,
   "policy_id": "d1000000-0000-0000-0000-000000000001", "bucket": "treatment"},
  {"request_id": "bk-4", "tenant_id": "a1000000-0000-0000-0000-000000000002", "model_alias": "rep-alias", "usd_micros": 1000, "tokens": 1,
   "policy_id": "d1000000-0000-0000-0000-000000000001", "bucket": "control"}
]'::jsonb) as bucket_answers \gset
select is(jsonb_path_query_array(:'bucket_answers'::jsonb, '$[*].status'), '["reserved", "reserved", "refused", "reserved"]'::jsonb,
  'the bucket takes requests up to exactly its cap and refuses the next; the control is not capped');
select is((:'bucket_answers'::jsonb -> 2 ->> 'scope') || ':' || (:'bucket_answers'::jsonb -> 2 ->> 'remaining'), 'bucket:0',
  'the refusal names the bucket budget, with nothing remaining');
select results_eq($$select spent, reserved, limit_amount from public.usage_counters where budget_id = 'b1000000-0000-0000-0000-000000000001'$$,
  $$values (0::bigint, 100::bigint, 100::bigint)$$, 'the bucket counter is full, never over');
select is((select domain from public.budget_reservations where request_id = 'bk-1'), 'law', 'the reservation keeps the domain tag');

-- RLS: a member of A, a member of B, anon.
insert into auth.users (id, email) values
  ('e1000000-0000-0000-0000-00000000000a', 'rep.a@example.test'),
  ('e1000000-0000-0000-0000-00000000000b', 'rep.nobody@example.test');
insert into public.memberships (tenant_id, user_id, role)
values ('a1000000-0000-0000-0000-000000000001', 'e1000000-0000-0000-0000-00000000000a', 'member');
select tests.authenticate_as('e1000000-0000-0000-0000-00000000000a');
select is((select count(*)::int from public.request_feedback), 4, 'a member reads their tenant''s ratings');
select is((select count(*)::int from public.model_reputation where tenant_id is not null), 2,
  'a member reads their tenant''s reputation rows, not another tenant''s');
select is((select count(*)::int from public.model_reputation where tenant_id is null), 3, 'and the global rows');
select throws_ok($$insert into public.request_feedback (tenant_id, request_id, source, score)
                   values ('a1000000-0000-0000-0000-000000000001', 'rep-req-1', 'user:a1000000-0000-0000-0000-0000000000cc', 1)$$,
  '42501', 'permission denied for table request_feedback', 'members cannot write ratings directly');
select throws_ok($$select public.refresh_model_reputation(10)$$, '42501', 'permission denied for function refresh_model_reputation', 'members cannot run the refresh');
select tests.authenticate_as('e1000000-0000-0000-0000-00000000000b');
select is((select count(*)::int from public.request_feedback), 0, 'a user of no tenant reads no ratings');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.model_reputation$$, '42501', 'permission denied for table model_reputation', 'anon cannot read reputation');
select tests.clear_authentication();

select * from finish();
rollback;
