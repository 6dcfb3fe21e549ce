-- Routing policies: which models serve a requested alias (and optional domain
-- tag), in what order, with A/B buckets. Global (tenant_id null) or per tenant;
-- a tenant's policy wins over a global one.

create table public.routing_policies (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid references public.tenants (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  model_alias text not null check (length(model_alias) between 1 and 128),
  -- Matches the x-switchyard-domain header; null matches any request.
  domain text check (domain ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  strategy text not null default 'priority' check (strategy in ('priority', 'cost', 'latency', 'weighted')),
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
  check ((ab_hash_by is null) = (ab_buckets is null))
);
comment on table public.routing_policies is 'How the router orders candidate models for a model alias and domain, globally or per tenant.';
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
