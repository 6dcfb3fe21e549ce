-- Tenant economics, tables: budgets and their per-window counters, per-request
-- reservations, usage records and rate limits. The conservation invariant
-- (spent + reserved <= limit) is a CHECK on the counter row: no code path can
-- break it.

create table public.budgets (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  scope text not null check (scope in ('tenant', 'api_key', 'model')),
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
  check ((scope = 'api_key') = (api_key_id is not null)),
  check ((scope = 'model') = (model_alias is not null))
);
comment on table public.budgets is 'Spending limits per tenant, tenant API key or tenant+model, in USD micro-units or tokens, per day, month or in total.';
create unique index budgets_one_per_target_idx on public.budgets (
  tenant_id, scope, coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), coalesce(model_alias, ''), unit, period
);
create index budgets_api_key_id_idx on public.budgets (api_key_id);

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
  check ((status = 'reserved') = (finished_at is null))
);
comment on table public.budget_reservations is 'One row per LLM request: what it reserved against which budgets, and whether it was settled or released.';
create index budget_reservations_tenant_id_idx on public.budget_reservations (tenant_id);
create index budget_reservations_api_key_id_idx on public.budget_reservations (api_key_id);
create index budget_reservations_open_idx on public.budget_reservations (expires_at) where status = 'reserved';

create table public.usage_records (
  request_id text primary key check (length(request_id) between 1 and 128),
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
  created_at timestamptz not null default now()
);
comment on table public.usage_records is 'One row per finished LLM request: tokens, cost, provider, model, cache hit and latency.';
create index usage_records_tenant_created_idx on public.usage_records (tenant_id, created_at);
create index usage_records_api_key_id_idx on public.usage_records (api_key_id);

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
