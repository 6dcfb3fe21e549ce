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
