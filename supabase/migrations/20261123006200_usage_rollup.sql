-- Usage rollup: whole UTC days of usage_records are summed into usage_daily
-- (per tenant, key, provider, models, cache hit and status) before
-- retention may delete them, so totals stay exact after the purge.
-- usage_rollups keeps, per rolled (day, tenant), how much the purge removed;
-- usage_invariant_violations() now also proves, for every rolled day and
-- tenant, daily totals = records still there + records purged.

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
  requests bigint not null check (requests >= 0),
  prompt_tokens bigint not null check (prompt_tokens >= 0),
  completion_tokens bigint not null check (completion_tokens >= 0),
  cost_usd_micros bigint not null check (cost_usd_micros >= 0),
  overflow_usd_micros bigint not null check (overflow_usd_micros >= 0)
);
comment on table public.usage_daily is 'Exact daily totals of usage_records per tenant, key, provider, models, cache hit and status; written once per day by rollup_usage().';
create unique index usage_daily_dimensions_idx on public.usage_daily
  (day, tenant_id, api_key_id, provider, upstream_model, model_alias, cache_hit, status) nulls not distinct;
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
      requests, prompt_tokens, completion_tokens, cost_usd_micros, overflow_usd_micros)
    select v_day, u.tenant_id, u.api_key_id, u.provider, u.upstream_model, u.model_alias, u.cache_hit, u.status,
           count(*), sum(u.prompt_tokens), sum(u.completion_tokens), sum(u.cost_usd_micros), sum(u.overflow_usd_micros)
    from public.usage_records u
    where u.created_at >= (v_day::timestamp at time zone 'UTC') and u.created_at < ((v_day + 1)::timestamp at time zone 'UTC')
    group by u.tenant_id, u.api_key_id, u.provider, u.upstream_model, u.model_alias, u.cache_hit, u.status;
    insert into public.usage_rollups (day, tenant_id)
    select distinct v_day, d.tenant_id from public.usage_daily d where d.day = v_day;
    v_after := v_day;
    v_days := v_days + 1;
  end loop;
  return v_days;
end
$$;
comment on function public.rollup_usage(integer) is 'Sums whole UTC days of usage_records (ended over a day ago, oldest first, each once) into usage_daily; returns the days rolled.';

-- The conservation invariant, plus the rollup's: for every rolled (day,
-- tenant), usage_daily's requests and cost equal the records still there
-- plus those purged. budget_id is null for the rollup rows.
create or replace function public.usage_invariant_violations()
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
$$;
comment on function public.usage_invariant_violations() is 'Empty when every budget window is conserved (spent, reserved and overflow match the reservations, within the limit) and every rolled-up day''s totals equal its remaining plus purged usage records.';

revoke execute on function public.rollup_usage(integer), public.usage_invariant_violations() from public, anon, authenticated;
grant execute on function public.rollup_usage(integer), public.usage_invariant_violations() to service_role;

insert into public.schedules (name, interval_seconds, kind, sql_call, description) values
  ('usage_rollup', 3600, 'sql', 'public.rollup_usage()',
   'Sums whole days of usage_records into usage_daily (exact totals) before retention may delete them.');
