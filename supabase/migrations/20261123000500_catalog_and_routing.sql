-- The LLM catalog: upstream providers and the models each serves, with the
-- prices the router estimates and settles with. Data (rows) comes from
-- supabase/seed.sql or the ops API, never from TypeScript.

create table public.llm_providers (
  id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  kind text not null check (kind in ('openai', 'openai_compatible', 'azure_openai', 'anthropic', 'gemini')),
  base_url text not null check (base_url ~ '^https?://'),
  -- Azure api-version, Anthropic anthropic-version, Gemini path version.
  api_version text,
  region text,
  enabled boolean not null default true,
  connect_timeout_ms integer not null default 5000 check (connect_timeout_ms between 100 and 60000),
  first_byte_timeout_ms integer not null default 30000 check (first_byte_timeout_ms between 100 and 600000),
  total_timeout_ms integer not null default 120000 check (total_timeout_ms between 100 and 900000),
  max_retries integer not null default 2 check (max_retries between 0 and 5),
  -- Name under which the key vault stores this provider's API key (default: the slug).
  key_name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (first_byte_timeout_ms <= total_timeout_ms)
);
comment on table public.llm_providers is 'Upstream LLM providers (an API base URL of one wire format) the router can call.';

create table public.llm_models (
  id uuid primary key default gen_random_uuid(),
  provider_id uuid not null references public.llm_providers (id) on delete cascade,
  -- The name clients ask for (`model` in the request); several providers may serve one alias.
  alias text not null check (alias ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'),
  upstream_model text not null check (length(upstream_model) between 1 and 200),
  -- USD micro-units (1e-6 USD) per million tokens.
  input_cost_per_million bigint not null check (input_cost_per_million >= 0),
  output_cost_per_million bigint not null check (output_cost_per_million >= 0),
  -- Prompt-cache writes and reads (Anthropic cache_creation/cache_read_input_tokens, OpenAI
  -- cached_tokens); null: charged at input_cost_per_million.
  cache_write_cost_per_million bigint check (cache_write_cost_per_million >= 0),
  cache_read_cost_per_million bigint check (cache_read_cost_per_million >= 0),
  context_window integer not null check (context_window > 0),
  max_output_tokens integer not null check (max_output_tokens > 0),
  capabilities text[] not null default array['chat', 'stream']
    check (capabilities <@ array['chat', 'embeddings', 'tools', 'vision', 'stream', 'json']),
  regions text[] not null default '{}',
  -- Order among models of one alias when no policy says otherwise (lower first).
  priority integer not null default 100,
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (provider_id, alias)
);
comment on table public.llm_models is 'Models per provider: public alias, upstream name, prices per million tokens, limits and capabilities.';
comment on column public.llm_models.cache_write_cost_per_million is 'USD micro-units per million prompt tokens written to the provider''s prompt cache; null = the input price.';
comment on column public.llm_models.cache_read_cost_per_million is 'USD micro-units per million prompt tokens read from the provider''s prompt cache; null = the input price.';
create index llm_models_alias_idx on public.llm_models (alias) where enabled;

alter table public.llm_providers enable row level security;
alter table public.llm_models enable row level security;

revoke all on table public.llm_providers, public.llm_models from anon, authenticated;
grant select on table public.llm_providers, public.llm_models to authenticated;
grant all on table public.llm_providers, public.llm_models to service_role;

-- The catalog is not secret (no keys live here); signed-in users may read it.
create policy "Signed-in users can read the provider catalog"
  on public.llm_providers for select to authenticated using (true);
create policy "Signed-in users can read the model catalog"
  on public.llm_models for select to authenticated using (true);

create trigger llm_providers_touch_updated_at
  before update on public.llm_providers
  for each row execute function private.touch_updated_at();
create trigger llm_models_touch_updated_at
  before update on public.llm_models
  for each row execute function private.touch_updated_at();

-- Routing policies: which models serve a requested alias (and optional domain
-- tag), in what order, with A/B buckets. Global (tenant_id null) or per tenant;
-- a tenant's policy wins over a global one. Reputation-aware settings:
-- strategy 'quality' (candidates by reputation, cost as the tiebreak), a
-- min_reputation guard any strategy can use (a model scoring below it is
-- skipped while an alternative exists), and the share of traffic that
-- explores other candidates so their scores can recover (the reputation
-- migration computes the scores). The first entry of ab_buckets is the
-- control bucket: a bucket whose budget cap is spent falls back to it.

create table public.routing_policies (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid references public.tenants (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  model_alias text not null check (length(model_alias) between 1 and 128),
  -- Matches the x-switchyard-domain header; null matches any request.
  domain text check (domain ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  strategy text not null default 'priority' check (strategy in ('priority', 'cost', 'latency', 'weighted', 'quality')),
  -- A/B split: a stable hash of the tenant or user picks a bucket by percentage.
  ab_hash_by text check (ab_hash_by in ('tenant', 'user')),
  ab_buckets jsonb check (ab_buckets is null or jsonb_typeof(ab_buckets) = 'array'),
  -- Aliases tried, in order, after every target of this policy failed.
  fallback_aliases text[] not null default '{}',
  -- Exact-match response cache for requests this policy serves (seconds; null = off).
  cache_ttl_seconds integer check (cache_ttl_seconds between 1 and 86400),
  enabled boolean not null default true,
  -- Lower is evaluated first among policies matching the same request.
  priority integer not null default 100,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  min_reputation real check (min_reputation between 0 and 1),
  exploration_share real not null default 0.05 check (exploration_share between 0 and 1),
  check ((ab_hash_by is null) = (ab_buckets is null))
);
comment on table public.routing_policies is 'How the router orders candidate models for a model alias and domain, globally or per tenant.';
comment on column public.routing_policies.min_reputation is 'Models scoring below this reputation are skipped while another candidate exists; null = no guard.';
comment on column public.routing_policies.exploration_share is 'Share of requests (0..1) sent first to another candidate than the best one, so its reputation can recover.';
create index routing_policies_tenant_id_idx on public.routing_policies (tenant_id);
create index routing_policies_alias_idx on public.routing_policies (model_alias) where enabled;

create table public.routing_policy_targets (
  policy_id uuid not null references public.routing_policies (id) on delete cascade,
  model_id uuid not null references public.llm_models (id) on delete cascade,
  position integer not null default 0,
  weight integer not null default 1 check (weight between 0 and 10000),
  -- Only requests hashed into this A/B bucket use this target; null = every bucket.
  bucket text,
  primary key (policy_id, model_id)
);
comment on table public.routing_policy_targets is 'The models a routing policy chooses among, with order, weight and A/B bucket.';
create index routing_policy_targets_model_id_idx on public.routing_policy_targets (model_id);

alter table public.routing_policies enable row level security;
alter table public.routing_policy_targets enable row level security;

revoke all on table public.routing_policies, public.routing_policy_targets from anon, authenticated;
grant select on table public.routing_policies, public.routing_policy_targets to authenticated;
grant all on table public.routing_policies, public.routing_policy_targets to service_role;

create policy "Members can read global policies and their tenants' policies"
  on public.routing_policies for select to authenticated
  using (tenant_id is null or tenant_id in (select private.tenant_ids_of_current_user()));

create policy "Members can read targets of policies they can read"
  on public.routing_policy_targets for select to authenticated
  using (policy_id in (
    select p.id from public.routing_policies p
    where p.tenant_id is null or p.tenant_id in (select private.tenant_ids_of_current_user())
  ));

create trigger routing_policies_touch_updated_at
  before update on public.routing_policies
  for each row execute function private.touch_updated_at();

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
