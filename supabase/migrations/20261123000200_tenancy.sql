-- Tenancy: tenants, memberships (user -> tenant with a role) and tenant API
-- keys. Every row is scoped to a tenant; members see only their tenants.

create table public.tenants (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.tenants is 'A customer organisation; the unit of isolation for keys, budgets, jobs and usage.';

create table public.memberships (
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('member', 'admin', 'operator')),
  created_at timestamptz not null default now(),
  primary key (tenant_id, user_id)
);
comment on table public.memberships is 'Which users belong to which tenant, and with what role (member, admin, operator).';
create index memberships_user_id_idx on public.memberships (user_id);

create table public.tenant_api_keys (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  -- Only the SHA-256 of the key is kept; the key itself is shown once.
  key_hash text not null unique check (key_hash ~ '^[0-9a-f]{64}$'),
  prefix text not null check (prefix ~ '^sy_[A-Za-z0-9_-]{4,16}$'),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
comment on table public.tenant_api_keys is 'API keys a tenant''s applications use instead of a user JWT; stored as SHA-256 hashes only.';
create index tenant_api_keys_tenant_id_idx on public.tenant_api_keys (tenant_id);
create index tenant_api_keys_created_by_idx on public.tenant_api_keys (created_by);

-- The tenants the current user belongs to, optionally only with given roles.
-- SECURITY DEFINER so that policies on memberships do not recurse into
-- themselves; search_path pinned and every name qualified.
create function private.tenant_ids_of_current_user(required_roles text[] default null)
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.tenant_id
  from public.memberships m
  where m.user_id = (select auth.uid())
    and (required_roles is null or m.role = any (required_roles))
$$;
comment on function private.tenant_ids_of_current_user(text[]) is 'Tenant ids of auth.uid(), filtered by role; used by RLS policies.';
revoke execute on function private.tenant_ids_of_current_user(text[]) from public, anon;
grant execute on function private.tenant_ids_of_current_user(text[]) to authenticated, service_role;

alter table public.tenants enable row level security;
alter table public.memberships enable row level security;
alter table public.tenant_api_keys enable row level security;

-- Supabase grants everything on new public tables to anon; tenancy data is
-- never anon's business.
revoke all on table public.tenants, public.memberships, public.tenant_api_keys from anon;
revoke all on table public.tenants, public.memberships, public.tenant_api_keys from authenticated;
grant select, update on table public.tenants to authenticated;
grant select, insert, update, delete on table public.memberships to authenticated;
-- key_hash is not readable by tenant users, only metadata.
grant select (id, tenant_id, name, prefix, created_by, created_at, revoked_at) on table public.tenant_api_keys to authenticated;
grant insert (tenant_id, name, key_hash, prefix, created_by) on table public.tenant_api_keys to authenticated;
grant update (revoked_at) on table public.tenant_api_keys to authenticated;
grant all on table public.tenants, public.memberships, public.tenant_api_keys to service_role;

create policy "Members can read their tenants"
  on public.tenants for select to authenticated
  using (id in (select private.tenant_ids_of_current_user()));

create policy "Admins can update their tenants"
  on public.tenants for update to authenticated
  using (id in (select private.tenant_ids_of_current_user(array['admin'])))
  with check (id in (select private.tenant_ids_of_current_user(array['admin'])));

create policy "Members can read memberships of their tenants"
  on public.memberships for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

create policy "Admins can add members to their tenants"
  on public.memberships for insert to authenticated
  with check (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])));

create policy "Admins can change roles in their tenants"
  on public.memberships for update to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])))
  with check (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])));

create policy "Admins can remove members from their tenants"
  on public.memberships for delete to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])));

create policy "Members can read their tenants' API key metadata"
  on public.tenant_api_keys for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

create policy "Admins can create API keys for their tenants"
  on public.tenant_api_keys for insert to authenticated
  with check (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])));

create policy "Admins can revoke API keys of their tenants"
  on public.tenant_api_keys for update to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])))
  with check (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])));

-- A revoked key stays revoked: revoked_at can be set once, never cleared.
create function private.refuse_unrevoking_api_keys()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'API key % is already revoked', old.id using errcode = 'check_violation';
  end if;
  return new;
end
$$;
create trigger tenant_api_keys_revocation_is_final
  before update on public.tenant_api_keys
  for each row execute function private.refuse_unrevoking_api_keys();

-- Resolve a tenant API key by its hash (the auth middleware calls this with
-- the service connection). Revoked keys resolve to nothing.
create function private.resolve_tenant_api_key(presented_key_hash text)
returns table (api_key_id uuid, tenant_id uuid)
language sql
stable
security definer
set search_path = ''
as $$
  select k.id, k.tenant_id
  from public.tenant_api_keys k
  where k.key_hash = presented_key_hash
    and k.revoked_at is null
$$;
comment on function private.resolve_tenant_api_key(text) is 'Tenant and key id for an unrevoked API key hash.';
revoke execute on function private.resolve_tenant_api_key(text) from public, anon, authenticated;
grant execute on function private.resolve_tenant_api_key(text) to service_role;

-- updated_at maintenance for tenants.
create function private.touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
create trigger tenants_touch_updated_at
  before update on public.tenants
  for each row execute function private.touch_updated_at();
