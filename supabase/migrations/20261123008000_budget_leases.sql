-- Budget leases (issue 9). The benchmark showed the router spending most of
-- its time and database CPU on the per-request saga: a reservation row written
-- and rewritten for every request, and every request waiting on a reserve
-- flush before its upstream call. A lease reserves a slice of a tenant's
-- budgets and of the minute's rate limits for many requests at once; the
-- isolate that holds it admits requests against the slice in memory, and each
-- request's usage is charged to the lease when it settles.
--
-- Conservation is unchanged because a lease IS a reservation: a
-- budget_reservations row (request_id 'lease:<uuid>') whose items hold what is
-- left of the slice. Acquiring it adds to the counters' reserved, exactly like
-- reserving one request; settling a request under it moves the charge from
-- reserved to spent (the item's amount goes down, its charged up); closing it
-- releases what is left. The CHECK spent + reserved <= limit_amount and the
-- invariant hold at every step, whatever the isolate does; a crashed isolate's
-- lease expires and the reaper releases its remainder like any reservation.
--
-- Leases are granted only far from a limit: each budget and rate limit must
-- keep at least the slice's own size free after the grant. Near a limit the
-- isolate gets 'declined' and uses the exact per-request path, so refusals stay
-- exact except while another isolate's lease is open (bounded by one slice).

-- What a lease holds besides its reservation: who holds it and what it took
-- from the minute's rate limits, so closing it can give the unused part back.
create table public.budget_leases (
  reservation_id text primary key references public.budget_reservations (request_id) on delete cascade,
  holder text not null check (length(holder) between 1 and 200),
  requests_granted integer not null check (requests_granted >= 1),
  requests_used integer not null default 0 check (requests_used >= 0),
  -- [{rate_limit_id, window_start, requests, tokens}]: what the grant added to each rate window.
  rate_items jsonb not null default '[]'::jsonb,
  created_at timestamptz not null default now()
);
comment on table public.budget_leases is
  'Budget leases: a reservation (budget_reservations, request_id lease:<uuid>) an isolate admits many requests against; holder and rate-window grants.';
alter table public.budget_leases enable row level security;
revoke all on table public.budget_leases from anon, authenticated;
grant all on table public.budget_leases to service_role;

-- A request admitted under a lease has no reservation of its own: its usage
-- record names the lease and carries the routing tag feedback needs.
alter table public.usage_records
  add column lease_id text,
  add column domain text;
comment on column public.usage_records.lease_id is 'The budget lease this request was charged to; null when it had its own reservation.';
comment on column public.usage_records.domain is 'The request''s x-switchyard-domain tag when it ran under a lease (else on its reservation).';
-- squawk-ignore require-concurrent-index-creation
create index usage_records_lease_id_idx on public.usage_records (lease_id) where lease_id is not null;

-- The counter rows of the tenants' enabled budgets for the current window,
-- created if missing, so they can be locked (reserve_budgets does the same).
create function private.open_budget_windows(p_tenants uuid[])
returns void
language sql
set search_path = ''
as $$
  insert into public.usage_counters (budget_id, window_start, limit_amount)
  select b.id, private.budget_window_start(b.period, pg_catalog.now()), b.limit_amount
  from public.budgets b
  where b.enabled and b.tenant_id = any (p_tenants)
  order by b.id
  on conflict (budget_id, window_start) do nothing
$$;
comment on function private.open_budget_windows(uuid[]) is
  'Creates the missing usage_counters rows of the tenants'' enabled budgets for the current window.';
revoke execute on function private.open_budget_windows(uuid[]) from public, anon, authenticated;
grant execute on function private.open_budget_windows(uuid[]) to service_role;

-- Grants leases, one per input in order: [{lease_id, holder, tenant_id,
-- api_key_id, model_alias, policy_id, bucket, usd_micros, tokens, requests,
-- ttl_seconds, admit_seconds}]. Answers {status: 'granted', items,
-- admit_seconds, rate_limit} or {status: 'declined', reason}. admit_seconds is
-- how long the holder may admit requests: at most the asked admit_seconds, and
-- never past the end of the current minute (when a rate limit applies) or of a
-- budget's window, so a lease never lends one window's room to the next.
create function public.acquire_budget_leases(p_leases jsonb)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
declare
  v_now timestamptz := pg_catalog.now();
  v_minute timestamptz := pg_catalog.date_trunc('minute', pg_catalog.now());
  v_lease record;
  v_answers jsonb := '[]'::jsonb;
  v_items jsonb;
  v_rate_items jsonb;
  v_status jsonb;
  v_short text;
  v_admit_until timestamptz;
begin
  -- Durable, unlike reserve_budgets on its own: the router serves requests on a granted lease
  -- before anything settles, and a lease lost in a crash would take their usage records with it.
  if pg_catalog.jsonb_typeof(p_leases) <> 'array' then
    raise exception 'acquire_budget_leases takes a JSON array' using errcode = 'invalid_parameter_value';
  end if;

  for v_lease in
    select x.value ->> 'lease_id' as lease_id, x.value ->> 'holder' as holder, (x.value ->> 'tenant_id')::uuid as tenant_id,
           (x.value ->> 'api_key_id')::uuid as api_key_id, x.value ->> 'model_alias' as model_alias,
           (x.value ->> 'policy_id')::uuid as policy_id, x.value ->> 'bucket' as bucket,
           (x.value ->> 'usd_micros')::bigint as usd_micros, (x.value ->> 'tokens')::bigint as tokens,
           (x.value ->> 'requests')::integer as requests, (x.value ->> 'ttl_seconds')::integer as ttl_seconds,
           (x.value ->> 'admit_seconds')::numeric as admit_seconds
    from pg_catalog.jsonb_array_elements(p_leases) with ordinality as x(value, position)
    order by x.position
  loop
    if v_lease.lease_id is null or v_lease.lease_id !~ '^lease:[A-Za-z0-9-]{1,100}$' or v_lease.tenant_id is null
       or coalesce(length(v_lease.holder), 0) not between 1 and 200 or coalesce(v_lease.usd_micros, -1) < 0
       or coalesce(v_lease.tokens, -1) < 0 or coalesce(v_lease.requests, 0) < 1
       or coalesce(v_lease.ttl_seconds, 0) not between 1 and 86400
       or coalesce(v_lease.admit_seconds, 0) <= 0 or v_lease.admit_seconds > v_lease.ttl_seconds then
      raise exception 'a lease needs lease_id lease:<id>, holder, tenant_id, usd_micros and tokens >= 0, requests >= 1, ttl_seconds 1..86400 and 0 < admit_seconds <= ttl_seconds'
        using errcode = 'invalid_parameter_value';
    end if;

    -- Open the windows' counters, then lock counters and rate limits in the saga's global order.
    perform private.open_budget_windows(array[v_lease.tenant_id]);
    perform 1
    from public.usage_counters c
    join public.budgets b on b.id = c.budget_id and c.window_start = private.budget_window_start(b.period, v_now)
    where b.enabled and b.tenant_id = v_lease.tenant_id
    order by c.budget_id, c.window_start
    for update of c;
    perform 1 from public.rate_limits l where l.tenant_id = v_lease.tenant_id order by l.id for update of l;

    -- Each applicable budget must keep at least the slice free after the grant.
    with applicable as (
      select b.id as budget_id, b.period, c.window_start, b.unit,
             case b.unit when 'usd_micros' then v_lease.usd_micros else v_lease.tokens end as amount,
             c.limit_amount - c.spent - c.reserved as free
      from public.budgets b
      join public.usage_counters c on c.budget_id = b.id and c.window_start = private.budget_window_start(b.period, v_now)
      where b.enabled and b.tenant_id = v_lease.tenant_id
        and (b.scope = 'tenant' or (b.scope = 'api_key' and b.api_key_id = v_lease.api_key_id)
          or (b.scope = 'model' and b.model_alias = v_lease.model_alias)
          or (b.scope = 'bucket' and b.policy_id = v_lease.policy_id and b.bucket = v_lease.bucket))
    )
    select
      (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'budget_id', a.budget_id, 'window_start', a.window_start, 'unit', a.unit, 'amount', a.amount,
                'charged', 0, 'overflow', 0) order by a.budget_id) from applicable a),
      (select 'budget ' || a.budget_id from applicable a where a.free < 2 * a.amount order by a.budget_id limit 1),
      (select min(case a.period when 'day' then a.window_start + interval '1 day'
                                when 'month' then a.window_start + interval '1 month' end) from applicable a)
    into v_items, v_short, v_admit_until;

    -- Each rate limit must keep at least the slice's requests and tokens free in this minute.
    if v_short is null then
      with limits as (
        select l.id as rate_limit_id, l.requests_per_minute, l.tokens_per_minute, l.burst,
               coalesce(w.requests, 0) + v_lease.requests as requests_after,
               coalesce(w.tokens, 0) + v_lease.tokens as tokens_after
        from public.rate_limits l
        left join public.rate_limit_windows w on w.rate_limit_id = l.id and w.window_start = v_minute
        where l.tenant_id = v_lease.tenant_id and (l.api_key_id is null or l.api_key_id = v_lease.api_key_id)
      )
      select
        (select 'rate limit ' || m.rate_limit_id from limits m
         where (m.requests_per_minute is not null and m.requests_after + v_lease.requests > m.requests_per_minute + m.burst)
            or (m.tokens_per_minute is not null and m.tokens_after + v_lease.tokens > m.tokens_per_minute + m.burst)
         order by m.rate_limit_id limit 1),
        (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                  'rate_limit_id', m.rate_limit_id, 'window_start', v_minute, 'requests', v_lease.requests,
                  'tokens', v_lease.tokens) order by m.rate_limit_id) from limits m),
        (select pg_catalog.jsonb_build_object(
                  'limit_requests', min(m.requests_per_minute),
                  'remaining_requests', min(m.requests_per_minute + m.burst - m.requests_after),
                  'limit_tokens', min(m.tokens_per_minute::bigint),
                  'remaining_tokens', min(m.tokens_per_minute::bigint + m.burst - m.tokens_after),
                  'reset_seconds', pg_catalog.ceil(extract(epoch from (v_minute + interval '1 minute' - v_now)))::integer)
         from limits m having count(*) > 0)
      into v_short, v_rate_items, v_status;
      if v_rate_items is not null then
        v_admit_until := least(v_admit_until, v_minute + interval '1 minute');
      end if;
    end if;

    if v_short is not null then
      v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'status', 'declined', 'reason', v_short || ' is too close to its limit for a lease'));
      continue;
    end if;

    insert into public.budget_reservations (
      request_id, tenant_id, api_key_id, model_alias, estimate_usd_micros, estimate_tokens, items, expires_at,
      policy_id, bucket)
    values (v_lease.lease_id, v_lease.tenant_id, v_lease.api_key_id, v_lease.model_alias, v_lease.usd_micros,
            v_lease.tokens, coalesce(v_items, '[]'::jsonb), v_now + pg_catalog.make_interval(secs => v_lease.ttl_seconds),
            v_lease.policy_id, v_lease.bucket)
    on conflict (request_id) do nothing;
    if not found then
      v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'status', 'declined', 'reason', 'lease_id is already used'));
      continue;
    end if;
    insert into public.budget_leases (reservation_id, holder, requests_granted, rate_items)
    values (v_lease.lease_id, v_lease.holder, v_lease.requests, coalesce(v_rate_items, '[]'::jsonb));

    update public.usage_counters c
    set reserved = c.reserved + (i.value ->> 'amount')::bigint, updated_at = v_now
    from pg_catalog.jsonb_array_elements(coalesce(v_items, '[]'::jsonb)) i
    where c.budget_id = (i.value ->> 'budget_id')::uuid and c.window_start = (i.value ->> 'window_start')::timestamptz;
    insert into public.rate_limit_windows as w (rate_limit_id, window_start, requests, tokens)
    select (i.value ->> 'rate_limit_id')::uuid, v_minute, v_lease.requests, v_lease.tokens
    from pg_catalog.jsonb_array_elements(coalesce(v_rate_items, '[]'::jsonb)) i
    on conflict (rate_limit_id, window_start) do update
      set requests = w.requests + excluded.requests, tokens = w.tokens + excluded.tokens;

    v_admit_until := least(coalesce(v_admit_until, 'infinity'::timestamptz),
                           v_now + pg_catalog.make_interval(secs => v_lease.admit_seconds::double precision));
    v_answers := v_answers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'status', 'granted', 'items', coalesce(v_items, '[]'::jsonb), 'rate_limit', v_status,
      'admit_seconds', extract(epoch from (v_admit_until - v_now))));
  end loop;
  return v_answers;
end
$$;
comment on function public.acquire_budget_leases(jsonb) is
  'Grants budget leases (a reservation for many requests plus their rate-window share) when every applicable budget and rate limit keeps the slice free; answers granted or declined, in input order.';
revoke execute on function public.acquire_budget_leases(jsonb) from public, anon, authenticated;
grant execute on function public.acquire_budget_leases(jsonb) to service_role;

-- Charges requests to their leases: [{lease_id, request_id, user_id, domain,
-- prompt_tokens, completion_tokens, cost_usd_micros, provider, upstream_model,
-- latency_ms, status}]. In input order, each request takes from its lease's
-- items what is left (least(actual, amount left)); any excess is overflow,
-- recorded and counted outside the limit, as for a reservation. Answers
-- settled (with overflow_usd_micros), duplicate (a usage record exists or an
-- earlier row settles it), or lease_closed (the lease is unknown or no longer
-- open: nothing is written for that row).
create function public.settle_leased_usage(p_settlements jsonb)
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
    raise exception 'settle_leased_usage takes a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  if exists (
    select 1 from pg_catalog.jsonb_array_elements(p_settlements) s
    where coalesce((s.value ->> 'prompt_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'completion_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'cost_usd_micros')::bigint, -1) < 0
       or coalesce(s.value ->> 'status', 'succeeded') not in ('succeeded', 'failed', 'cancelled')
       or coalesce(length(s.value ->> 'request_id'), 0) not between 1 and 128
  ) then
    raise exception 'each settlement needs a request_id, usage of zero or more, status succeeded, failed or cancelled'
      using errcode = 'invalid_parameter_value';
  end if;

  -- Leases first, counters last (apply_counter_deltas): the saga's lock order.
  perform 1 from public.budget_reservations r
  where r.request_id = any (array(select s.value ->> 'lease_id' from pg_catalog.jsonb_array_elements(p_settlements) s))
  order by r.request_id
  for update;

  with settlements as (
    select s.position, s.value ->> 'lease_id' as lease_id, s.value ->> 'request_id' as request_id,
           (s.value ->> 'user_id')::uuid as user_id, s.value ->> 'domain' as domain,
           (s.value ->> 'prompt_tokens')::integer as prompt_tokens,
           (s.value ->> 'completion_tokens')::integer as completion_tokens, (s.value ->> 'cost_usd_micros')::bigint as cost,
           s.value ->> 'provider' as provider, s.value ->> 'upstream_model' as upstream_model,
           (s.value ->> 'latency_ms')::integer as latency_ms, coalesce(s.value ->> 'status', 'succeeded') as status,
           pg_catalog.row_number() over (partition by s.value ->> 'request_id' order by s.position) as occurrence
    from pg_catalog.jsonb_array_elements(p_settlements) with ordinality as s(value, position)
  ),
  matched as (
    select s.*, r.status as lease_status, r.tenant_id, r.api_key_id, r.model_alias, r.items,
           u.request_id is not null as recorded
    from settlements s
    left join lateral (
      select r.* from public.budget_reservations r
      where r.request_id = s.lease_id and exists (select 1 from public.budget_leases l where l.reservation_id = r.request_id)
      limit 1
    ) r on true
    -- A lateral probe per row: as a plain exists() the planner may hash every usage record instead.
    left join lateral (
      select u.request_id from public.usage_records u where u.request_id = s.request_id limit 1
    ) u on true
  ),
  settling as (
    select m.* from matched m where m.occurrence = 1 and not m.recorded and m.lease_status = 'reserved'
  ),
  actuals as (
    select g.position, g.lease_id, g.prompt_tokens, g.completion_tokens, i.ordinality,
           (i.value ->> 'budget_id')::uuid as budget_id, (i.value ->> 'window_start')::timestamptz as window_start,
           i.value ->> 'unit' as unit, (i.value ->> 'amount')::bigint as amount,
           case i.value ->> 'unit' when 'usd_micros' then g.cost else g.prompt_tokens::bigint + g.completion_tokens end
             as actual
    from settling g, pg_catalog.jsonb_array_elements(g.items) with ordinality as i(value, ordinality)
  ),
  charged as (
    select a.*, greatest(0, least(a.actual, a.amount - coalesce(sum(a.actual) over (
             partition by a.lease_id, a.budget_id order by a.position rows between unbounded preceding and 1 preceding), 0)))
             as charged
    from actuals a
  ),
  per_request as (
    select g.position, coalesce(max(c.actual - c.charged) filter (where c.unit = 'usd_micros'), 0) as overflow_usd
    from settling g
    left join charged c on c.position = g.position
    group by g.position
  ),
  records as (
    insert into public.usage_records (
      request_id, tenant_id, api_key_id, user_id, provider, upstream_model, model_alias, prompt_tokens,
      completion_tokens, cost_usd_micros, overflow_usd_micros, cache_hit, status, latency_ms, lease_id, domain)
    select g.request_id, g.tenant_id, g.api_key_id, g.user_id, g.provider, g.upstream_model, g.model_alias,
           g.prompt_tokens, g.completion_tokens, g.cost, p.overflow_usd, false, g.status, g.latency_ms, g.lease_id,
           g.domain
    from settling g
    join per_request p on p.position = g.position
    returning 1
  ),
  lease_items as (
    select c.lease_id, c.ordinality, c.budget_id, c.window_start, sum(c.charged) as charged,
           sum(c.actual - c.charged) as overflow
    from charged c
    group by c.lease_id, c.ordinality, c.budget_id, c.window_start
  ),
  drawn as (
    update public.budget_reservations r
    set items = (
      select coalesce(pg_catalog.jsonb_agg(i.value || coalesce(pg_catalog.jsonb_build_object(
               'amount', (i.value ->> 'amount')::bigint - d.charged,
               'charged', coalesce((i.value ->> 'charged')::bigint, 0) + d.charged,
               'overflow', coalesce((i.value ->> 'overflow')::bigint, 0) + d.overflow), '{}'::jsonb)
             order by i.ordinality), '[]'::jsonb)
      from pg_catalog.jsonb_array_elements(r.items) with ordinality as i(value, ordinality)
      left join lease_items d on d.lease_id = r.request_id and d.ordinality = i.ordinality)
    where r.request_id in (select g.lease_id from settling g)
    returning 1
  ),
  counted as (
    update public.budget_leases l
    set requests_used = l.requests_used + n.requests
    from (select g.lease_id, count(*) as requests from settling g group by g.lease_id) n
    where l.reservation_id = n.lease_id
    returning 1
  )
  select
    (select coalesce(pg_catalog.jsonb_agg(case
              when m.occurrence > 1 or m.recorded then '{"status": "duplicate"}'::jsonb
              when m.lease_status is distinct from 'reserved' then pg_catalog.jsonb_build_object(
                'status', 'lease_closed', 'lease_status', coalesce(m.lease_status, 'unknown'))
              else pg_catalog.jsonb_build_object('status', 'settled', 'overflow_usd_micros', p.overflow_usd)
            end order by m.position), '[]'::jsonb)
     from matched m
     left join per_request p on p.position = m.position),
    (select coalesce(pg_catalog.jsonb_agg(d), '[]'::jsonb)
     from (
       select c.budget_id, c.window_start, sum(c.charged) as released, sum(c.charged) as charged,
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
comment on function public.settle_leased_usage(jsonb) is
  'Records usage of requests admitted under budget leases and charges each to its lease (overflow beyond what is left); answers settled, duplicate or lease_closed in input order.';
revoke execute on function public.settle_leased_usage(jsonb) from public, anon, authenticated;
grant execute on function public.settle_leased_usage(jsonb) to service_role;

-- Closes leases: [{lease_id, requests_used, tokens_used}]. What is left of
-- each item goes back to its counter, and the rate windows get back the
-- requests and tokens the holder did not use (it reports those; at least the
-- settled requests count as used). The lease reservation ends settled when it
-- charged anything, else released. Answers closed, duplicate (already
-- closed, naming its status) or unknown.
create function public.close_budget_leases(p_closes jsonb)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
declare
  v_answers jsonb;
  v_deltas jsonb;
  v_rate_returns jsonb;
begin
  if pg_catalog.jsonb_typeof(p_closes) <> 'array' then
    raise exception 'close_budget_leases takes a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  perform 1 from public.budget_reservations r
  where r.request_id = any (array(select x.value ->> 'lease_id' from pg_catalog.jsonb_array_elements(p_closes) x))
  order by r.request_id
  for update;

  with closes as (
    select x.position, x.value ->> 'lease_id' as lease_id,
           greatest(coalesce((x.value ->> 'requests_used')::integer, 0), 0) as requests_used,
           greatest(coalesce((x.value ->> 'tokens_used')::bigint, 0), 0) as tokens_used,
           pg_catalog.row_number() over (partition by x.value ->> 'lease_id' order by x.position) as occurrence
    from pg_catalog.jsonb_array_elements(p_closes) with ordinality as x(value, position)
  ),
  matched as (
    select x.*, r.status as lease_status, r.items, l.requests_granted, l.rate_items,
           greatest(x.requests_used, l.requests_used) as used
    from closes x
    left join lateral (
      select r.* from public.budget_reservations r where r.request_id = x.lease_id limit 1
    ) r on true
    left join public.budget_leases l on l.reservation_id = x.lease_id
  ),
  closing as (
    select m.* from matched m where m.occurrence = 1 and m.lease_status = 'reserved' and m.requests_granted is not null
  ),
  finished as (
    update public.budget_reservations r
    set status = case when exists (
                   select 1 from pg_catalog.jsonb_array_elements(r.items) i
                   where coalesce((i.value ->> 'charged')::bigint, 0) + coalesce((i.value ->> 'overflow')::bigint, 0) > 0)
                 then 'settled' else 'released' end,
        release_reason = 'lease closed',
        finished_at = pg_catalog.now()
    from closing x
    where r.request_id = x.lease_id
    returning 1
  )
  select
    (select coalesce(pg_catalog.jsonb_agg(case
              when m.lease_status is null or m.requests_granted is null then '{"status": "unknown"}'::jsonb
              when m.occurrence > 1 and m.lease_status = 'reserved' then '{"status": "duplicate"}'::jsonb
              when m.lease_status <> 'reserved' then pg_catalog.jsonb_build_object(
                'status', 'duplicate', 'lease_status', m.lease_status)
              else '{"status": "closed"}'::jsonb
            end order by m.position), '[]'::jsonb)
     from matched m),
    (select coalesce(pg_catalog.jsonb_agg(d), '[]'::jsonb)
     from (
       select (i.value ->> 'budget_id')::uuid as budget_id, (i.value ->> 'window_start')::timestamptz as window_start,
              sum((i.value ->> 'amount')::bigint) as released
       from closing x, pg_catalog.jsonb_array_elements(x.items) i
       group by 1, 2
     ) d),
    -- Summed per window: several leases closed together may share one.
    (select coalesce(pg_catalog.jsonb_agg(g), '[]'::jsonb)
     from (
       select (i.value ->> 'rate_limit_id')::uuid as rate_limit_id,
              (i.value ->> 'window_start')::timestamptz as window_start,
              sum(greatest(0, x.requests_granted - x.used)) as requests,
              sum(greatest(0, (i.value ->> 'tokens')::bigint - x.tokens_used)) as tokens
       from closing x, pg_catalog.jsonb_array_elements(x.rate_items) i
       group by 1, 2
     ) g)
  into v_answers, v_deltas, v_rate_returns;

  -- Counters before rate windows, as reserve and acquire take them.
  perform private.apply_counter_deltas(v_deltas);
  update public.rate_limit_windows w
  set requests = greatest(0, w.requests - g.requests), tokens = greatest(0, w.tokens - g.tokens)
  from pg_catalog.jsonb_to_recordset(v_rate_returns) as g(rate_limit_id uuid, window_start timestamptz, requests bigint,
    tokens bigint)
  where w.rate_limit_id = g.rate_limit_id and w.window_start = g.window_start;
  return v_answers;
end
$$;
comment on function public.close_budget_leases(jsonb) is
  'Closes budget leases: releases what is left of each to its counters and returns unused requests and tokens to the rate windows; answers closed, duplicate or unknown in input order.';
revoke execute on function public.close_budget_leases(jsonb) from public, anon, authenticated;
grant execute on function public.close_budget_leases(jsonb) to service_role;

-- One round trip per flush, now with the lease settlements and closes:
-- settlements of both kinds first, then closes and releases (they free room),
-- then reservations.
--
-- Every lock the flush needs is taken first, in the saga's one global order:
-- reservation and lease rows, then counter rows, then rate limits, each sorted.
-- Each step locks its own rows in that order, but steps run one after another:
-- a settlement held the tenant counter while the reservation after it waited
-- for a model counter that another isolate's flush held while waiting for the
-- tenant counter (a deadlock, test/integration/budget-leases.test.ts). Taken
-- up front, the steps' own locks find them held. A flush of one kind of work
-- (most of them under load: lease settlements) skips this: each step on its
-- own already locks in that order.
--
-- Always durable: the router calls upstream as soon as a reservation answers,
-- so a reservation lost in a crash would turn its settle into "unknown" and
-- lose the usage record of an answered request (reserve_budgets alone still
-- asks for an asynchronous commit; this overrides it).
-- What a flush of several kinds of work locks before any step runs, in the
-- saga's global order: the reservation and lease rows it names, then the
-- counters of those rows' open items and of the reserving tenants' current
-- windows, then the rate limits of the reserving tenants and of the leases.
create function private.lock_flush_rows(
  p_reservations jsonb,
  p_settlements jsonb,
  p_releases jsonb,
  p_leased_settlements jsonb,
  p_lease_closes jsonb
)
returns void
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
declare
  v_now timestamptz := pg_catalog.now();
  v_ids text[];
  v_tenants uuid[];
begin
  v_ids := array(
    select x.value ->> 'request_id' from pg_catalog.jsonb_array_elements(p_settlements || p_releases) x
    union
    select x.value ->> 'lease_id' from pg_catalog.jsonb_array_elements(p_leased_settlements || p_lease_closes) x);
  v_tenants := array(select distinct (r.value ->> 'tenant_id')::uuid from pg_catalog.jsonb_array_elements(p_reservations) r);
  -- The reserving tenants' counters of this window exist before they are locked (as in reserve_budgets).
  perform private.open_budget_windows(v_tenants);
  perform 1 from public.budget_reservations r where r.request_id = any (v_ids) order by r.request_id for update;
  perform 1
  from public.usage_counters c
  where (c.budget_id, c.window_start) in (
    select (i.value ->> 'budget_id')::uuid, (i.value ->> 'window_start')::timestamptz
    from public.budget_reservations r, pg_catalog.jsonb_array_elements(r.items) i
    where r.request_id = any (v_ids) and r.status = 'reserved'
    union
    select b.id, private.budget_window_start(b.period, v_now)
    from public.budgets b
    where b.enabled and b.tenant_id = any (v_tenants))
  order by c.budget_id, c.window_start
  for update of c;
  perform 1
  from public.rate_limits l
  where l.tenant_id = any (v_tenants)
     or l.id in (
       select (i.value ->> 'rate_limit_id')::uuid
       from public.budget_leases bl, pg_catalog.jsonb_array_elements(bl.rate_items) i
       where bl.reservation_id = any (v_ids))
  order by l.id
  for update of l;
end
$$;
comment on function private.lock_flush_rows(jsonb, jsonb, jsonb, jsonb, jsonb) is
  'Locks every row a flush_ledger call of several kinds of work touches, in the saga''s global order (reservations, counters, rate limits).';
revoke execute on function private.lock_flush_rows(jsonb, jsonb, jsonb, jsonb, jsonb) from public, anon, authenticated;
grant execute on function private.lock_flush_rows(jsonb, jsonb, jsonb, jsonb, jsonb) to service_role;

drop function public.flush_ledger(jsonb, jsonb, jsonb);
create function public.flush_ledger(
  p_reservations jsonb,
  p_settlements jsonb,
  p_releases jsonb,
  p_leased_settlements jsonb default '[]'::jsonb,
  p_lease_closes jsonb default '[]'::jsonb
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_settled jsonb := '[]'::jsonb;
  v_leased jsonb := '[]'::jsonb;
  v_closed jsonb := '[]'::jsonb;
  v_released jsonb := '[]'::jsonb;
  v_reserved jsonb := '[]'::jsonb;
begin
  if pg_catalog.jsonb_typeof(p_reservations) <> 'array' or pg_catalog.jsonb_typeof(p_settlements) <> 'array'
     or pg_catalog.jsonb_typeof(p_releases) <> 'array' or pg_catalog.jsonb_typeof(p_leased_settlements) <> 'array'
     or pg_catalog.jsonb_typeof(p_lease_closes) <> 'array' then
    raise exception 'flush_ledger takes JSON arrays' using errcode = 'invalid_parameter_value';
  end if;

  if (select count(*) filter (where pg_catalog.jsonb_array_length(a) > 0)
      from pg_catalog.unnest(array[p_reservations, p_settlements, p_releases, p_leased_settlements, p_lease_closes]) a) > 1 then
    perform private.lock_flush_rows(p_reservations, p_settlements, p_releases, p_leased_settlements, p_lease_closes);
  end if;

  if pg_catalog.jsonb_array_length(p_settlements) > 0 then
    v_settled := public.settle_budgets(p_settlements);
  end if;
  if pg_catalog.jsonb_array_length(p_leased_settlements) > 0 then
    v_leased := public.settle_leased_usage(p_leased_settlements);
  end if;
  if pg_catalog.jsonb_array_length(p_lease_closes) > 0 then
    v_closed := public.close_budget_leases(p_lease_closes);
  end if;
  if pg_catalog.jsonb_array_length(p_releases) > 0 then
    v_released := public.release_budgets(p_releases);
  end if;
  if pg_catalog.jsonb_array_length(p_reservations) > 0 then
    v_reserved := public.reserve_budgets(p_reservations);
  end if;
  perform pg_catalog.set_config('synchronous_commit', 'on', true);
  return pg_catalog.jsonb_build_object('reserved', v_reserved, 'settled', v_settled, 'released', v_released,
    'leased_settled', v_leased, 'lease_closed', v_closed);
end
$$;
comment on function public.flush_ledger(jsonb, jsonb, jsonb, jsonb, jsonb) is
  'Locks everything a flush touches in the global order, then settles (per-request and leased), closes leases, releases and reserves in one durable transaction: answers per kind in input order.';
revoke execute on function public.flush_ledger(jsonb, jsonb, jsonb, jsonb, jsonb) from public, anon, authenticated;
grant execute on function public.flush_ledger(jsonb, jsonb, jsonb, jsonb, jsonb) to service_role;
