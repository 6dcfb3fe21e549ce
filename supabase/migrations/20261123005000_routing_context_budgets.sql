-- Routing context on the budget saga. A/B bucket caps: a budget of scope
-- 'bucket' limits what one tenant spends through one bucket of one routing
-- policy; reserve_budgets applies it to requests the planner put in that bucket
-- (request fields policy_id and bucket), so the conservation CHECK on
-- usage_counters bounds a bucket exactly like any other budget. A refusal
-- names scope 'bucket', and the router then falls back to the policy's control
-- bucket. Reservations also remember the request's policy, bucket and domain
-- tag (x-switchyard-domain), which feedback and reputation need later.

-- budgets is a small operator-managed table (a handful of rows per tenant): the
-- brief locks these statements take are harmless, so squawk's online-migration
-- advice is waived for it.
alter table public.budgets
  -- squawk-ignore adding-foreign-key-constraint
  add column policy_id uuid references public.routing_policies (id) on delete cascade,
  add column bucket text check (bucket ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$');
alter table public.budgets drop constraint budgets_scope_check,
  -- squawk-ignore constraint-missing-not-valid
  add constraint budgets_scope_check check (scope in ('tenant', 'api_key', 'model', 'bucket')),
  -- squawk-ignore constraint-missing-not-valid
  add constraint budgets_bucket_target_check
    check ((scope = 'bucket') = (policy_id is not null) and (policy_id is null) = (bucket is null));
-- squawk-ignore require-concurrent-index-creation
create index budgets_policy_id_idx on public.budgets (policy_id);
-- squawk-ignore require-concurrent-index-deletion
drop index public.budgets_one_per_target_idx;
-- squawk-ignore require-concurrent-index-creation
create unique index budgets_one_per_target_idx on public.budgets (
  tenant_id, scope, coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), coalesce(model_alias, ''),
  coalesce(policy_id, '00000000-0000-0000-0000-000000000000'::uuid), coalesce(bucket, ''), unit, period
);
comment on column public.budgets.bucket is 'For scope bucket: the A/B bucket of routing policy policy_id this budget caps.';

-- History, not references: a reservation outlives edits to the policy it was routed by.
alter table public.budget_reservations
  add column policy_id uuid,
  add column bucket text,
  add column domain text;
comment on column public.budget_reservations.domain is 'The request''s x-switchyard-domain tag, for feedback and reputation.';

-- reserve_budgets as in 20261123004200, plus the bucket scope and the routing context.
create or replace function public.reserve_budgets(p_requests jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_minute timestamptz := pg_catalog.date_trunc('minute', v_now);
  v_reset integer := ceil(extract(epoch from (pg_catalog.date_trunc('minute', now()) + interval '1 minute' - now())))::integer;
  v_request record;
  v_budget record;
  v_limit record;
  v_budgets jsonb;
  v_room jsonb := '{}'::jsonb;
  v_added jsonb := '{}'::jsonb;
  v_limits jsonb := '{}'::jsonb;
  v_seen jsonb;
  v_answers jsonb := '[]'::jsonb;
  v_rows jsonb := '[]'::jsonb;
  v_items jsonb;
  v_refusal jsonb;
  v_amount bigint;
  v_status jsonb;
  v_tenants uuid[];
begin
  if pg_catalog.jsonb_typeof(p_requests) <> 'array' then
    raise exception 'reserve_budgets takes a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  if exists (
    select 1 from pg_catalog.jsonb_array_elements(p_requests) r
    where coalesce(length(r.value ->> 'request_id'), 0) not between 1 and 128
       or coalesce((r.value ->> 'usd_micros')::bigint, -1) < 0
       or coalesce((r.value ->> 'tokens')::bigint, -1) < 0
       or coalesce((r.value ->> 'ttl_seconds')::integer, 600) not between 1 and 86400
  ) then
    raise exception 'every reservation needs a request id of 1 to 128 characters, amounts of zero or more and a ttl of 1 to 86400 s'
      using errcode = 'invalid_parameter_value';
  end if;

  v_tenants := array(select distinct (r.value ->> 'tenant_id')::uuid from pg_catalog.jsonb_array_elements(p_requests) r);
  -- An id is used once, whichever way it was admitted: a reservation of its own, or a
  -- budget lease or the response cache, which leave only a usage record.
  select coalesce(pg_catalog.jsonb_object_agg(s.request_id, s.status), '{}'::jsonb) into v_seen
  from (
    select r.request_id, r.status from public.budget_reservations r
    where r.request_id in (select x.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_requests) x)
    union all
    select u.request_id, 'settled' from public.usage_records u
    where u.request_id in (select x.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_requests) x)
      and not exists (select 1 from public.budget_reservations r where r.request_id = u.request_id)
  ) s;

  -- The enabled budgets of the batch's tenants, their counters opened and locked in global order.
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'id', b.id, 'tenant_id', b.tenant_id, 'scope', b.scope, 'api_key_id', b.api_key_id,
           'model_alias', b.model_alias, 'policy_id', b.policy_id, 'bucket', b.bucket,
           'unit', b.unit, 'period', b.period, 'over_limit', b.over_limit,
           'window_start', private.budget_window_start(b.period, v_now)) order by b.id), '[]'::jsonb)
    into v_budgets
  from public.budgets b
  where b.enabled and b.tenant_id = any (v_tenants);

  insert into public.usage_counters (budget_id, window_start, limit_amount)
  select b.id, private.budget_window_start(b.period, v_now), b.limit_amount
  from public.budgets b
  where b.enabled and b.tenant_id = any (v_tenants)
  order by b.id
  on conflict (budget_id, window_start) do nothing;

  for v_budget in
    select c.budget_id, c.limit_amount - c.spent - c.reserved as room, c.limit_amount
    from public.usage_counters c
    join public.budgets b on b.id = c.budget_id and c.window_start = private.budget_window_start(b.period, v_now)
    where b.enabled and b.tenant_id = any (v_tenants)
    order by c.budget_id, c.window_start
    for update of c
  loop
    v_room := v_room || pg_catalog.jsonb_build_object(v_budget.budget_id::text,
      pg_catalog.jsonb_build_object('room', v_budget.room, 'limit', v_budget.limit_amount));
  end loop;

  -- Rate limits of the batch's tenants, locked, with what this minute has used so far.
  for v_limit in
    select l.id, l.tenant_id, l.api_key_id, l.requests_per_minute, l.tokens_per_minute, l.burst,
           coalesce(w.requests, 0) as used_requests, coalesce(w.tokens, 0) as used_tokens
    from public.rate_limits l
    left join public.rate_limit_windows w on w.rate_limit_id = l.id and w.window_start = v_minute
    where l.tenant_id = any (v_tenants)
    order by l.id
    for update of l
  loop
    v_limits := v_limits || pg_catalog.jsonb_build_object(v_limit.id::text, pg_catalog.jsonb_build_object(
      'tenant_id', v_limit.tenant_id, 'api_key_id', v_limit.api_key_id,
      'requests_per_minute', v_limit.requests_per_minute, 'tokens_per_minute', v_limit.tokens_per_minute,
      'burst', v_limit.burst, 'used_requests', v_limit.used_requests, 'used_tokens', v_limit.used_tokens, 'added', false));
  end loop;

  for v_request in
    select r.value ->> 'request_id' as request_id, (r.value ->> 'tenant_id')::uuid as tenant_id,
           (r.value ->> 'api_key_id')::uuid as api_key_id, (r.value ->> 'user_id')::uuid as user_id,
           r.value ->> 'model_alias' as model_alias, (r.value ->> 'usd_micros')::bigint as usd_micros,
           (r.value ->> 'policy_id')::uuid as policy_id, r.value ->> 'bucket' as bucket, r.value ->> 'domain' as domain,
           (r.value ->> 'tokens')::bigint as tokens, coalesce((r.value ->> 'ttl_seconds')::integer, 600) as ttl_seconds
    from pg_catalog.jsonb_array_elements(p_requests) with ordinality as r(value, position)
    order by r.position
  loop
    if v_seen ? v_request.request_id then
      v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'status', 'duplicate', 'reservation_status', v_seen ->> v_request.request_id));
      continue;
    end if;

    -- Rate limits that apply: the tenant's and this key's.
    v_refusal := null;
    select pg_catalog.jsonb_build_object(
             'status', 'rate_limited', 'rate_limit_id', l.key,
             'limit_requests', (l.value ->> 'requests_per_minute')::integer,
             'remaining_requests', case when l.value ->> 'requests_per_minute' is null then null else greatest(
               (l.value ->> 'requests_per_minute')::integer + (l.value ->> 'burst')::integer - (l.value ->> 'used_requests')::integer, 0) end,
             'limit_tokens', (l.value ->> 'tokens_per_minute')::integer,
             'remaining_tokens', case when l.value ->> 'tokens_per_minute' is null then null else greatest(
               (l.value ->> 'tokens_per_minute')::bigint + (l.value ->> 'burst')::integer - (l.value ->> 'used_tokens')::bigint, 0) end,
             'reset_seconds', v_reset)
      into v_refusal
    from pg_catalog.jsonb_each(v_limits) l
    where (l.value ->> 'tenant_id')::uuid = v_request.tenant_id
      and (l.value ->> 'api_key_id' is null or (l.value ->> 'api_key_id')::uuid = v_request.api_key_id)
      and ((l.value ->> 'requests_per_minute' is not null
             and (l.value ->> 'used_requests')::integer + 1 > (l.value ->> 'requests_per_minute')::integer + (l.value ->> 'burst')::integer)
        or (l.value ->> 'tokens_per_minute' is not null
             and (l.value ->> 'used_tokens')::bigint + v_request.tokens > (l.value ->> 'tokens_per_minute')::bigint + (l.value ->> 'burst')::integer))
    order by l.key
    limit 1;
    if v_refusal is not null then
      v_answers := v_answers || pg_catalog.jsonb_build_array(v_refusal);
      continue;
    end if;

    -- Budgets that apply, in id order: the first without room refuses the request.
    v_items := '[]'::jsonb;
    for v_budget in
      select b.value as budget
      from pg_catalog.jsonb_array_elements(v_budgets) b
      where (b.value ->> 'tenant_id')::uuid = v_request.tenant_id
        and (b.value ->> 'scope' = 'tenant'
          or (b.value ->> 'scope' = 'api_key' and (b.value ->> 'api_key_id')::uuid = v_request.api_key_id)
          or (b.value ->> 'scope' = 'model' and b.value ->> 'model_alias' = v_request.model_alias)
          or (b.value ->> 'scope' = 'bucket' and (b.value ->> 'policy_id')::uuid = v_request.policy_id
              and b.value ->> 'bucket' = v_request.bucket))
    loop
      v_amount := case v_budget.budget ->> 'unit' when 'usd_micros' then v_request.usd_micros else v_request.tokens end;
      if (v_room #>> array[v_budget.budget ->> 'id', 'room'])::bigint < v_amount then
        v_refusal := pg_catalog.jsonb_build_object(
          'status', 'refused', 'budget_id', v_budget.budget ->> 'id', 'scope', v_budget.budget ->> 'scope',
          'unit', v_budget.budget ->> 'unit', 'period', v_budget.budget ->> 'period',
          'over_limit', v_budget.budget ->> 'over_limit',
          'limit', (v_room #>> array[v_budget.budget ->> 'id', 'limit'])::bigint,
          'requested', v_amount,
          'remaining', greatest((v_room #>> array[v_budget.budget ->> 'id', 'room'])::bigint, 0));
        exit;
      end if;
      v_items := v_items || pg_catalog.jsonb_build_object(
        'budget_id', v_budget.budget ->> 'id', 'window_start', v_budget.budget -> 'window_start',
        'unit', v_budget.budget ->> 'unit', 'amount', v_amount);
    end loop;
    if v_refusal is not null then
      v_answers := v_answers || pg_catalog.jsonb_build_array(v_refusal);
      continue;
    end if;

    -- Accept: take the room, count the rate, remember the reservation.
    for v_budget in select i.value as item from pg_catalog.jsonb_array_elements(v_items) i
    loop
      v_room := pg_catalog.jsonb_set(v_room, array[v_budget.item ->> 'budget_id', 'room'],
        pg_catalog.to_jsonb((v_room #>> array[v_budget.item ->> 'budget_id', 'room'])::bigint - (v_budget.item ->> 'amount')::bigint));
      v_added := v_added || pg_catalog.jsonb_build_object(v_budget.item ->> 'budget_id', pg_catalog.jsonb_build_object(
        'window_start', v_budget.item -> 'window_start',
        'amount', coalesce((v_added #>> array[v_budget.item ->> 'budget_id', 'amount'])::bigint, 0) + (v_budget.item ->> 'amount')::bigint));
    end loop;
    select coalesce(v_limits || pg_catalog.jsonb_object_agg(l.key, l.value || pg_catalog.jsonb_build_object(
             'used_requests', (l.value ->> 'used_requests')::integer + 1,
             'used_tokens', (l.value ->> 'used_tokens')::bigint + v_request.tokens,
             'added', true)), v_limits)
      into v_limits
    from pg_catalog.jsonb_each(v_limits) l
    where (l.value ->> 'tenant_id')::uuid = v_request.tenant_id
      and (l.value ->> 'api_key_id' is null or (l.value ->> 'api_key_id')::uuid = v_request.api_key_id);

    select pg_catalog.jsonb_build_object(
             'limit_requests', min((l.value ->> 'requests_per_minute')::integer),
             'remaining_requests', min((l.value ->> 'requests_per_minute')::integer + (l.value ->> 'burst')::integer - (l.value ->> 'used_requests')::integer),
             'limit_tokens', min((l.value ->> 'tokens_per_minute')::bigint),
             'remaining_tokens', min((l.value ->> 'tokens_per_minute')::bigint + (l.value ->> 'burst')::integer - (l.value ->> 'used_tokens')::bigint),
             'reset_seconds', v_reset)
      into v_status
    from pg_catalog.jsonb_each(v_limits) l
    where (l.value ->> 'tenant_id')::uuid = v_request.tenant_id
      and (l.value ->> 'api_key_id' is null or (l.value ->> 'api_key_id')::uuid = v_request.api_key_id)
    having count(*) > 0;

    v_seen := v_seen || pg_catalog.jsonb_build_object(v_request.request_id, 'reserved');
    v_rows := v_rows || pg_catalog.jsonb_build_object(
      'request_id', v_request.request_id, 'tenant_id', v_request.tenant_id, 'api_key_id', v_request.api_key_id,
      'user_id', v_request.user_id, 'model_alias', v_request.model_alias, 'estimate_usd_micros', v_request.usd_micros,
      'estimate_tokens', v_request.tokens, 'items', v_items, 'policy_id', v_request.policy_id,
      'bucket', v_request.bucket, 'domain', v_request.domain,
      'expires_at', v_now + pg_catalog.make_interval(secs => v_request.ttl_seconds));
    v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'status', 'reserved', 'items', v_items, 'rate_limit', v_status));
  end loop;

  -- One write per counter, per rate-limit window, and one insert for every reservation.
  update public.usage_counters c
  set reserved = c.reserved + (a.value ->> 'amount')::bigint, updated_at = v_now
  from pg_catalog.jsonb_each(v_added) a
  where c.budget_id = a.key::uuid and c.window_start = (a.value ->> 'window_start')::timestamptz;

  insert into public.rate_limit_windows as w (rate_limit_id, window_start, requests, tokens)
  select l.key::uuid, v_minute, (l.value ->> 'used_requests')::integer, (l.value ->> 'used_tokens')::bigint
  from pg_catalog.jsonb_each(v_limits) l
  where (l.value ->> 'added')::boolean
  on conflict (rate_limit_id, window_start) do update
    set requests = excluded.requests, tokens = excluded.tokens;

  insert into public.budget_reservations (
    request_id, tenant_id, api_key_id, user_id, model_alias, estimate_usd_micros, estimate_tokens, items, expires_at,
    policy_id, bucket, domain)
  select r.request_id, r.tenant_id, r.api_key_id, r.user_id, r.model_alias, r.estimate_usd_micros, r.estimate_tokens,
         r.items, r.expires_at, r.policy_id, r.bucket, r.domain
  from pg_catalog.jsonb_to_recordset(v_rows) as r(
    request_id text, tenant_id uuid, api_key_id uuid, user_id uuid, model_alias text, estimate_usd_micros bigint,
    estimate_tokens bigint, items jsonb, expires_at timestamptz, policy_id uuid, bucket text, domain text);

  return v_answers;
end
$$;
