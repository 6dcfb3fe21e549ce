-- The budget saga in SQL: reserve an estimate before the upstream call, then
-- settle the actual usage or release the reservation. Each step is atomic and
-- idempotent by request id. The batch forms take many requests in one
-- transaction (group commit) and lock counter rows in one global order, so
-- concurrent batches cannot deadlock.

create function private.budget_window_start(period text, at timestamptz)
returns timestamptz
language sql
immutable
set search_path = ''
as $$
  select case period
    when 'day' then pg_catalog.date_trunc('day', at, 'UTC')
    when 'month' then pg_catalog.date_trunc('month', at, 'UTC')
    else 'epoch'::timestamptz
  end
$$;

-- Budgets that apply to a request of this tenant, key and model.
create function private.applicable_budgets(p_tenant_id uuid, p_api_key_id uuid, p_model_alias text)
returns setof public.budgets
language sql
stable
set search_path = ''
as $$
  select b.*
  from public.budgets b
  where b.tenant_id = p_tenant_id
    and b.enabled
    and (b.scope = 'tenant'
      or (b.scope = 'api_key' and b.api_key_id = p_api_key_id)
      or (b.scope = 'model' and b.model_alias = p_model_alias))
$$;

-- A budget's new limit applies to its open windows, but never below what is
-- already spent or reserved there (that would break the CHECK).
create function private.sync_counter_limits()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  update public.usage_counters c
  set limit_amount = greatest(new.limit_amount, c.spent + c.reserved)
  where c.budget_id = new.id
    and c.window_start = private.budget_window_start(new.period, now());
  return new;
end
$$;
create trigger budgets_sync_counter_limits
  after update of limit_amount on public.budgets
  for each row execute function private.sync_counter_limits();

-- Counts one request against the caller's rate limits (fixed one-minute
-- windows). Returns null when allowed, else the refusal.
create function private.take_rate_limit(p_tenant_id uuid, p_api_key_id uuid, p_tokens bigint, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_window timestamptz := pg_catalog.date_trunc('minute', p_now);
  v_limit record;
  v_refusal jsonb;
  v_info jsonb := null;
begin
  for v_limit in
    select l.*, coalesce(w.requests, 0) as used_requests, coalesce(w.tokens, 0) as used_tokens
    from public.rate_limits l
    left join public.rate_limit_windows w on w.rate_limit_id = l.id and w.window_start = v_window
    where l.tenant_id = p_tenant_id and (l.api_key_id is null or l.api_key_id = p_api_key_id)
    order by l.id
  loop
    if (v_limit.requests_per_minute is not null and v_limit.used_requests + 1 > v_limit.requests_per_minute + v_limit.burst)
       or (v_limit.tokens_per_minute is not null and v_limit.used_tokens + p_tokens > v_limit.tokens_per_minute + v_limit.burst)
    then
      v_refusal := pg_catalog.jsonb_build_object(
        'status', 'rate_limited',
        'rate_limit_id', v_limit.id,
        'limit_requests', v_limit.requests_per_minute,
        'remaining_requests', case when v_limit.requests_per_minute is null then null
                                   else greatest(v_limit.requests_per_minute + v_limit.burst - v_limit.used_requests, 0) end,
        'limit_tokens', v_limit.tokens_per_minute,
        'remaining_tokens', case when v_limit.tokens_per_minute is null then null
                                 else greatest(v_limit.tokens_per_minute + v_limit.burst - v_limit.used_tokens, 0) end,
        'reset_seconds', ceil(extract(epoch from (v_window + interval '1 minute' - p_now)))::integer);
      return v_refusal;
    end if;
  end loop;

  insert into public.rate_limit_windows as w (rate_limit_id, window_start, requests, tokens)
  select l.id, v_window, 1, p_tokens
  from public.rate_limits l
  where l.tenant_id = p_tenant_id and (l.api_key_id is null or l.api_key_id = p_api_key_id)
  order by l.id
  on conflict (rate_limit_id, window_start) do update
    set requests = w.requests + 1, tokens = w.tokens + excluded.tokens;
  return null;
end
$$;

-- The rate-limit headers for a caller after a request was counted: the
-- tightest limit of each kind.
create function private.rate_limit_status(p_tenant_id uuid, p_api_key_id uuid, p_now timestamptz)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'limit_requests', min(l.requests_per_minute),
    'remaining_requests', min(l.requests_per_minute + l.burst - coalesce(w.requests, 0)),
    'limit_tokens', min(l.tokens_per_minute),
    'remaining_tokens', min(l.tokens_per_minute + l.burst - coalesce(w.tokens, 0)),
    'reset_seconds', ceil(extract(epoch from (pg_catalog.date_trunc('minute', p_now) + interval '1 minute' - p_now)))::integer)
  from public.rate_limits l
  left join public.rate_limit_windows w on w.rate_limit_id = l.id and w.window_start = pg_catalog.date_trunc('minute', p_now)
  where l.tenant_id = p_tenant_id and (l.api_key_id is null or l.api_key_id = p_api_key_id)
  having count(*) > 0
$$;

-- Reserve an estimate against every applicable budget, or refuse naming the
-- budget that would be exceeded. Also counts the request against its rate
-- limits. Idempotent: a request id seen before answers 'duplicate' and
-- changes nothing.
-- Answers {status: reserved|duplicate|refused|rate_limited, ...}.
create function public.reserve_budget(
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
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_status text;
  v_items jsonb := '[]'::jsonb;
  v_counter record;
  v_amount bigint;
  v_refusal jsonb;
begin
  if p_request_id is null or length(p_request_id) not between 1 and 128 then
    raise exception 'request id must be 1 to 128 characters' using errcode = 'invalid_parameter_value';
  end if;
  if p_usd_micros is null or p_usd_micros < 0 or p_tokens is null or p_tokens < 0 then
    raise exception 'reservation amounts must be zero or more' using errcode = 'invalid_parameter_value';
  end if;
  if p_ttl_seconds not between 1 and 86400 then
    raise exception 'reservation ttl must be 1 to 86400 seconds' using errcode = 'invalid_parameter_value';
  end if;

  select r.status into v_status from public.budget_reservations r where r.request_id = p_request_id;
  if found then
    return pg_catalog.jsonb_build_object('status', 'duplicate', 'reservation_status', v_status);
  end if;

  v_refusal := private.take_rate_limit(p_tenant_id, p_api_key_id, p_tokens, v_now);
  if v_refusal is not null then
    return v_refusal;
  end if;

  insert into public.usage_counters (budget_id, window_start, limit_amount)
  select b.id, private.budget_window_start(b.period, v_now), b.limit_amount
  from private.applicable_budgets(p_tenant_id, p_api_key_id, p_model_alias) b
  order by b.id
  on conflict (budget_id, window_start) do nothing;

  -- Lock the counters in budget-id order, check that every one has room, then reserve.
  for v_counter in
    select b.id as budget_id, b.scope, b.unit, b.period, b.over_limit, c.window_start, c.spent, c.reserved, c.limit_amount
    from private.applicable_budgets(p_tenant_id, p_api_key_id, p_model_alias) b
    join public.usage_counters c
      on c.budget_id = b.id and c.window_start = private.budget_window_start(b.period, v_now)
    order by b.id
    for update of c
  loop
    v_amount := case v_counter.unit when 'usd_micros' then p_usd_micros else p_tokens end;
    if v_counter.spent + v_counter.reserved + v_amount > v_counter.limit_amount then
      return pg_catalog.jsonb_build_object(
        'status', 'refused',
        'budget_id', v_counter.budget_id,
        'scope', v_counter.scope,
        'unit', v_counter.unit,
        'period', v_counter.period,
        'over_limit', v_counter.over_limit,
        'limit', v_counter.limit_amount,
        'requested', v_amount,
        'remaining', greatest(v_counter.limit_amount - v_counter.spent - v_counter.reserved, 0));
    end if;
    v_items := v_items || pg_catalog.jsonb_build_object(
      'budget_id', v_counter.budget_id, 'window_start', v_counter.window_start,
      'unit', v_counter.unit, 'amount', v_amount);
  end loop;

  update public.usage_counters c
  set reserved = c.reserved + (i.value ->> 'amount')::bigint, updated_at = v_now
  from pg_catalog.jsonb_array_elements(v_items) i
  where c.budget_id = (i.value ->> 'budget_id')::uuid
    and c.window_start = (i.value ->> 'window_start')::timestamptz;

  insert into public.budget_reservations (
    request_id, tenant_id, api_key_id, user_id, model_alias, estimate_usd_micros, estimate_tokens, items, expires_at
  ) values (
    p_request_id, p_tenant_id, p_api_key_id, p_user_id, p_model_alias, p_usd_micros, p_tokens, v_items,
    v_now + pg_catalog.make_interval(secs => p_ttl_seconds)
  );
  return pg_catalog.jsonb_build_object('status', 'reserved', 'items', v_items,
    'rate_limit', private.rate_limit_status(p_tenant_id, p_api_key_id, v_now));
end
$$;

-- Settle a reservation at the actual usage: moves up to the reserved amount
-- from reserved to spent, records anything above it as overflow, and writes
-- the usage record. A second settle (or a settle after release) answers
-- 'duplicate' and changes nothing; an unknown request id answers 'unknown'.
create function public.settle_budget(
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
language plpgsql
set search_path = ''
as $$
declare
  v_reservation public.budget_reservations;
  v_items jsonb := '[]'::jsonb;
  v_item jsonb;
  v_actual bigint;
  v_charged bigint;
  v_overflow_usd bigint := 0;
begin
  if p_prompt_tokens < 0 or p_completion_tokens < 0 or p_cost_usd_micros < 0 then
    raise exception 'usage must be zero or more' using errcode = 'invalid_parameter_value';
  end if;
  select * into v_reservation from public.budget_reservations r where r.request_id = p_request_id for update;
  if not found then
    return pg_catalog.jsonb_build_object('status', 'unknown');
  end if;
  if v_reservation.status <> 'reserved' then
    return pg_catalog.jsonb_build_object('status', 'duplicate', 'reservation_status', v_reservation.status);
  end if;

  for v_item in select value from pg_catalog.jsonb_array_elements(v_reservation.items) order by value ->> 'budget_id'
  loop
    v_actual := case v_item ->> 'unit' when 'usd_micros' then p_cost_usd_micros
                else p_prompt_tokens::bigint + p_completion_tokens end;
    v_charged := least(v_actual, (v_item ->> 'amount')::bigint);
    if v_item ->> 'unit' = 'usd_micros' then
      v_overflow_usd := greatest(v_overflow_usd, v_actual - v_charged);
    end if;
    update public.usage_counters c
    set reserved = c.reserved - (v_item ->> 'amount')::bigint,
        spent = c.spent + v_charged,
        overflow = c.overflow + (v_actual - v_charged),
        request_count = c.request_count + 1,
        prompt_tokens = c.prompt_tokens + p_prompt_tokens,
        completion_tokens = c.completion_tokens + p_completion_tokens,
        updated_at = now()
    where c.budget_id = (v_item ->> 'budget_id')::uuid
      and c.window_start = (v_item ->> 'window_start')::timestamptz;
    v_items := v_items || (v_item || pg_catalog.jsonb_build_object('charged', v_charged, 'overflow', v_actual - v_charged));
  end loop;

  insert into public.usage_records (
    request_id, tenant_id, api_key_id, user_id, provider, upstream_model, model_alias,
    prompt_tokens, completion_tokens, cost_usd_micros, overflow_usd_micros, cache_hit, status, latency_ms
  ) values (
    p_request_id, v_reservation.tenant_id, v_reservation.api_key_id, v_reservation.user_id, p_provider,
    p_upstream_model, v_reservation.model_alias, p_prompt_tokens, p_completion_tokens, p_cost_usd_micros,
    v_overflow_usd, false, p_status, p_latency_ms
  );
  update public.budget_reservations
  set status = 'settled', items = v_items, finished_at = now()
  where request_id = p_request_id;
  return pg_catalog.jsonb_build_object('status', 'settled', 'items', v_items, 'overflow_usd_micros', v_overflow_usd);
end
$$;

-- Release a reservation that will not be used (upstream failure, client gone).
-- Idempotent like settle.
create function public.release_budget(p_request_id text, p_reason text default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_reservation public.budget_reservations;
begin
  select * into v_reservation from public.budget_reservations r where r.request_id = p_request_id for update;
  if not found then
    return pg_catalog.jsonb_build_object('status', 'unknown');
  end if;
  if v_reservation.status <> 'reserved' then
    return pg_catalog.jsonb_build_object('status', 'duplicate', 'reservation_status', v_reservation.status);
  end if;
  update public.usage_counters c
  set reserved = c.reserved - (i.value ->> 'amount')::bigint, updated_at = now()
  from pg_catalog.jsonb_array_elements(v_reservation.items) i
  where c.budget_id = (i.value ->> 'budget_id')::uuid
    and c.window_start = (i.value ->> 'window_start')::timestamptz;
  update public.budget_reservations
  set status = 'released', release_reason = left(p_reason, 200), finished_at = now()
  where request_id = p_request_id;
  return pg_catalog.jsonb_build_object('status', 'released');
end
$$;

-- A request answered from the response cache: no reservation, zero cost, recorded;
-- null when the request id is already used.
create function public.record_cache_hit(
  p_request_id text, p_tenant_id uuid, p_api_key_id uuid, p_user_id uuid, p_model_alias text,
  p_prompt_tokens integer, p_completion_tokens integer, p_latency_ms integer default null
)
returns jsonb
language sql
set search_path = ''
as $$
  insert into public.usage_records (
    request_id, tenant_id, api_key_id, user_id, provider, upstream_model, model_alias,
    prompt_tokens, completion_tokens, cost_usd_micros, cache_hit, status, latency_ms
  )
  select p_request_id, p_tenant_id, p_api_key_id, p_user_id, 'cache', null, p_model_alias,
         p_prompt_tokens, p_completion_tokens, 0, true, 'succeeded', p_latency_ms
  -- A request id is used once: not by a reservation, not by another usage record (no row: the caller refuses).
  where not exists (select 1 from public.budget_reservations r where r.request_id = p_request_id)
  on conflict (request_id) do nothing
  returning pg_catalog.jsonb_build_object('status', 'recorded')
$$;

-- Lock every counter row the given reservations touch, in one global order,
-- before a batch works on them: two batches then never wait on each other in
-- a cycle.
create function private.lock_counters_of_reservations(p_request_ids text[])
returns void
language sql
set search_path = ''
as $$
  select 1 from public.usage_counters c
  where (c.budget_id, c.window_start) in (
    select (i.value ->> 'budget_id')::uuid, (i.value ->> 'window_start')::timestamptz
    from public.budget_reservations r, pg_catalog.jsonb_array_elements(r.items) i
    where r.request_id = any (p_request_ids)
  )
  order by c.budget_id, c.window_start
  for update of c
$$;

-- Batch forms: one transaction (one commit) for many requests, each handled
-- exactly as by the single form; answers are in request order.
-- reserve_budgets: [{request_id, tenant_id, api_key_id, model_alias, usd_micros, tokens, user_id, ttl_seconds}]
create function public.reserve_budgets(p_requests jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_answers jsonb := '[]'::jsonb;
  v_request jsonb;
begin
  -- Open and lock every counter the batch may touch, in global order.
  insert into public.usage_counters (budget_id, window_start, limit_amount)
  select distinct b.id, private.budget_window_start(b.period, v_now), b.limit_amount
  from pg_catalog.jsonb_array_elements(p_requests) r,
       private.applicable_budgets((r.value ->> 'tenant_id')::uuid, (r.value ->> 'api_key_id')::uuid, r.value ->> 'model_alias') b
  on conflict (budget_id, window_start) do nothing;
  perform 1 from public.usage_counters c
  where (c.budget_id, c.window_start) in (
    select b.id, private.budget_window_start(b.period, v_now)
    from pg_catalog.jsonb_array_elements(p_requests) r,
         private.applicable_budgets((r.value ->> 'tenant_id')::uuid, (r.value ->> 'api_key_id')::uuid, r.value ->> 'model_alias') b
  )
  order by c.budget_id, c.window_start
  for update of c;

  for v_request in select value from pg_catalog.jsonb_array_elements(p_requests)
  loop
    v_answers := v_answers || pg_catalog.jsonb_build_array(public.reserve_budget(
      v_request ->> 'request_id', (v_request ->> 'tenant_id')::uuid, (v_request ->> 'api_key_id')::uuid,
      v_request ->> 'model_alias', (v_request ->> 'usd_micros')::bigint, (v_request ->> 'tokens')::bigint,
      (v_request ->> 'user_id')::uuid, coalesce((v_request ->> 'ttl_seconds')::integer, 600)));
  end loop;
  return v_answers;
end
$$;

-- settle_budgets: [{request_id, prompt_tokens, completion_tokens, cost_usd_micros, provider, upstream_model, latency_ms, status}]
create function public.settle_budgets(p_settlements jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_answers jsonb := '[]'::jsonb;
  v_settlement jsonb;
begin
  perform private.lock_counters_of_reservations(
    array(select value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_settlements)));
  for v_settlement in select value from pg_catalog.jsonb_array_elements(p_settlements)
  loop
    v_answers := v_answers || pg_catalog.jsonb_build_array(public.settle_budget(
      v_settlement ->> 'request_id', (v_settlement ->> 'prompt_tokens')::integer,
      (v_settlement ->> 'completion_tokens')::integer, (v_settlement ->> 'cost_usd_micros')::bigint,
      v_settlement ->> 'provider', v_settlement ->> 'upstream_model', (v_settlement ->> 'latency_ms')::integer,
      coalesce(v_settlement ->> 'status', 'succeeded')));
  end loop;
  return v_answers;
end
$$;

-- release_budgets: [{request_id, reason}]
create function public.release_budgets(p_releases jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_answers jsonb := '[]'::jsonb;
  v_release jsonb;
begin
  perform private.lock_counters_of_reservations(
    array(select value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_releases)));
  for v_release in select value from pg_catalog.jsonb_array_elements(p_releases)
  loop
    v_answers := v_answers || pg_catalog.jsonb_build_array(
      public.release_budget(v_release ->> 'request_id', v_release ->> 'reason'));
  end loop;
  return v_answers;
end
$$;

-- The reaper: releases reservations whose owner never settled them (an
-- isolate that died mid-request). Batched; returns how many it released.
create function public.reap_expired_reservations(p_limit integer default 1000)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_ids text[];
begin
  select array_agg(request_id) into v_ids
  from (
    select r.request_id from public.budget_reservations r
    where r.status = 'reserved' and r.expires_at < now()
    order by r.expires_at
    limit p_limit
    for update skip locked
  ) expired;
  if v_ids is null then
    return 0;
  end if;
  perform public.release_budgets(
    (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('request_id', id, 'reason', 'expired')) from pg_catalog.unnest(v_ids) id));
  return pg_catalog.cardinality(v_ids);
end
$$;

-- Conservation check, called by tests, readiness and smoke: every row that
-- breaks it (empty when it holds).
--  over_limit:          spent + reserved > limit (the CHECK makes this impossible; kept as a belt)
--  reserved_mismatch:   a counter's reserved differs from its open reservations
--  spent_mismatch:      a counter's spent differs from what its settled reservations charged
--  overflow_mismatch:   likewise for overflow
create function public.usage_invariant_violations()
returns table (budget_id uuid, window_start timestamptz, kind text, expected bigint, actual bigint)
language sql
stable
set search_path = ''
as $$
  with items as (
    select (i.value ->> 'budget_id')::uuid as budget_id,
           (i.value ->> 'window_start')::timestamptz as window_start,
           r.status,
           (i.value ->> 'amount')::bigint as amount,
           coalesce((i.value ->> 'charged')::bigint, 0) as charged,
           coalesce((i.value ->> 'overflow')::bigint, 0) as overflow
    from public.budget_reservations r, pg_catalog.jsonb_array_elements(r.items) i
  ),
  sums as (
    select c.budget_id, c.window_start, c.limit_amount, c.spent, c.reserved, c.overflow,
           coalesce(sum(it.amount) filter (where it.status = 'reserved'), 0)::bigint as open_reserved,
           coalesce(sum(it.charged) filter (where it.status = 'settled'), 0)::bigint as settled_charged,
           coalesce(sum(it.overflow) filter (where it.status = 'settled'), 0)::bigint as settled_overflow
    from public.usage_counters c
    left join items it on it.budget_id = c.budget_id and it.window_start = c.window_start
    group by c.budget_id, c.window_start, c.limit_amount, c.spent, c.reserved, c.overflow
  )
  select budget_id, window_start, 'over_limit', limit_amount, spent + reserved from sums where spent + reserved > limit_amount
  union all
  select budget_id, window_start, 'reserved_mismatch', open_reserved, reserved from sums where reserved <> open_reserved
  union all
  select budget_id, window_start, 'spent_mismatch', settled_charged, spent from sums where spent <> settled_charged
  union all
  select budget_id, window_start, 'overflow_mismatch', settled_overflow, overflow from sums where overflow <> settled_overflow
$$;

do $$
declare
  v_function text;
begin
  foreach v_function in array array[
    'public.reserve_budget(text, uuid, uuid, text, bigint, bigint, uuid, integer)',
    'public.settle_budget(text, integer, integer, bigint, text, text, integer, text)',
    'public.release_budget(text, text)',
    'public.record_cache_hit(text, uuid, uuid, uuid, text, integer, integer, integer)',
    'public.reserve_budgets(jsonb)',
    'public.settle_budgets(jsonb)',
    'public.release_budgets(jsonb)',
    'public.reap_expired_reservations(integer)',
    'public.usage_invariant_violations()'
  ]
  loop
    execute format('revoke execute on function %s from public, anon, authenticated', v_function);
    execute format('grant execute on function %s to service_role', v_function);
  end loop;
end
$$;
