-- The budget saga, set-based. Updating one hot counter row once per request
-- inside a batch made every update walk a longer chain of row versions
-- (73 ms for 64 reservations). Now a batch checks each request in order
-- against running totals held in the function, then writes every counter,
-- rate-limit window and reservation once. The single-request functions are
-- one-element batches: one implementation, the same answers.

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
  select coalesce(pg_catalog.jsonb_object_agg(r.request_id, r.status), '{}'::jsonb) into v_seen
  from public.budget_reservations r
  where r.request_id in (select x.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_requests) x);

  -- The enabled budgets of the batch's tenants, their counters opened and locked in global order.
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'id', b.id, 'tenant_id', b.tenant_id, 'scope', b.scope, 'api_key_id', b.api_key_id,
           'model_alias', b.model_alias, 'unit', b.unit, 'period', b.period, 'over_limit', b.over_limit,
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
          or (b.value ->> 'scope' = 'model' and b.value ->> 'model_alias' = v_request.model_alias))
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
      'estimate_tokens', v_request.tokens, 'items', v_items,
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
    request_id, tenant_id, api_key_id, user_id, model_alias, estimate_usd_micros, estimate_tokens, items, expires_at)
  select r.request_id, r.tenant_id, r.api_key_id, r.user_id, r.model_alias, r.estimate_usd_micros, r.estimate_tokens,
         r.items, r.expires_at
  from pg_catalog.jsonb_to_recordset(v_rows) as r(
    request_id text, tenant_id uuid, api_key_id uuid, user_id uuid, model_alias text, estimate_usd_micros bigint,
    estimate_tokens bigint, items jsonb, expires_at timestamptz);

  return v_answers;
end
$$;

create or replace function public.reserve_budget(
  p_request_id text,
  p_tenant_id uuid,
  p_api_key_id uuid,
  p_model_alias text,
  p_usd_micros bigint,
  p_tokens bigint,
  p_user_id uuid default null,
  p_ttl_seconds integer default 600
)
returns jsonb
language sql
set search_path = ''
as $$
  select public.reserve_budgets(pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
    'request_id', p_request_id, 'tenant_id', p_tenant_id, 'api_key_id', p_api_key_id, 'model_alias', p_model_alias,
    'usd_micros', p_usd_micros, 'tokens', p_tokens, 'user_id', p_user_id, 'ttl_seconds', p_ttl_seconds))) -> 0
$$;

-- Settle, set-based: every settlement's charge and overflow per counter are
-- summed, then each counter, usage record and reservation is written once.
create or replace function public.settle_budgets(p_settlements jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_reservations jsonb;
  v_settlement record;
  v_reservation jsonb;
  v_item jsonb;
  v_items jsonb;
  v_deltas jsonb := '{}'::jsonb;
  v_records jsonb := '[]'::jsonb;
  v_updates jsonb := '[]'::jsonb;
  v_answers jsonb := '[]'::jsonb;
  v_actual bigint;
  v_charged bigint;
  v_overflow_usd bigint;
  v_key text;
begin
  if exists (
    select 1 from pg_catalog.jsonb_array_elements(p_settlements) s
    where coalesce((s.value ->> 'prompt_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'completion_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'cost_usd_micros')::bigint, -1) < 0
       or coalesce(s.value ->> 'status', 'succeeded') not in ('succeeded', 'failed', 'cancelled')
  ) then
    raise exception 'usage must be zero or more, status succeeded, failed or cancelled' using errcode = 'invalid_parameter_value';
  end if;

  perform private.lock_counters_of_reservations(
    array(select s.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_settlements) s));
  select coalesce(pg_catalog.jsonb_object_agg(r.request_id, pg_catalog.to_jsonb(r)), '{}'::jsonb) into v_reservations
  from (
    select r.* from public.budget_reservations r
    where r.request_id in (select s.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_settlements) s)
    order by r.request_id
    for update
  ) r;

  for v_settlement in
    select s.value ->> 'request_id' as request_id, (s.value ->> 'prompt_tokens')::integer as prompt_tokens,
           (s.value ->> 'completion_tokens')::integer as completion_tokens, (s.value ->> 'cost_usd_micros')::bigint as cost,
           s.value ->> 'provider' as provider, s.value ->> 'upstream_model' as upstream_model,
           (s.value ->> 'latency_ms')::integer as latency_ms, coalesce(s.value ->> 'status', 'succeeded') as status
    from pg_catalog.jsonb_array_elements(p_settlements) with ordinality as s(value, position)
    order by s.position
  loop
    v_reservation := v_reservations -> v_settlement.request_id;
    if v_reservation is null then
      v_answers := v_answers || '[{"status": "unknown"}]'::jsonb;
      continue;
    end if;
    if v_reservation ->> 'status' <> 'reserved' then
      v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'status', 'duplicate', 'reservation_status', v_reservation ->> 'status'));
      continue;
    end if;

    v_items := '[]'::jsonb;
    v_overflow_usd := 0;
    for v_item in select i.value from pg_catalog.jsonb_array_elements(v_reservation -> 'items') i
    loop
      v_actual := case v_item ->> 'unit' when 'usd_micros' then v_settlement.cost
                  else v_settlement.prompt_tokens::bigint + v_settlement.completion_tokens end;
      v_charged := least(v_actual, (v_item ->> 'amount')::bigint);
      if v_item ->> 'unit' = 'usd_micros' then
        v_overflow_usd := greatest(v_overflow_usd, v_actual - v_charged);
      end if;
      v_key := v_item ->> 'budget_id';
      v_deltas := v_deltas || pg_catalog.jsonb_build_object(v_key, pg_catalog.jsonb_build_object(
        'window_start', v_item -> 'window_start',
        'released', coalesce((v_deltas #>> array[v_key, 'released'])::bigint, 0) + (v_item ->> 'amount')::bigint,
        'charged', coalesce((v_deltas #>> array[v_key, 'charged'])::bigint, 0) + v_charged,
        'overflow', coalesce((v_deltas #>> array[v_key, 'overflow'])::bigint, 0) + (v_actual - v_charged),
        'requests', coalesce((v_deltas #>> array[v_key, 'requests'])::bigint, 0) + 1,
        'prompt_tokens', coalesce((v_deltas #>> array[v_key, 'prompt_tokens'])::bigint, 0) + v_settlement.prompt_tokens,
        'completion_tokens', coalesce((v_deltas #>> array[v_key, 'completion_tokens'])::bigint, 0) + v_settlement.completion_tokens));
      v_items := v_items || (v_item || pg_catalog.jsonb_build_object('charged', v_charged, 'overflow', v_actual - v_charged));
    end loop;

    v_reservations := pg_catalog.jsonb_set(v_reservations, array[v_settlement.request_id, 'status'], '"settled"');
    v_records := v_records || pg_catalog.jsonb_build_object(
      'request_id', v_settlement.request_id, 'tenant_id', v_reservation -> 'tenant_id', 'api_key_id', v_reservation -> 'api_key_id',
      'user_id', v_reservation -> 'user_id', 'provider', v_settlement.provider, 'upstream_model', v_settlement.upstream_model,
      'model_alias', v_reservation -> 'model_alias', 'prompt_tokens', v_settlement.prompt_tokens,
      'completion_tokens', v_settlement.completion_tokens, 'cost_usd_micros', v_settlement.cost,
      'overflow_usd_micros', v_overflow_usd, 'status', v_settlement.status, 'latency_ms', v_settlement.latency_ms);
    v_updates := v_updates || pg_catalog.jsonb_build_object('request_id', v_settlement.request_id, 'items', v_items);
    v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'status', 'settled', 'items', v_items, 'overflow_usd_micros', v_overflow_usd));
  end loop;

  update public.usage_counters c
  set reserved = c.reserved - (d.value ->> 'released')::bigint,
      spent = c.spent + (d.value ->> 'charged')::bigint,
      overflow = c.overflow + (d.value ->> 'overflow')::bigint,
      request_count = c.request_count + (d.value ->> 'requests')::bigint,
      prompt_tokens = c.prompt_tokens + (d.value ->> 'prompt_tokens')::bigint,
      completion_tokens = c.completion_tokens + (d.value ->> 'completion_tokens')::bigint,
      updated_at = now()
  from pg_catalog.jsonb_each(v_deltas) d
  where c.budget_id = d.key::uuid and c.window_start = (d.value ->> 'window_start')::timestamptz;

  insert into public.usage_records (
    request_id, tenant_id, api_key_id, user_id, provider, upstream_model, model_alias, prompt_tokens,
    completion_tokens, cost_usd_micros, overflow_usd_micros, cache_hit, status, latency_ms)
  select r.request_id, r.tenant_id, r.api_key_id, r.user_id, r.provider, r.upstream_model, r.model_alias,
         r.prompt_tokens, r.completion_tokens, r.cost_usd_micros, r.overflow_usd_micros, false, r.status, r.latency_ms
  from pg_catalog.jsonb_to_recordset(v_records) as r(
    request_id text, tenant_id uuid, api_key_id uuid, user_id uuid, provider text, upstream_model text,
    model_alias text, prompt_tokens integer, completion_tokens integer, cost_usd_micros bigint,
    overflow_usd_micros bigint, status text, latency_ms integer);

  update public.budget_reservations r
  set status = 'settled', items = u.items, finished_at = now()
  from pg_catalog.jsonb_to_recordset(v_updates) as u(request_id text, items jsonb)
  where r.request_id = u.request_id;

  return v_answers;
end
$$;

create or replace function public.settle_budget(
  p_request_id text,
  p_prompt_tokens integer,
  p_completion_tokens integer,
  p_cost_usd_micros bigint,
  p_provider text,
  p_upstream_model text,
  p_latency_ms integer default null,
  p_status text default 'succeeded'
)
returns jsonb
language sql
set search_path = ''
as $$
  select public.settle_budgets(pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
    'request_id', p_request_id, 'prompt_tokens', p_prompt_tokens, 'completion_tokens', p_completion_tokens,
    'cost_usd_micros', p_cost_usd_micros, 'provider', p_provider, 'upstream_model', p_upstream_model,
    'latency_ms', p_latency_ms, 'status', p_status))) -> 0
$$;

-- Release, set-based.
create or replace function public.release_budgets(p_releases jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_reservations jsonb;
  v_release record;
  v_reservation jsonb;
  v_item jsonb;
  v_deltas jsonb := '{}'::jsonb;
  v_released jsonb := '[]'::jsonb;
  v_answers jsonb := '[]'::jsonb;
begin
  perform private.lock_counters_of_reservations(
    array(select r.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_releases) r));
  select coalesce(pg_catalog.jsonb_object_agg(r.request_id, pg_catalog.to_jsonb(r)), '{}'::jsonb) into v_reservations
  from (
    select r.* from public.budget_reservations r
    where r.request_id in (select x.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_releases) x)
    order by r.request_id
    for update
  ) r;

  for v_release in
    select x.value ->> 'request_id' as request_id, left(x.value ->> 'reason', 200) as reason
    from pg_catalog.jsonb_array_elements(p_releases) with ordinality as x(value, position)
    order by x.position
  loop
    v_reservation := v_reservations -> v_release.request_id;
    if v_reservation is null then
      v_answers := v_answers || '[{"status": "unknown"}]'::jsonb;
      continue;
    end if;
    if v_reservation ->> 'status' <> 'reserved' then
      v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'status', 'duplicate', 'reservation_status', v_reservation ->> 'status'));
      continue;
    end if;
    for v_item in select i.value from pg_catalog.jsonb_array_elements(v_reservation -> 'items') i
    loop
      v_deltas := v_deltas || pg_catalog.jsonb_build_object(v_item ->> 'budget_id', pg_catalog.jsonb_build_object(
        'window_start', v_item -> 'window_start',
        'released', coalesce((v_deltas #>> array[v_item ->> 'budget_id', 'released'])::bigint, 0) + (v_item ->> 'amount')::bigint));
    end loop;
    v_reservations := pg_catalog.jsonb_set(v_reservations, array[v_release.request_id, 'status'], '"released"');
    v_released := v_released || pg_catalog.jsonb_build_object('request_id', v_release.request_id, 'reason', v_release.reason);
    v_answers := v_answers || '[{"status": "released"}]'::jsonb;
  end loop;

  update public.usage_counters c
  set reserved = c.reserved - (d.value ->> 'released')::bigint, updated_at = now()
  from pg_catalog.jsonb_each(v_deltas) d
  where c.budget_id = d.key::uuid and c.window_start = (d.value ->> 'window_start')::timestamptz;

  update public.budget_reservations r
  set status = 'released', release_reason = u.reason, finished_at = now()
  from pg_catalog.jsonb_to_recordset(v_released) as u(request_id text, reason text)
  where r.request_id = u.request_id;

  return v_answers;
end
$$;

create or replace function public.release_budget(p_request_id text, p_reason text default null)
returns jsonb
language sql
set search_path = ''
as $$
  select public.release_budgets(pg_catalog.jsonb_build_array(
    pg_catalog.jsonb_build_object('request_id', p_request_id, 'reason', p_reason))) -> 0
$$;

-- The per-request helpers the first version used are now unused.
drop function private.take_rate_limit(uuid, uuid, bigint, timestamptz);
drop function private.rate_limit_status(uuid, uuid, timestamptz);
