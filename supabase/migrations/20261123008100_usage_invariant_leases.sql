-- The conservation invariant with budget leases (migration 20261123008000): a
-- lease charges its items while it is still open, and a lease the reaper
-- released keeps what it charged, so spent and overflow are the sums of
-- charged and overflow over every reservation, whatever its status. (A
-- per-request reservation carries charged only once settled, so for those the
-- sums are what they were.) The rest is as migration 20261123006200 left it.
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
