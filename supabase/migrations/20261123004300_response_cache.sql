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
