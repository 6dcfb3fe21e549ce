-- Tenant economics: budgets and their per-window counters, per-request
-- reservations, budget leases, usage records and daily usage totals, rate
-- limits, and the response cache; then the budget saga that moves money
-- between them. The conservation invariant (spent + reserved <= limit) is a
-- CHECK on the counter row: no code path can break it. A tenant's members read
-- its budgets, counters, usage and rate limits; only the service role (the
-- router, the ops API and the maintenance schedules) writes.

create table public.budgets (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- bucket: what one tenant spends through one A/B bucket of one routing policy.
  scope text not null check (scope in ('tenant', 'api_key', 'model', 'bucket')),
  api_key_id uuid references public.tenant_api_keys (id) on delete cascade,
  model_alias text check (length(model_alias) between 1 and 128),
  unit text not null check (unit in ('usd_micros', 'tokens')),
  period text not null check (period in ('day', 'month', 'total')),
  limit_amount bigint not null check (limit_amount >= 0),
  -- What the token guard does when max_tokens cannot fit: refuse (402) or cap max_tokens.
  over_limit text not null default 'refuse' check (over_limit in ('refuse', 'cap')),
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- For scope bucket: the routing policy and the bucket of it this budget caps.
  policy_id uuid references public.routing_policies (id) on delete cascade,
  bucket text check (bucket ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  check ((scope = 'api_key') = (api_key_id is not null)),
  check ((scope = 'model') = (model_alias is not null)),
  constraint budgets_bucket_target_check
    check ((scope = 'bucket') = (policy_id is not null) and (policy_id is null) = (bucket is null))
);
comment on table public.budgets is 'Spending limits per tenant, tenant API key or tenant+model, in USD micro-units or tokens, per day, month or in total.';
comment on column public.budgets.bucket is 'For scope bucket: the A/B bucket of routing policy policy_id this budget caps.';
create unique index budgets_one_per_target_idx on public.budgets (
  tenant_id, scope, coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), coalesce(model_alias, ''),
  coalesce(policy_id, '00000000-0000-0000-0000-000000000000'::uuid), coalesce(bucket, ''), unit, period
);
create index budgets_api_key_id_idx on public.budgets (api_key_id);
create index budgets_policy_id_idx on public.budgets (policy_id);

create table public.usage_counters (
  budget_id uuid not null references public.budgets (id) on delete cascade,
  -- Start of the day or month (UTC) the counter covers; the epoch for 'total'.
  window_start timestamptz not null,
  -- The budget's limit for this window (kept in step by a trigger on budgets).
  limit_amount bigint not null check (limit_amount >= 0),
  spent bigint not null default 0 check (spent >= 0),
  reserved bigint not null default 0 check (reserved >= 0),
  -- Actual cost above the reservation: recorded and counted, outside the limit.
  overflow bigint not null default 0 check (overflow >= 0),
  request_count bigint not null default 0,
  prompt_tokens bigint not null default 0,
  completion_tokens bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (budget_id, window_start),
  constraint usage_counters_conservation check (spent + reserved <= limit_amount)
);
comment on table public.usage_counters is 'Spent and reserved amounts per budget and window; spent + reserved <= limit_amount always.';

create table public.budget_reservations (
  -- A request's id, or 'lease:<uuid>' for a budget lease (public.budget_leases).
  request_id text primary key check (length(request_id) between 1 and 128),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  api_key_id uuid references public.tenant_api_keys (id) on delete set null,
  user_id uuid,
  model_alias text,
  estimate_usd_micros bigint not null check (estimate_usd_micros >= 0),
  estimate_tokens bigint not null check (estimate_tokens >= 0),
  -- One entry per applicable budget: {budget_id, window_start, unit, amount[, charged, overflow]}.
  items jsonb not null default '[]'::jsonb,
  status text not null default 'reserved' check (status in ('reserved', 'settled', 'released')),
  release_reason text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  finished_at timestamptz,
  -- The routing context, as history rather than references: a reservation
  -- outlives edits to the policy it was routed by.
  policy_id uuid,
  bucket text,
  domain text,
  check ((status = 'reserved') = (finished_at is null))
);
comment on table public.budget_reservations is 'One row per LLM request: what it reserved against which budgets, and whether it was settled or released.';
comment on column public.budget_reservations.domain is 'The request''s x-switchyard-domain tag, for feedback and reputation.';
create index budget_reservations_tenant_id_idx on public.budget_reservations (tenant_id);
create index budget_reservations_api_key_id_idx on public.budget_reservations (api_key_id);
create index budget_reservations_open_idx on public.budget_reservations (expires_at) where status = 'reserved';

-- usage_records grows by one row per request, so it is range-partitioned by
-- month (created_at): retention drops a whole month once its days are rolled
-- up (public.run_retention), instead of deleting rows. The partitions live in
-- schema private, created ahead by public.create_partitions_ahead() (the
-- partition_maintenance schedule, and at migration time); a default partition
-- catches a row outside every month (a backdated row, or the schedule stopped),
-- so a usage record is never refused. A partitioned table's unique key must
-- hold the partition column, so the key is (request_id, created_at), and
-- public.usage_request_ids (below) keeps request ids unique across months.
create table public.usage_records (
  request_id text not null check (length(request_id) between 1 and 128),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  api_key_id uuid references public.tenant_api_keys (id) on delete set null,
  user_id uuid,
  provider text,
  upstream_model text,
  model_alias text,
  prompt_tokens integer not null default 0 check (prompt_tokens >= 0),
  completion_tokens integer not null default 0 check (completion_tokens >= 0),
  cost_usd_micros bigint not null default 0 check (cost_usd_micros >= 0),
  overflow_usd_micros bigint not null default 0 check (overflow_usd_micros >= 0),
  cache_hit boolean not null default false,
  status text not null default 'succeeded' check (status in ('succeeded', 'failed', 'cancelled')),
  latency_ms integer check (latency_ms >= 0),
  created_at timestamptz not null default now(),
  -- A request admitted under a lease has no reservation of its own: its usage
  -- record names the lease and carries the routing tag feedback needs.
  lease_id text,
  domain text,
  -- The wire format the client spoke (the router's dialect; DialectName in _shared/economics/ledger.ts).
  dialect text not null default 'openai_chat'
    check (dialect in ('openai_chat', 'openai_embeddings', 'anthropic_messages', 'openai_responses')),
  -- The parts of prompt_tokens written to and read from the provider's prompt cache (own prices in llm_models).
  cache_write_tokens integer not null default 0 check (cache_write_tokens >= 0),
  cache_read_tokens integer not null default 0 check (cache_read_tokens >= 0),
  check (cache_write_tokens + cache_read_tokens <= prompt_tokens),
  primary key (request_id, created_at)
) partition by range (created_at);
comment on table public.usage_records is 'One row per finished LLM request: tokens, cost, provider, model, cache hit and latency.';
comment on column public.usage_records.dialect is 'The API the client called: openai_chat (also the default for callers that do not say), openai_embeddings, anthropic_messages, openai_responses.';
comment on column public.usage_records.cache_write_tokens is 'Prompt tokens written to the provider''s prompt cache (part of prompt_tokens).';
comment on column public.usage_records.cache_read_tokens is 'Prompt tokens read from the provider''s prompt cache (part of prompt_tokens).';
comment on column public.usage_records.lease_id is 'The budget lease this request was charged to; null when it had its own reservation.';
comment on column public.usage_records.domain is 'The request''s x-switchyard-domain tag when it ran under a lease (else on its reservation).';
create index usage_records_tenant_created_idx on public.usage_records (tenant_id, created_at);
create index usage_records_api_key_id_idx on public.usage_records (api_key_id);
create index usage_records_lease_id_idx on public.usage_records (lease_id) where lease_id is not null;
-- The hourly rollup finds the first day it has not rolled, and sums one day, by time: a block
-- range index (a few pages a month; rows arrive in time order) keeps both to the days they read.
create index usage_records_created_at_brin_idx on public.usage_records using brin (created_at);

-- Request ids are used once across every month. The unique key of
-- usage_records is per month, so each new record's id is also claimed here, by
-- the trigger below, in the record's transaction: a concurrent second record
-- with the same id waits for the first to commit and then finds the id taken,
-- exactly as with a primary key. The ids are kept for two days (longer than
-- any reservation or lease lives: ttl <= 86400 s), then trimmed by retention;
-- past that window reserve_budgets, record_cache_hit and settle_leased_usage
-- look the id up in usage_records itself (the first column of every
-- partition's key), so a used id stays refused for as long as its record is kept.
create table public.usage_request_ids (
  request_id text primary key,
  created_at timestamptz not null default now()
);
comment on table public.usage_request_ids is 'Request ids of recent usage records (two days): keeps request ids unique across the monthly partitions of usage_records.';
create index usage_request_ids_created_at_idx on public.usage_request_ids (created_at);
alter table public.usage_request_ids enable row level security;
revoke all on table public.usage_request_ids from public, anon, authenticated, service_role;

-- Claims a new usage record's request id. A taken id skips the row, as the
-- settle and cache-hit inserts' `on conflict do nothing` did with the old
-- primary key; a leased request's record (lease_id set) raises
-- unique_violation, as its plain insert did.
create function private.claim_usage_request_id()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.usage_request_ids (request_id, created_at) values (new.request_id, new.created_at)
  on conflict (request_id) do nothing;
  if found then
    return new;
  end if;
  if new.lease_id is not null then
    raise exception 'duplicate key value violates unique constraint "usage_request_ids_pkey"'
      using errcode = 'unique_violation', detail = format('Key (request_id)=(%s) already exists.', new.request_id);
  end if;
  return null;
end
$$;
comment on function private.claim_usage_request_id() is 'Trigger: claims a usage record''s request id in usage_request_ids; a taken id skips the row (raises for a leased record).';
revoke execute on function private.claim_usage_request_id() from public, anon, authenticated, service_role;
create trigger usage_records_claim_request_id
  before insert on public.usage_records
  for each row execute function private.claim_usage_request_id();

create table public.rate_limits (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- null: the limit applies to the whole tenant; else to one API key.
  api_key_id uuid references public.tenant_api_keys (id) on delete cascade,
  requests_per_minute integer check (requests_per_minute > 0),
  tokens_per_minute integer check (tokens_per_minute > 0),
  -- Extra requests/tokens allowed in one minute above the steady rate.
  burst integer not null default 0 check (burst >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (requests_per_minute is not null or tokens_per_minute is not null)
);
comment on table public.rate_limits is 'Requests and tokens per minute allowed per tenant or per tenant API key.';
create unique index rate_limits_one_per_target_idx on public.rate_limits (
  tenant_id, coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid)
);
create index rate_limits_api_key_id_idx on public.rate_limits (api_key_id);

create table public.rate_limit_windows (
  rate_limit_id uuid not null references public.rate_limits (id) on delete cascade,
  window_start timestamptz not null,
  requests integer not null default 0 check (requests >= 0),
  tokens bigint not null default 0 check (tokens >= 0),
  primary key (rate_limit_id, window_start)
);
comment on table public.rate_limit_windows is 'Requests and tokens counted per rate limit and minute.';

-- RLS: a tenant reads its own budgets, usage and limits; only operators write
-- (through the ops API with the service role).
alter table public.budgets enable row level security;
alter table public.usage_counters enable row level security;
alter table public.budget_reservations enable row level security;
alter table public.usage_records enable row level security;
alter table public.rate_limits enable row level security;
alter table public.rate_limit_windows enable row level security;

revoke all on table public.budgets, public.usage_counters, public.budget_reservations, public.usage_records,
  public.rate_limits, public.rate_limit_windows from anon, authenticated;
grant select on table public.budgets, public.usage_counters, public.usage_records, public.rate_limits
  to authenticated;
grant all on table public.budgets, public.usage_counters, public.budget_reservations, public.usage_records,
  public.rate_limits, public.rate_limit_windows to service_role;

create policy "Members can read their tenants' budgets"
  on public.budgets for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));
create policy "Members can read their tenants' usage counters"
  on public.usage_counters for select to authenticated
  using (budget_id in (
    select b.id from public.budgets b where b.tenant_id in (select private.tenant_ids_of_current_user())
  ));
create policy "Members can read their tenants' usage records"
  on public.usage_records for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));
create policy "Members can read their tenants' rate limits"
  on public.rate_limits for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

create trigger budgets_touch_updated_at
  before update on public.budgets
  for each row execute function private.touch_updated_at();
create trigger rate_limits_touch_updated_at
  before update on public.rate_limits
  for each row execute function private.touch_updated_at();

-- Budget leases. A lease reserves a slice of a tenant's budgets and of the
-- minute's rate limits for many requests at once; the isolate that holds it
-- admits requests against the slice in memory, and each request's usage is
-- charged to the lease when it settles. A lease IS a reservation: a
-- budget_reservations row (request_id 'lease:<uuid>') whose items hold what is
-- left of the slice, so conservation holds for it exactly as for one request
-- (see acquire_budget_leases below).
--
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

-- Exact-match response cache: per tenant, keyed by a hash of the normalized
-- request, with a TTL. Only the router (service role) reads and writes it;
-- hits are recorded in usage_records as cache hits at zero cost.

create table public.response_cache (
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- SHA-256 (hex) of the normalized request: model, messages, tools and sampling parameters.
  cache_key text not null check (cache_key ~ '^[0-9a-f]{64}$'),
  model_alias text not null,
  response jsonb not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  primary key (tenant_id, cache_key),
  check (expires_at > created_at)
);
comment on table public.response_cache is 'Cached LLM responses per tenant and exact request, until expires_at; served at zero cost.';
create index response_cache_expires_at_idx on public.response_cache (expires_at);

alter table public.response_cache enable row level security;
revoke all on table public.response_cache from anon, authenticated;
grant all on table public.response_cache to service_role;

-- Daily usage totals: whole UTC days of usage_records are summed into
-- usage_daily (per tenant, key, provider, models, cache hit and status) before
-- retention may delete them, so totals stay exact after the purge.
-- usage_rollups keeps, per rolled (day, tenant), how much the purge removed;
-- usage_invariant_violations() proves, for every rolled day and tenant, daily
-- totals = records still there + records purged.

create table public.usage_daily (
  id bigint generated always as identity primary key,
  day date not null,
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- No foreign key: usage_records keeps a revoked key's id (set null only on delete).
  api_key_id uuid,
  provider text,
  upstream_model text,
  model_alias text,
  cache_hit boolean not null,
  status text not null,
  dialect text not null,
  requests bigint not null check (requests >= 0),
  prompt_tokens bigint not null check (prompt_tokens >= 0),
  completion_tokens bigint not null check (completion_tokens >= 0),
  cost_usd_micros bigint not null check (cost_usd_micros >= 0),
  overflow_usd_micros bigint not null check (overflow_usd_micros >= 0)
);
comment on table public.usage_daily is 'Exact daily totals of usage_records per tenant, key, provider, models, cache hit, status and dialect; written once per day by rollup_usage().';
create unique index usage_daily_dimensions_idx on public.usage_daily
  (day, tenant_id, api_key_id, provider, upstream_model, model_alias, cache_hit, status, dialect) nulls not distinct;
create index usage_daily_tenant_day_idx on public.usage_daily (tenant_id, day);

create table public.usage_rollups (
  day date not null,
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  rolled_up_at timestamptz not null default now(),
  -- What retention deleted of this day's records (purge_usage_records).
  purged_records bigint not null default 0 check (purged_records >= 0),
  purged_cost_usd_micros bigint not null default 0 check (purged_cost_usd_micros >= 0),
  purged_tokens bigint not null default 0 check (purged_tokens >= 0),
  primary key (day, tenant_id)
);
comment on table public.usage_rollups is 'Each (day, tenant) rolled into usage_daily, and how many of its usage_records retention has deleted since.';
create index usage_rollups_tenant_id_idx on public.usage_rollups (tenant_id);

alter table public.usage_daily enable row level security;
alter table public.usage_rollups enable row level security;
revoke all on table public.usage_daily, public.usage_rollups from anon, authenticated, service_role;
revoke all on sequence public.usage_daily_id_seq from anon, authenticated, service_role;
grant select on table public.usage_daily, public.usage_rollups to authenticated, service_role;

create policy "Members can read their tenant's daily usage"
  on public.usage_daily for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

create policy "Members can read their tenant's usage rollups"
  on public.usage_rollups for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

-- The budget saga: reserve an estimate before the upstream call, then settle
-- the actual usage or release the reservation. Each step is atomic and
-- idempotent by request id. Every step takes many requests in one transaction
-- (group commit) and locks in one global order (reservation rows, then
-- counter rows, then rate limits, each sorted), so concurrent batches cannot
-- deadlock. The single-request functions are one-element batches: one
-- implementation, the same answers.
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

-- Reserve, request by request in order: each request is checked against
-- running totals held in the function (updating one hot counter row once per
-- request made every update walk a longer chain of row versions), then every
-- counter, rate-limit window and reservation is written once. A bucket budget
-- applies to requests the planner put in that bucket (request fields
-- policy_id and bucket), so the conservation CHECK bounds a bucket exactly
-- like any other budget; a refusal names scope 'bucket' and the router falls
-- back to the policy's control bucket. Reservations also remember the
-- request's policy, bucket and domain tag, which feedback and reputation need.
create function private.reserve_budgets_in_order(p_requests jsonb)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
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
comment on function private.reserve_budgets_in_order(jsonb) is
  'The budget reservation batch, request by request in order (refusals, duplicates, validation); public.reserve_budgets takes this path when not every request fits.';
revoke execute on function private.reserve_budgets_in_order(jsonb) from public, anon, authenticated;
grant execute on function private.reserve_budgets_in_order(jsonb) to service_role;

-- Reserve, fast path. Profiling the router showed every request waiting on
-- two durable commits that held the tenant's counter row, and reserve spending
-- ~0.3 ms per request in per-row plpgsql queries. So:
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
language sql
set search_path = ''
as $$
  select public.reserve_budgets(pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
    'request_id', p_request_id, 'tenant_id', p_tenant_id, 'api_key_id', p_api_key_id, 'model_alias', p_model_alias,
    'usd_micros', p_usd_micros, 'tokens', p_tokens, 'user_id', p_user_id, 'ttl_seconds', p_ttl_seconds))) -> 0
$$;
revoke execute on function public.reserve_budget(text, uuid, uuid, text, bigint, bigint, uuid, integer) from public, anon, authenticated;
grant execute on function public.reserve_budget(text, uuid, uuid, text, bigint, bigint, uuid, integer) to service_role;

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

-- Settle: moves up to the reserved amount from reserved to spent, records
-- anything above it as overflow, and writes the usage record. One core serves
-- a request's own reservation (settle_budgets) and a budget lease
-- (settle_leased_usage): each settlement draws on a holder reservation, its
-- own, which settling closes, or its lease, which stays open for the next
-- request. One statement of data-modifying CTEs writes each usage record,
-- holder and counter once.
-- Settle locks the holders first and the counters last (the reaper already
-- took reservations first): the tenant's counter row is then held only for
-- its own update and the commit, not for the usage-record inserts, so the
-- next reserve batch waits less.
--
-- Per settlement, in input order: the first settlement of a request id
-- settles it and a repeat is a duplicate, as in order. It takes from each of
-- the holder's items what is left (least(actual, amount left), a running sum
-- within the batch; a closing holder is settled once, so that is
-- least(actual, amount)); any excess is overflow, recorded and counted
-- outside the limit. A closing holder ends settled with its items annotated
-- (charged, overflow) and the counters release its whole amount; a lease's
-- items are drawn down (amount less, charged and overflow more), the counters
-- release what was charged, and budget_leases.requests_used counts the
-- requests. Under a lease the settlement names the request's user and domain
-- (its reservation holds them otherwise), and the usage record is the
-- request's only trace: an id that has one is a duplicate.
create function private.settle_usage(p_settlements jsonb, p_closes_holder boolean)
returns jsonb
language plpgsql
set search_path = ''
set enable_seqscan = off
-- One plan serves both holders: p_closes_holder only switches expressions and one-time filters. Left
-- to choose, the plan cache kept planning the statement afresh per call (a custom plan for a known
-- p_closes_holder looks cheaper), which made a 32-row settle batch about a third slower.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_answers jsonb;
  v_deltas jsonb;
  v_unrecorded bigint;
begin
  if pg_catalog.jsonb_typeof(p_settlements) <> 'array' then
    raise exception '% takes a JSON array', case when p_closes_holder then 'settle_budgets' else 'settle_leased_usage' end
      using errcode = 'invalid_parameter_value';
  end if;
  if exists (
    select 1 from pg_catalog.jsonb_array_elements(p_settlements) s
    where coalesce((s.value ->> 'prompt_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'completion_tokens')::integer, -1) < 0
       or coalesce((s.value ->> 'cost_usd_micros')::bigint, -1) < 0
       or coalesce(s.value ->> 'status', 'succeeded') not in ('succeeded', 'failed', 'cancelled')
       -- A closing holder's id is the request's own; a lease's settlement must name its request.
       or (not p_closes_holder and coalesce(length(s.value ->> 'request_id'), 0) not between 1 and 128)
  ) then
    raise exception '%', case when p_closes_holder
        then 'usage must be zero or more, status succeeded, failed or cancelled'
        else 'each settlement needs a request_id, usage of zero or more, status succeeded, failed or cancelled' end
      using errcode = 'invalid_parameter_value';
  end if;

  perform 1 from public.budget_reservations r
  where r.request_id = any (array(
    select s.value ->> case when p_closes_holder then 'request_id' else 'lease_id' end
    from pg_catalog.jsonb_array_elements(p_settlements) s))
  order by r.request_id
  for update;

  with settlements as (
    select s.position, s.value ->> case when p_closes_holder then 'request_id' else 'lease_id' end as holder_id,
           s.value ->> 'request_id' as request_id,
           case when not p_closes_holder then (s.value ->> 'user_id')::uuid end as user_id,
           case when not p_closes_holder then s.value ->> 'domain' end as domain,
           (s.value ->> 'prompt_tokens')::integer as prompt_tokens,
           (s.value ->> 'completion_tokens')::integer as completion_tokens, (s.value ->> 'cost_usd_micros')::bigint as cost,
           s.value ->> 'provider' as provider, s.value ->> 'upstream_model' as upstream_model,
           (s.value ->> 'latency_ms')::integer as latency_ms, coalesce(s.value ->> 'status', 'succeeded') as status,
           coalesce(s.value ->> 'dialect', 'openai_chat') as dialect,
           coalesce((s.value ->> 'cache_write_tokens')::integer, 0) as cache_write_tokens,
           coalesce((s.value ->> 'cache_read_tokens')::integer, 0) as cache_read_tokens,
           pg_catalog.row_number() over (partition by s.value ->> 'request_id' order by s.position) as occurrence
    from pg_catalog.jsonb_array_elements(p_settlements) with ordinality as s(value, position)
  ),
  matched as (
    select s.*, h.status as holder_status, h.tenant_id, h.api_key_id, h.user_id as holder_user_id, h.model_alias, h.items,
           u.request_id is not null as recorded
    from settlements s
    left join lateral (
      select r.* from public.budget_reservations r
      where r.request_id = s.holder_id
        and (p_closes_holder or exists (select 1 from public.budget_leases l where l.reservation_id = r.request_id))
      limit 1
    ) h on true
    -- A lateral probe per row: as a plain exists() the planner may hash every usage record instead.
    left join lateral (
      select u.request_id from public.usage_records u where not p_closes_holder and u.request_id = s.request_id limit 1
    ) u on true
  ),
  settling as (
    select m.* from matched m where m.occurrence = 1 and m.holder_status = 'reserved' and not m.recorded
  ),
  charged as (
    select a.*, greatest(0, least(a.actual, a.amount - coalesce(sum(a.actual) over (
             partition by a.holder_id, a.ordinality order by a.position rows between unbounded preceding and 1 preceding), 0)))
             as charged
    from (
      select g.position, g.holder_id, g.prompt_tokens, g.completion_tokens, i.ordinality,
             (i.value ->> 'budget_id')::uuid as budget_id, (i.value ->> 'window_start')::timestamptz as window_start,
             i.value ->> 'unit' as unit, (i.value ->> 'amount')::bigint as amount,
             case i.value ->> 'unit' when 'usd_micros' then g.cost else g.prompt_tokens::bigint + g.completion_tokens end
               as actual
      from settling g, pg_catalog.jsonb_array_elements(g.items) with ordinality as i(value, ordinality)
    ) a
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
      completion_tokens, cost_usd_micros, overflow_usd_micros, cache_hit, status, latency_ms, lease_id, domain,
      dialect, cache_write_tokens, cache_read_tokens)
    select g.request_id, g.tenant_id, g.api_key_id, coalesce(g.user_id, g.holder_user_id), g.provider, g.upstream_model,
           g.model_alias, g.prompt_tokens, g.completion_tokens, g.cost, p.overflow_usd, false, g.status, g.latency_ms,
           case when not p_closes_holder then g.holder_id end, g.domain, g.dialect, g.cache_write_tokens,
           g.cache_read_tokens
    from settling g
    join per_request p on p.position = g.position
    -- Reserve refuses an id that has a usage record, so a closing holder cannot meet one; should it,
    -- private.claim_usage_request_id skips the row: the reservation is still charged and settled, and
    -- usage_invariant_violations() reports the settled reservation without its record, instead of one
    -- batch failing every request in it. Under a lease the record is the only trace, so a clash (a
    -- concurrent settle of the same id) fails the batch, in the trigger or in the check below.
    returning 1
  ),
  -- Each holder's items after the batch: a closing holder's annotated, a lease's drawn down.
  holder_items as (
    select h.holder_id, coalesce(pg_catalog.jsonb_agg(case when d.charged is null then i.value
             else i.value || pg_catalog.jsonb_build_object(
               'amount', (i.value ->> 'amount')::bigint - case when p_closes_holder then 0 else d.charged end,
               'charged', coalesce((i.value ->> 'charged')::bigint, 0) + d.charged,
               'overflow', coalesce((i.value ->> 'overflow')::bigint, 0) + d.overflow) end
             order by i.ordinality) filter (where i.value is not null), '[]'::jsonb) as items
    from (select distinct on (g.holder_id) g.holder_id, g.items from settling g order by g.holder_id, g.position) h
    left join lateral pg_catalog.jsonb_array_elements(h.items) with ordinality as i(value, ordinality) on true
    left join (
      select c.holder_id, c.ordinality, sum(c.charged) as charged, sum(c.actual - c.charged) as overflow
      from charged c
      group by c.holder_id, c.ordinality
    ) d on d.holder_id = h.holder_id and d.ordinality = i.ordinality
    group by h.holder_id
  ),
  drawn as (
    update public.budget_reservations r
    set items = h.items,
        status = case when p_closes_holder then 'settled' else r.status end,
        finished_at = case when p_closes_holder then pg_catalog.now() else r.finished_at end
    from holder_items h
    where r.request_id = h.holder_id
    returning 1
  ),
  counted as (
    update public.budget_leases l
    set requests_used = l.requests_used + n.requests
    from (select g.holder_id, count(*) as requests from settling g group by g.holder_id) n
    where not p_closes_holder and l.reservation_id = n.holder_id
    returning 1
  )
  select
    (select coalesce(pg_catalog.jsonb_agg(case
              when p_closes_holder then private.saga_answer(m.holder_status, m.occurrence, 'settled',
                pg_catalog.jsonb_build_object('status', 'settled', 'items', h.items, 'overflow_usd_micros', p.overflow_usd))
              when m.occurrence > 1 or m.recorded then '{"status": "duplicate"}'::jsonb
              when m.holder_status is distinct from 'reserved' then pg_catalog.jsonb_build_object(
                'status', 'lease_closed', 'lease_status', coalesce(m.holder_status, 'unknown'))
              else pg_catalog.jsonb_build_object('status', 'settled', 'overflow_usd_micros', p.overflow_usd)
            end order by m.position), '[]'::jsonb)
     from matched m
     left join per_request p on p.position = m.position
     left join holder_items h on p_closes_holder and h.holder_id = m.holder_id),
    (select coalesce(pg_catalog.jsonb_agg(d), '[]'::jsonb)
     from (
       select c.budget_id, c.window_start, sum(case when p_closes_holder then c.amount else c.charged end) as released,
              sum(c.charged) as charged, sum(c.actual - c.charged) as overflow, count(*) as requests,
              sum(c.prompt_tokens) as prompt_tokens, sum(c.completion_tokens) as completion_tokens
       from charged c
       group by c.budget_id, c.window_start
     ) d),
    (select count(*) from settling) - (select count(*) from records)
  into v_answers, v_deltas, v_unrecorded;

  if not p_closes_holder and v_unrecorded > 0 then
    raise exception 'a usage record of a request settled under a lease already exists (settled concurrently)'
      using errcode = 'unique_violation';
  end if;
  perform private.apply_counter_deltas(v_deltas);
  return v_answers;
end
$$;
comment on function private.settle_usage(jsonb, boolean) is
  'The one settlement of settle_budgets (p_closes_holder: each request''s own reservation, settled) and settle_leased_usage (its lease, drawn down and left open): usage records, holders and counters in one statement; answers in input order.';
revoke execute on function private.settle_usage(jsonb, boolean) from public, anon, authenticated;
grant execute on function private.settle_usage(jsonb, boolean) to service_role;

-- A settle after settle or release answers 'duplicate' naming the
-- reservation's status and changes nothing; an unknown request id answers
-- 'unknown'; else 'settled' with the annotated items and the overflow.
create function public.settle_budgets(p_settlements jsonb)
returns jsonb
language sql
set search_path = ''
as $$
  select private.settle_usage(p_settlements, true)
$$;
comment on function public.settle_budgets(jsonb) is
  'Settles requests'' own reservations: charges up to the reservation, records overflow and the usage record; answers settled, duplicate or unknown in input order.';
revoke execute on function public.settle_budgets(jsonb) from public, anon, authenticated;
grant execute on function public.settle_budgets(jsonb) to service_role;

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
language sql
set search_path = ''
as $$
  select public.settle_budgets(pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
    'request_id', p_request_id, 'prompt_tokens', p_prompt_tokens, 'completion_tokens', p_completion_tokens,
    'cost_usd_micros', p_cost_usd_micros, 'provider', p_provider, 'upstream_model', p_upstream_model,
    'latency_ms', p_latency_ms, 'status', p_status))) -> 0
$$;
revoke execute on function public.settle_budget(text, integer, integer, bigint, text, text, integer, text) from public, anon, authenticated;
grant execute on function public.settle_budget(text, integer, integer, bigint, text, text, integer, text) to service_role;

-- Release a reservation that will not be used (upstream failure, client gone).
-- Set-based and idempotent like settle, in the same lock order.
create function public.release_budgets(p_releases jsonb)
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
revoke execute on function public.release_budgets(jsonb) from public, anon, authenticated;
grant execute on function public.release_budgets(jsonb) to service_role;

create function public.release_budget(p_request_id text, p_reason text default null)
returns jsonb
language sql
set search_path = ''
as $$
  select public.release_budgets(pg_catalog.jsonb_build_array(
    pg_catalog.jsonb_build_object('request_id', p_request_id, 'reason', p_reason))) -> 0
$$;
revoke execute on function public.release_budget(text, text) from public, anon, authenticated;
grant execute on function public.release_budget(text, text) to service_role;

-- A request answered from the response cache: no reservation, zero cost, recorded;
-- null when the request id is already used.
create function public.record_cache_hit(
  p_request_id text, p_tenant_id uuid, p_api_key_id uuid, p_user_id uuid, p_model_alias text,
  p_prompt_tokens integer, p_completion_tokens integer, p_latency_ms integer default null,
  p_dialect text default 'openai_chat'
)
returns jsonb
language sql
set search_path = ''
as $$
  insert into public.usage_records (
    request_id, tenant_id, api_key_id, user_id, provider, upstream_model, model_alias,
    prompt_tokens, completion_tokens, cost_usd_micros, cache_hit, status, latency_ms, dialect
  )
  select p_request_id, p_tenant_id, p_api_key_id, p_user_id, 'cache', null, p_model_alias,
         p_prompt_tokens, p_completion_tokens, 0, true, 'succeeded', p_latency_ms, p_dialect
  -- A request id is used once: not by a reservation, not by another usage record (no row: the caller refuses).
  where not exists (select 1 from public.budget_reservations r where r.request_id = p_request_id)
    and not exists (select 1 from public.usage_records u where u.request_id = p_request_id)
  returning pg_catalog.jsonb_build_object('status', 'recorded')
$$;
revoke execute on function public.record_cache_hit(text, uuid, uuid, uuid, text, integer, integer, integer, text) from public, anon, authenticated;
grant execute on function public.record_cache_hit(text, uuid, uuid, uuid, text, integer, integer, integer, text) to service_role;

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
revoke execute on function public.reap_expired_reservations(integer) from public, anon, authenticated;
grant execute on function public.reap_expired_reservations(integer) to service_role;

-- Budget leases, continued. Acquiring a lease adds to the counters' reserved,
-- exactly like reserving one request; settling a request under it moves the
-- charge from reserved to spent (the item's amount goes down, its charged up);
-- closing it releases what is left. The CHECK spent + reserved <= limit_amount
-- and the invariant hold at every step, whatever the isolate does; a crashed
-- isolate's lease expires and the reaper releases its remainder like any
-- reservation.
--
-- Leases are granted only far from a limit: each budget and rate limit must
-- keep at least the slice's own size free after the grant. Near a limit the
-- isolate gets 'declined' and uses the exact per-request path, so refusals stay
-- exact except while another isolate's lease is open (bounded by one slice).

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
-- latency_ms, status}], through settle's core (private.settle_usage). In
-- input order, each request takes from its lease's items what is left
-- (least(actual, amount left)); any excess is overflow, recorded and counted
-- outside the limit, as for a reservation. Answers settled (with
-- overflow_usd_micros), duplicate (a usage record exists or an earlier row
-- settles it), or lease_closed (the lease is unknown or no longer open:
-- nothing is written for that row).
create function public.settle_leased_usage(p_settlements jsonb)
returns jsonb
language sql
set search_path = ''
as $$
  select private.settle_usage(p_settlements, false)
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

-- One round trip for the router's ledger: the settlements (per request and
-- leased), lease closes, releases and reservations that queued up while the
-- previous flush was in flight go in one transaction. Separately, a reserve
-- batch and a settle batch each paid a call, a lock on the tenant's counter row
-- (each waiting for the other) and a commit; together they pay each once.
-- Settlements go first, then closes and releases (they free room the
-- reservations may need), then reservations.
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

-- The response cache's purge (a maintenance task, not the request path).
-- Deletes expired entries in batches; returns how many it removed.
create function public.purge_expired_response_cache(p_limit integer default 10000)
returns integer
language sql
set search_path = ''
as $$
  with expired as (
    select tenant_id, cache_key from public.response_cache
    where expires_at < now()
    order by expires_at
    limit p_limit
  ), deleted as (
    delete from public.response_cache c using expired e
    where c.tenant_id = e.tenant_id and c.cache_key = e.cache_key
    returning 1
  )
  select count(*)::integer from deleted
$$;
comment on function public.purge_expired_response_cache(integer) is 'Removes expired response-cache entries, a batch at a time.';
revoke execute on function public.purge_expired_response_cache(integer) from public, anon, authenticated;
grant execute on function public.purge_expired_response_cache(integer) to service_role;

-- Rolls up whole UTC days, oldest first, that ended over a day ago (no
-- request still in flight can write a record dated then), after the newest
-- day already rolled; at most max_days per call. Returns the days rolled.
create function public.rollup_usage(max_days integer default 7)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_after date;
  v_before date := (pg_catalog.now() at time zone 'UTC')::date - 1;
  v_day date;
  v_days integer := 0;
begin
  if max_days is null or max_days < 1 or max_days > 366 then
    raise exception 'max_days must be between 1 and 366' using errcode = 'invalid_parameter_value';
  end if;
  -- One rollup at a time: a day is rolled once.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('switchyard.rollup_usage'));
  select max(r.day) into v_after from public.usage_rollups r;
  loop
    select min((u.created_at at time zone 'UTC')::date) into v_day
    from public.usage_records u
    where u.created_at < (v_before::timestamp at time zone 'UTC')
      and (v_after is null or u.created_at >= ((v_after + 1)::timestamp at time zone 'UTC'));
    exit when v_day is null or v_days >= max_days;
    insert into public.usage_daily (day, tenant_id, api_key_id, provider, upstream_model, model_alias, cache_hit, status,
      dialect, requests, prompt_tokens, completion_tokens, cost_usd_micros, overflow_usd_micros)
    select v_day, u.tenant_id, u.api_key_id, u.provider, u.upstream_model, u.model_alias, u.cache_hit, u.status,
           u.dialect, count(*), sum(u.prompt_tokens), sum(u.completion_tokens), sum(u.cost_usd_micros),
           sum(u.overflow_usd_micros)
    from public.usage_records u
    where u.created_at >= (v_day::timestamp at time zone 'UTC') and u.created_at < ((v_day + 1)::timestamp at time zone 'UTC')
    group by u.tenant_id, u.api_key_id, u.provider, u.upstream_model, u.model_alias, u.cache_hit, u.status, u.dialect;
    insert into public.usage_rollups (day, tenant_id)
    select distinct v_day, d.tenant_id from public.usage_daily d where d.day = v_day;
    v_after := v_day;
    v_days := v_days + 1;
  end loop;
  return v_days;
end
$$;
comment on function public.rollup_usage(integer) is 'Sums whole UTC days of usage_records (ended over a day ago, oldest first, each once) into usage_daily; returns the days rolled.';

-- The conservation check, called by tests, readiness and smoke: every row that
-- breaks it (empty when it holds).
--  over_limit:          spent + reserved > limit (the CHECK makes this impossible; kept as a belt)
--  reserved_mismatch:   a counter's reserved differs from its open reservations
--  spent_mismatch:      a counter's spent differs from what its reservations charged
--  overflow_mismatch:   likewise for overflow
-- A lease charges its items while it is still open, and a lease the reaper
-- released keeps what it charged, so spent and overflow are the sums of
-- charged and overflow over every reservation, whatever its status. (A
-- per-request reservation carries charged only once settled.)
-- The rollup's rows (budget_id null): for every rolled (day, tenant),
-- usage_daily's requests and cost equal the records still there plus those
-- purged. settled_without_usage_record (budget_id null): a request id is
-- admitted once, so every settled per-request reservation has its usage record.
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
           coalesce(sum(it.charged), 0)::bigint as settled_charged,
           coalesce(sum(it.overflow), 0)::bigint as settled_overflow
    from public.usage_counters c
    left join items it on it.budget_id = c.budget_id and it.window_start = c.window_start
    group by c.budget_id, c.window_start, c.limit_amount, c.spent, c.reserved, c.overflow
  ),
  rolled as (
    select r.day, r.tenant_id, r.purged_records, r.purged_cost_usd_micros,
           (select coalesce(sum(d.requests), 0) from public.usage_daily d
            where d.day = r.day and d.tenant_id = r.tenant_id)::bigint as daily_requests,
           (select coalesce(sum(d.cost_usd_micros), 0) from public.usage_daily d
            where d.day = r.day and d.tenant_id = r.tenant_id)::bigint as daily_cost,
           remaining.records, remaining.cost
    from public.usage_rollups r
    cross join lateral (
      select count(*)::bigint as records, coalesce(sum(u.cost_usd_micros), 0)::bigint as cost
      from public.usage_records u
      where u.tenant_id = r.tenant_id
        and u.created_at >= (r.day::timestamp at time zone 'UTC')
        and u.created_at < ((r.day + 1)::timestamp at time zone 'UTC')
    ) remaining
  )
  select budget_id, window_start, 'over_limit', limit_amount, spent + reserved from sums where spent + reserved > limit_amount
  union all
  select budget_id, window_start, 'reserved_mismatch', open_reserved, reserved from sums where reserved <> open_reserved
  union all
  select budget_id, window_start, 'spent_mismatch', settled_charged, spent from sums where spent <> settled_charged
  union all
  select budget_id, window_start, 'overflow_mismatch', settled_overflow, overflow from sums where overflow <> settled_overflow
  union all
  select null::uuid, (day::timestamp at time zone 'UTC'), 'rollup_requests_mismatch', daily_requests, records + purged_records
  from rolled where daily_requests <> records + purged_records
  union all
  select null::uuid, (day::timestamp at time zone 'UTC'), 'rollup_cost_mismatch', daily_cost, cost + purged_cost_usd_micros
  from rolled where daily_cost <> cost + purged_cost_usd_micros
  union all
  -- An answered request is a settled reservation; its usage record must exist (unless retention
  -- purged that day's records after the rollup counted them).
  select null::uuid, r.finished_at, 'settled_without_usage_record', 1::bigint, 0::bigint
  from public.budget_reservations r
  where r.status = 'settled'
    and not exists (select 1 from public.budget_leases l where l.reservation_id = r.request_id)
    and not exists (select 1 from public.usage_records u where u.request_id = r.request_id and u.tenant_id = r.tenant_id)
    and not exists (
      select 1 from public.usage_rollups o
      where o.tenant_id = r.tenant_id and o.day = (r.finished_at at time zone 'UTC')::date and o.purged_records > 0)
$$;
comment on function public.usage_invariant_violations() is 'Empty when every budget window is conserved (spent, reserved and overflow match the reservations and leases, within the limit), every rolled-up day''s totals equal its remaining plus purged usage records, and every settled reservation has its usage record.';
revoke execute on function public.rollup_usage(integer), public.usage_invariant_violations() from public, anon, authenticated;
grant execute on function public.rollup_usage(integer), public.usage_invariant_violations() to service_role;

-- Usage totals that survive retention (GET /ops/usage): summing
-- usage_records alone would lose a rolled-up day once retention purged it.
-- usage_summary takes each rolled-up day that lies
-- wholly inside the range from usage_daily (exact, whether or not its records
-- are still there) and everything else from usage_records; a rolled-up day
-- only partly inside the range is counted from the records it still has.
-- Grouping is by any of provider, model, key, upstream_model and dialect (the
-- others come back null). Security invoker: RLS decides what a member sees.
create function public.usage_summary(p_tenant_id uuid, p_from timestamptz, p_to timestamptz, p_group_by text[])
returns table (
  provider text,
  model text,
  key text,
  upstream_model text,
  dialect text,
  requests bigint,
  prompt_tokens bigint,
  completion_tokens bigint,
  cost_usd_micros bigint,
  cache_hits bigint
)
language sql
stable
set search_path = ''
as $$
  with whole_days as (
    select r.day
    from public.usage_rollups r
    where r.tenant_id = p_tenant_id
      and (r.day::timestamp at time zone 'UTC') >= coalesce(p_from, '-infinity')
      and ((r.day + 1)::timestamp at time zone 'UTC') <= coalesce(p_to, 'infinity')
  ),
  usage as (
    select u.provider, u.model_alias, u.api_key_id, u.upstream_model, u.dialect, 1::bigint as requests,
           u.prompt_tokens::bigint as prompt_tokens, u.completion_tokens::bigint as completion_tokens,
           u.cost_usd_micros, (case when u.cache_hit then 1 else 0 end)::bigint as cache_hits
    from public.usage_records u
    where u.tenant_id = p_tenant_id
      and u.created_at >= coalesce(p_from, '-infinity') and u.created_at < coalesce(p_to, 'infinity')
      and (u.created_at at time zone 'UTC')::date not in (select w.day from whole_days w)
    union all
    select d.provider, d.model_alias, d.api_key_id, d.upstream_model, d.dialect, d.requests, d.prompt_tokens,
           d.completion_tokens, d.cost_usd_micros, case when d.cache_hit then d.requests else 0 end
    from public.usage_daily d
    where d.tenant_id = p_tenant_id and d.day in (select w.day from whole_days w)
  )
  select case when 'provider' = any (p_group_by) then g.provider end,
         case when 'model' = any (p_group_by) then g.model_alias end,
         case when 'key' = any (p_group_by) then g.api_key_id::text end,
         case when 'upstream_model' = any (p_group_by) then g.upstream_model end,
         case when 'dialect' = any (p_group_by) then g.dialect end,
         sum(g.requests)::bigint, sum(g.prompt_tokens)::bigint, sum(g.completion_tokens)::bigint,
         sum(g.cost_usd_micros)::bigint, sum(g.cache_hits)::bigint
  from usage g
  group by 1, 2, 3, 4, 5
  order by 1, 2, 3, 4, 5
$$;
comment on function public.usage_summary(uuid, timestamptz, timestamptz, text[]) is
  'A tenant''s usage totals in [from, to), grouped by any of provider, model, key, upstream_model, dialect: rolled-up days wholly inside the range from usage_daily, the rest from usage_records.';
revoke execute on function public.usage_summary(uuid, timestamptz, timestamptz, text[]) from public, anon;
grant execute on function public.usage_summary(uuid, timestamptz, timestamptz, text[]) to authenticated, service_role;
