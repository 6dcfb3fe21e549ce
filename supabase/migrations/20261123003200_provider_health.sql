-- Provider health, fed by request outcomes (aggregated in each isolate and
-- flushed in batches) and by the scheduled provider-health probe. The router
-- skips models whose provider is down or cooling down.

create table public.provider_health (
  provider_id uuid not null references public.llm_providers (id) on delete cascade,
  -- The upstream model the figures are about; '' for provider-wide probes.
  upstream_model text not null default '',
  status text not null default 'up' check (status in ('up', 'degraded', 'down')),
  p50_latency_ms integer check (p50_latency_ms >= 0),
  p95_latency_ms integer check (p95_latency_ms >= 0),
  error_rate real not null default 0 check (error_rate between 0 and 1),
  sample_count integer not null default 0 check (sample_count >= 0),
  consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
  -- While in the future the router does not send traffic here (circuit open).
  cooldown_until timestamptz,
  last_error text,
  updated_at timestamptz not null default now(),
  primary key (provider_id, upstream_model)
);
comment on table public.provider_health is 'Latency, error rate and circuit state per provider and upstream model.';

alter table public.provider_health enable row level security;
revoke all on table public.provider_health from anon, authenticated;
grant select on table public.provider_health to authenticated;
grant all on table public.provider_health to service_role;

create policy "Signed-in users can read provider health"
  on public.provider_health for select to authenticated using (true);

-- Merges one batch of outcomes, as aggregated by an isolate:
-- [{provider_id, upstream_model, requests, failures, p50_ms, p95_ms,
--   consecutive_failures, cooldown_until, last_error}].
-- Figures are blended with what is stored, weighted by sample counts, so many
-- isolates flushing independently converge on the same picture.
create function public.record_provider_outcomes(outcomes jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  merged integer;
begin
  insert into public.provider_health as h (
    provider_id, upstream_model, status, p50_latency_ms, p95_latency_ms, error_rate,
    sample_count, consecutive_failures, cooldown_until, last_error, updated_at
  )
  select o.provider_id, coalesce(o.upstream_model, ''),
         case when o.cooldown_until > now() then 'down'
              when o.requests > 0 and o.failures::real / o.requests > 0.2 then 'degraded'
              else 'up' end,
         o.p50_ms, o.p95_ms,
         case when o.requests > 0 then o.failures::real / o.requests else 0 end,
         o.requests, o.consecutive_failures, o.cooldown_until, left(o.last_error, 500), now()
  from jsonb_to_recordset(outcomes) as o(
    provider_id uuid, upstream_model text, requests integer, failures integer, p50_ms integer,
    p95_ms integer, consecutive_failures integer, cooldown_until timestamptz, last_error text)
  where o.requests >= 0 and o.failures between 0 and o.requests
  on conflict (provider_id, upstream_model) do update set
    p50_latency_ms = coalesce(
      ((coalesce(h.p50_latency_ms, excluded.p50_latency_ms)::bigint * least(h.sample_count, 1000)
        + coalesce(excluded.p50_latency_ms, h.p50_latency_ms)::bigint * excluded.sample_count)
       / nullif(least(h.sample_count, 1000) + excluded.sample_count, 0))::integer,
      excluded.p50_latency_ms, h.p50_latency_ms),
    p95_latency_ms = coalesce(
      ((coalesce(h.p95_latency_ms, excluded.p95_latency_ms)::bigint * least(h.sample_count, 1000)
        + coalesce(excluded.p95_latency_ms, h.p95_latency_ms)::bigint * excluded.sample_count)
       / nullif(least(h.sample_count, 1000) + excluded.sample_count, 0))::integer,
      excluded.p95_latency_ms, h.p95_latency_ms),
    -- Recent outcomes weigh as much as at most 1000 older samples.
    error_rate = case when least(h.sample_count, 1000) + excluded.sample_count = 0 then h.error_rate
      else (h.error_rate * least(h.sample_count, 1000) + excluded.error_rate * excluded.sample_count)
           / (least(h.sample_count, 1000) + excluded.sample_count) end,
    sample_count = h.sample_count + excluded.sample_count,
    consecutive_failures = excluded.consecutive_failures,
    cooldown_until = greatest(h.cooldown_until, excluded.cooldown_until),
    last_error = coalesce(excluded.last_error, h.last_error),
    status = case
      when greatest(h.cooldown_until, excluded.cooldown_until) > now() then 'down'
      when (h.error_rate * least(h.sample_count, 1000) + excluded.error_rate * excluded.sample_count)
           / nullif(least(h.sample_count, 1000) + excluded.sample_count, 0) > 0.2 then 'degraded'
      else 'up' end,
    updated_at = now();
  get diagnostics merged = row_count;
  return merged;
end
$$;
comment on function public.record_provider_outcomes(jsonb) is 'Merges a batch of request outcomes into provider_health (called by the router, not per request).';
revoke execute on function public.record_provider_outcomes(jsonb) from public, anon, authenticated;
grant execute on function public.record_provider_outcomes(jsonb) to service_role;
