-- The budget saga, fast path (issue 9), over reserve_budgets as migration
-- 20261123005000 left it (bucket caps and routing context). Profiling the router showed every
-- request waiting on two durable commits that held the tenant's counter row:
-- reserve_budgets spent ~0.3 ms per request in per-row plpgsql queries, and
-- settle_budgets ~0.4 ms. Two changes, both inside the SQL functions:
--
-- 1. reserve_budgets asks, in one set-based statement, whether every request
--    of the batch fits (running sums per budget and rate limit, in request
--    order), and in the same statement, only if so (the common case), writes
--    everything. The answers are the same as the in-order
--    function's: request i is admitted in order exactly when the running sums
--    up to i fit, so when all of them fit nobody is refused. Otherwise (a
--    refusal, a duplicate, invalid input) the batch goes to the in-order
--    function unchanged (private.reserve_budgets_in_order).
-- 2. The transaction that reserves commits asynchronously. Its effects are
--    visible to every other transaction at once, so concurrent reservations
--    still see each other exactly; only the flush to disk is deferred. A
--    reservation matters only through the settle that follows it, and that
--    settle commits synchronously: PostgreSQL flushes the WAL in order, so a
--    durable settle implies a durable reservation. A crash can lose only
--    reservations whose request was never answered (nothing was charged, and
--    nothing was accepted). The setting is made with set_config(..., true)
--    inside the function: it outlives the function's own SET clause (which
--    restores only search_path) and ends with the transaction.
-- settle_budgets becomes one statement of data-modifying CTEs: each counter,
-- usage record and reservation written once, no per-request queries.
--
-- Every function of the saga runs with enable_seqscan off. They find rows by
-- key only (a request id, a budget, a tenant), and PL/pgSQL caches a generic
-- plan per statement and connection: planned while budget_reservations was
-- small, a lookup kept scanning the whole table as it grew (the benchmark saw
-- two full scans per request until the next ANALYZE), so its cost grew with
-- the table. With sequential scans off, and reservations looked up one key at
-- a time (= any (array) for the locks, a lateral lookup per input row), the
-- plan stays an index probe per request whatever the table's size when it was
-- made.

alter function public.reserve_budgets(jsonb) rename to reserve_budgets_in_order;
alter function public.reserve_budgets_in_order(jsonb) set schema private;
alter function private.reserve_budgets_in_order(jsonb) set enable_seqscan = off;
comment on function private.reserve_budgets_in_order(jsonb) is
  'The budget reservation batch, request by request in order (refusals, duplicates, validation); public.reserve_budgets takes this path when not every request fits.';

create function public.reserve_budgets(p_requests jsonb)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
declare
  v_now timestamptz := pg_catalog.now();
  v_minute timestamptz := pg_catalog.date_trunc('minute', pg_catalog.now());
  v_reset integer := pg_catalog.ceil(extract(epoch from (
    pg_catalog.date_trunc('minute', pg_catalog.now()) + interval '1 minute' - pg_catalog.now())))::integer;
  v_tenants uuid[];
  v_answers jsonb;
begin
  perform pg_catalog.set_config('synchronous_commit', 'off', true);
  if pg_catalog.jsonb_typeof(p_requests) <> 'array' or pg_catalog.jsonb_array_length(p_requests) = 0 then
    return private.reserve_budgets_in_order(p_requests);
  end if;

  v_tenants := array(select distinct (r.value ->> 'tenant_id')::uuid from pg_catalog.jsonb_array_elements(p_requests) r);
  -- Open the windows' counters, then lock counters and rate limits in the in-order function's order.
  insert into public.usage_counters (budget_id, window_start, limit_amount)
  select b.id, private.budget_window_start(b.period, v_now), b.limit_amount
  from public.budgets b
  where b.enabled and b.tenant_id = any (v_tenants)
  order by b.id
  on conflict (budget_id, window_start) do nothing;
  perform 1
  from public.usage_counters c
  join public.budgets b on b.id = c.budget_id and c.window_start = private.budget_window_start(b.period, v_now)
  where b.enabled and b.tenant_id = any (v_tenants)
  order by c.budget_id, c.window_start
  for update of c;
  perform 1 from public.rate_limits l where l.tenant_id = any (v_tenants) order by l.id for update of l;

  -- One statement checks that every request fits and, only if so, writes them all: the
  -- writes are filtered by the check, and no answers come back when it fails.
  with requests as (
    select r.position, r.value ->> 'request_id' as request_id, (r.value ->> 'tenant_id')::uuid as tenant_id,
           (r.value ->> 'api_key_id')::uuid as api_key_id, (r.value ->> 'user_id')::uuid as user_id,
           r.value ->> 'model_alias' as model_alias, (r.value ->> 'usd_micros')::bigint as usd_micros,
           (r.value ->> 'tokens')::bigint as tokens, coalesce((r.value ->> 'ttl_seconds')::integer, 600) as ttl_seconds,
           (r.value ->> 'policy_id')::uuid as policy_id, r.value ->> 'bucket' as bucket, r.value ->> 'domain' as domain
    from pg_catalog.jsonb_array_elements(p_requests) with ordinality as r(value, position)
  ),
  applicable as (
    select q.position, b.id as budget_id, private.budget_window_start(b.period, v_now) as window_start, b.unit,
           case b.unit when 'usd_micros' then q.usd_micros else q.tokens end as amount,
           sum(case b.unit when 'usd_micros' then q.usd_micros else q.tokens end)
             over (partition by b.id order by q.position) as running
    from requests q
    join public.budgets b on b.enabled and b.tenant_id = q.tenant_id
      and (b.scope = 'tenant' or (b.scope = 'api_key' and b.api_key_id = q.api_key_id)
        or (b.scope = 'model' and b.model_alias = q.model_alias)
        or (b.scope = 'bucket' and b.policy_id = q.policy_id and b.bucket = q.bucket))
  ),
  limits as (
    select q.position, l.id as rate_limit_id, l.requests_per_minute, l.tokens_per_minute, l.burst, q.tokens,
           coalesce(w.requests, 0) + count(*) over (partition by l.id order by q.position) as requests_after,
           coalesce(w.tokens, 0) + sum(q.tokens) over (partition by l.id order by q.position) as tokens_after
    from requests q
    join public.rate_limits l on l.tenant_id = q.tenant_id and (l.api_key_id is null or l.api_key_id = q.api_key_id)
    left join public.rate_limit_windows w on w.rate_limit_id = l.id and w.window_start = v_minute
  ),
  fits as (
    select coalesce(
      (select count(*) = count(distinct q.request_id)
          and bool_and(coalesce(length(q.request_id), 0) between 1 and 128 and coalesce(q.usd_micros, -1) >= 0
            and coalesce(q.tokens, -1) >= 0 and q.ttl_seconds between 1 and 86400 and q.tenant_id is not null)
       from requests q)
      and not exists (
        select 1 from public.budget_reservations r where r.request_id = any (array(select q.request_id from requests q)))
      -- A leased or cached request leaves only a usage record: its id is used as well.
      and not exists (
        select 1 from public.usage_records u where u.request_id = any (array(select q.request_id from requests q)))
      and not exists (
        select 1 from applicable a
        join public.usage_counters c on c.budget_id = a.budget_id and c.window_start = a.window_start
        where a.running > c.limit_amount - c.spent - c.reserved)
      and not exists (
        select 1 from limits m
        where (m.requests_per_minute is not null and m.requests_after > m.requests_per_minute + m.burst)
           or (m.tokens_per_minute is not null and m.tokens_after > m.tokens_per_minute + m.burst)),
      false) as ok
  ),
  items as (
    select a.position, pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
             'budget_id', a.budget_id, 'window_start', a.window_start, 'unit', a.unit, 'amount', a.amount)
           order by a.budget_id) as items
    from applicable a
    group by a.position
  ),
  statuses as (
    select m.position, pg_catalog.jsonb_build_object(
             'limit_requests', min(m.requests_per_minute),
             'remaining_requests', min(m.requests_per_minute + m.burst - m.requests_after),
             'limit_tokens', min(m.tokens_per_minute::bigint),
             'remaining_tokens', min(m.tokens_per_minute::bigint + m.burst - m.tokens_after),
             'reset_seconds', v_reset) as status
    from limits m
    group by m.position
  ),
  counted as (
    update public.usage_counters c
    set reserved = c.reserved + s.amount, updated_at = v_now
    from (select a.budget_id, a.window_start, sum(a.amount) as amount from applicable a group by a.budget_id, a.window_start) s
    where c.budget_id = s.budget_id and c.window_start = s.window_start and (select f.ok from fits f)
    returning 1
  ),
  windows as (
    insert into public.rate_limit_windows as w (rate_limit_id, window_start, requests, tokens)
    select m.rate_limit_id, v_minute, count(*), sum(m.tokens) from limits m
    where (select f.ok from fits f)
    group by m.rate_limit_id
    on conflict (rate_limit_id, window_start) do update
      set requests = w.requests + excluded.requests, tokens = w.tokens + excluded.tokens
    returning 1
  ),
  reserved as (
    insert into public.budget_reservations (
      request_id, tenant_id, api_key_id, user_id, model_alias, estimate_usd_micros, estimate_tokens, items, expires_at,
      policy_id, bucket, domain)
    select q.request_id, q.tenant_id, q.api_key_id, q.user_id, q.model_alias, q.usd_micros, q.tokens,
           coalesce(i.items, '[]'::jsonb), v_now + pg_catalog.make_interval(secs => q.ttl_seconds),
           q.policy_id, q.bucket, q.domain
    from requests q
    left join items i on i.position = q.position
    where (select f.ok from fits f)
    returning 1
  )
  select case when (select f.ok from fits f) then pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'status', 'reserved', 'items', coalesce(i.items, '[]'::jsonb), 'rate_limit', s.status) order by q.position) end
  into v_answers
  from requests q
  left join items i on i.position = q.position
  left join statuses s on s.position = q.position;

  -- Not every request fits (a refusal, a duplicate, invalid input): request by request, in order.
  if v_answers is null then
    return private.reserve_budgets_in_order(p_requests);
  end if;
  return v_answers;
end
$$;
comment on function public.reserve_budgets(jsonb) is
  'Reserves budget and rate for a batch of requests, answers in request order; set-based when every request fits, else request by request. Commits of the calling transaction are asynchronous (the settle that follows is durable).';
revoke execute on function public.reserve_budgets(jsonb) from public, anon, authenticated;
grant execute on function public.reserve_budgets(jsonb) to service_role;

-- Settle's and release's answer for one input row: unknown without a
-- reservation; a duplicate when the reservation is already finished, or when
-- an earlier row of the same batch finishes it; else what the batch did.
create function private.saga_answer(
  p_reservation_status text,
  p_occurrence bigint,
  p_finishes_as text,
  p_answer jsonb
)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select case
    when p_reservation_status is null then '{"status": "unknown"}'::jsonb
    when p_occurrence > 1 and p_reservation_status = 'reserved'
      then pg_catalog.jsonb_build_object('status', 'duplicate', 'reservation_status', p_finishes_as)
    when p_reservation_status <> 'reserved'
      then pg_catalog.jsonb_build_object('status', 'duplicate', 'reservation_status', p_reservation_status)
    else p_answer
  end
$$;
comment on function private.saga_answer(text, bigint, text, jsonb) is
  'The answer settle_budgets and release_budgets give one input row: unknown, duplicate (naming the status) or the given answer.';
revoke execute on function private.saga_answer(text, bigint, text, jsonb) from public, anon, authenticated;
grant execute on function private.saga_answer(text, bigint, text, jsonb) to service_role;

-- Settle's and release's one write to the counters, taken last and in the
-- global lock order: [{budget_id, window_start, released, charged?, overflow?,
-- requests?, prompt_tokens?, completion_tokens?}], missing amounts are zero.
create function private.apply_counter_deltas(p_deltas jsonb)
returns void
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
begin
  perform 1
  from public.usage_counters c
  join pg_catalog.jsonb_to_recordset(p_deltas) as d(budget_id uuid, window_start timestamptz)
    on c.budget_id = d.budget_id and c.window_start = d.window_start
  order by c.budget_id, c.window_start
  for update of c;

  update public.usage_counters c
  set reserved = c.reserved - d.released,
      spent = c.spent + coalesce(d.charged, 0),
      overflow = c.overflow + coalesce(d.overflow, 0),
      request_count = c.request_count + coalesce(d.requests, 0),
      prompt_tokens = c.prompt_tokens + coalesce(d.prompt_tokens, 0),
      completion_tokens = c.completion_tokens + coalesce(d.completion_tokens, 0),
      updated_at = pg_catalog.now()
  from pg_catalog.jsonb_to_recordset(p_deltas) as d(
    budget_id uuid, window_start timestamptz, released bigint, charged bigint, overflow bigint, requests bigint,
    prompt_tokens bigint, completion_tokens bigint)
  where c.budget_id = d.budget_id and c.window_start = d.window_start;
end
$$;
comment on function private.apply_counter_deltas(jsonb) is
  'Applies settle''s or release''s per-counter sums in one locked update (global lock order).';
revoke execute on function private.apply_counter_deltas(jsonb) from public, anon, authenticated;
grant execute on function private.apply_counter_deltas(jsonb) to service_role;

-- Settle and release lock the reservations first and the counters last (the
-- reaper already took reservations first): the tenant's counter row is then
-- held only for its own update and the commit, not for the usage-record
-- inserts, so the next reserve batch waits less. Within a batch the first
-- settlement of a request settles it and a repeat is a duplicate, as in order.
create or replace function public.settle_budgets(p_settlements jsonb)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
declare
  v_answers jsonb;
  v_deltas jsonb;
begin
  if pg_catalog.jsonb_typeof(p_settlements) <> 'array' then
    raise exception 'settle_budgets takes a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  if exists (
    select 1 from pg_catalog.jsonb_array_elements(p_settlements) s
    where coalesce((s.value ->> 'prompt_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'completion_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'cost_usd_micros')::bigint, -1) < 0
       or coalesce(s.value ->> 'status', 'succeeded') not in ('succeeded', 'failed', 'cancelled')
  ) then
    raise exception 'usage must be zero or more, status succeeded, failed or cancelled' using errcode = 'invalid_parameter_value';
  end if;

  perform 1 from public.budget_reservations r
  where r.request_id = any (array(select s.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_settlements) s))
  order by r.request_id
  for update;

  with settlements as (
    select s.position, s.value ->> 'request_id' as request_id, (s.value ->> 'prompt_tokens')::integer as prompt_tokens,
           (s.value ->> 'completion_tokens')::integer as completion_tokens, (s.value ->> 'cost_usd_micros')::bigint as cost,
           s.value ->> 'provider' as provider, s.value ->> 'upstream_model' as upstream_model,
           (s.value ->> 'latency_ms')::integer as latency_ms, coalesce(s.value ->> 'status', 'succeeded') as status,
           pg_catalog.row_number() over (partition by s.value ->> 'request_id' order by s.position) as occurrence
    from pg_catalog.jsonb_array_elements(p_settlements) with ordinality as s(value, position)
  ),
  matched as (
    select s.*, r.status as reservation_status, r.tenant_id, r.api_key_id, r.user_id, r.model_alias, r.items
    from settlements s
    left join lateral (
      select r.* from public.budget_reservations r where r.request_id = s.request_id limit 1
    ) r on true
  ),
  settling as (
    select m.* from matched m where m.occurrence = 1 and m.reservation_status = 'reserved'
  ),
  charged as (
    select c.*, least(c.actual, c.amount) as charged
    from (
      select g.request_id, g.prompt_tokens, g.completion_tokens, i.value as item, i.ordinality,
             (i.value ->> 'budget_id')::uuid as budget_id, (i.value ->> 'window_start')::timestamptz as window_start,
             (i.value ->> 'amount')::bigint as amount,
             case i.value ->> 'unit' when 'usd_micros' then g.cost
               else g.prompt_tokens::bigint + g.completion_tokens end as actual
      from settling g, pg_catalog.jsonb_array_elements(g.items) with ordinality as i(value, ordinality)
    ) c
  ),
  per_request as (
    select g.request_id,
           coalesce(pg_catalog.jsonb_agg(c.item || pg_catalog.jsonb_build_object('charged', c.charged, 'overflow', c.actual - c.charged)
             order by c.ordinality) filter (where c.item is not null), '[]'::jsonb) as items,
           coalesce(max(c.actual - c.charged) filter (where c.item ->> 'unit' = 'usd_micros'), 0) as overflow_usd
    from settling g
    left join charged c on c.request_id = g.request_id
    group by g.request_id
  ),
  records as (
    insert into public.usage_records (
      request_id, tenant_id, api_key_id, user_id, provider, upstream_model, model_alias, prompt_tokens,
      completion_tokens, cost_usd_micros, overflow_usd_micros, cache_hit, status, latency_ms)
    select g.request_id, g.tenant_id, g.api_key_id, g.user_id, g.provider, g.upstream_model, g.model_alias,
           g.prompt_tokens, g.completion_tokens, g.cost, p.overflow_usd, false, g.status, g.latency_ms
    from settling g
    join per_request p on p.request_id = g.request_id
    -- Reserve refuses an id that has a usage record, so this cannot meet one; should it, the
    -- reservation is still charged and settled, and usage_invariant_violations() reports the
    -- settled reservation without its record, instead of one batch failing every request in it.
    on conflict (request_id) do nothing
    returning 1
  ),
  finished as (
    update public.budget_reservations r
    set status = 'settled', items = p.items, finished_at = pg_catalog.now()
    from per_request p
    where r.request_id = p.request_id
    returning 1
  )
  select
    (select coalesce(pg_catalog.jsonb_agg(private.saga_answer(m.reservation_status, m.occurrence, 'settled',
              pg_catalog.jsonb_build_object('status', 'settled', 'items', p.items, 'overflow_usd_micros', p.overflow_usd))
            order by m.position), '[]'::jsonb)
     from matched m
     left join per_request p on p.request_id = m.request_id and m.occurrence = 1),
    (select coalesce(pg_catalog.jsonb_agg(d), '[]'::jsonb)
     from (
       select c.budget_id, c.window_start, sum(c.amount) as released, sum(c.charged) as charged,
              sum(c.actual - c.charged) as overflow, count(*) as requests, sum(c.prompt_tokens) as prompt_tokens,
              sum(c.completion_tokens) as completion_tokens
       from charged c
       group by c.budget_id, c.window_start
     ) d)
  into v_answers, v_deltas;

  perform private.apply_counter_deltas(v_deltas);
  return v_answers;
end
$$;

-- Release, set-based, in the same lock order as settle.
create or replace function public.release_budgets(p_releases jsonb)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
declare
  v_answers jsonb;
  v_deltas jsonb;
begin
  if pg_catalog.jsonb_typeof(p_releases) <> 'array' then
    raise exception 'release_budgets takes a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  perform 1 from public.budget_reservations r
  where r.request_id = any (array(select x.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_releases) x))
  order by r.request_id
  for update;

  with releases as (
    select x.position, x.value ->> 'request_id' as request_id, left(x.value ->> 'reason', 200) as reason,
           pg_catalog.row_number() over (partition by x.value ->> 'request_id' order by x.position) as occurrence
    from pg_catalog.jsonb_array_elements(p_releases) with ordinality as x(value, position)
  ),
  matched as (
    select x.*, r.status as reservation_status, r.items
    from releases x
    left join lateral (
      select r.* from public.budget_reservations r where r.request_id = x.request_id limit 1
    ) r on true
  ),
  releasing as (
    select m.* from matched m where m.occurrence = 1 and m.reservation_status = 'reserved'
  ),
  finished as (
    update public.budget_reservations r
    set status = 'released', release_reason = x.reason, finished_at = pg_catalog.now()
    from releasing x
    where r.request_id = x.request_id
    returning 1
  )
  select
    (select coalesce(pg_catalog.jsonb_agg(private.saga_answer(m.reservation_status, m.occurrence, 'released',
              '{"status": "released"}'::jsonb) order by m.position), '[]'::jsonb)
     from matched m),
    (select coalesce(pg_catalog.jsonb_agg(d), '[]'::jsonb)
     from (
       select (i.value ->> 'budget_id')::uuid as budget_id, (i.value ->> 'window_start')::timestamptz as window_start,
              sum((i.value ->> 'amount')::bigint) as released
       from releasing x, pg_catalog.jsonb_array_elements(x.items) i
       group by 1, 2
     ) d)
  into v_answers, v_deltas;

  perform private.apply_counter_deltas(v_deltas);
  return v_answers;
end
$$;

-- Settle and release no longer lock counters through their reservations.
drop function private.lock_counters_of_reservations(text[]);
