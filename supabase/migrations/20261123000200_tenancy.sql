-- Tenancy and the lint gate. Tenancy: tenants, memberships (user -> tenant
-- with a role) and tenant API keys. Every row is scoped to a tenant; members
-- see only their tenants. The lint gate (schema lint, below) checks that every
-- later migration keeps to the rules tenancy sets: RLS on every exposed table,
-- pinned search_path on definer functions, nothing writable by anon.

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

-- updated_at maintenance for tenants (and, in later domains, every table with an updated_at).
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

-- The database lint gate, modelled on Supabase's splinter linter: one
-- function per check, each returning the offending objects (empty = pass).
-- pgTAP asserts every check is empty and proves each can fail; readiness
-- calls the same functions against a deployed database.
create schema if not exists lint;
comment on schema lint is 'Security lint checks over the schema; empty results mean the check passes.';
revoke all on schema lint from public;
grant usage on schema lint to service_role;
alter default privileges in schema lint revoke execute on functions from public;

-- Schemas PostgREST exposes (Supabase defaults).
create function lint.exposed_schemas()
returns text[]
language sql
immutable
set search_path = ''
as $$ select array['public', 'graphql_public'] $$;

-- Schemas owned by the Supabase platform or by tooling, not by this project.
create function lint.platform_schemas()
returns text[]
language sql
immutable
set search_path = ''
as $$
  select array[
    'pg_catalog', 'information_schema', 'pg_toast', 'auth', 'storage', 'realtime', '_realtime',
    'extensions', 'graphql', 'graphql_public', 'vault', 'pgbouncer', 'pgsodium', 'pgsodium_masks',
    'supabase_functions', 'supabase_migrations', 'cron', 'net', '_analytics', 'tests'
  ]
$$;

-- 1. A table in an exposed schema without row level security is readable by
-- anyone holding the anon key. Fix: alter table ... enable row level security.
create function lint.tables_without_rls()
returns table (object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select format('%I.%I', n.nspname, c.relname), 'row level security is disabled'
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p')
    and n.nspname = any (lint.exposed_schemas())
    and not c.relrowsecurity
$$;

-- 2. A SECURITY DEFINER function without a pinned search_path can be hijacked
-- by objects created earlier on the caller's path. Fix: set search_path = ''.
create function lint.definer_functions_without_search_path()
returns table (object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select p.oid::pg_catalog.regprocedure::text, 'security definer function has no pinned search_path'
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  where p.prosecdef
    and n.nspname <> all (lint.platform_schemas())
    and n.nspname not like 'pg\_%'
    and not exists (
      select 1 from pg_catalog.pg_depend d
      where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass and d.objid = p.oid and d.deptype = 'e'
    )
    and not exists (
      select 1 from pg_catalog.unnest(coalesce(p.proconfig, '{}')) setting
      where setting like 'search\_path=%'
    )
$$;

-- 3. A view in an exposed schema runs with its owner's rights unless it is
-- security_invoker, which bypasses RLS. Fix: with (security_invoker = true).
create function lint.views_without_security_invoker()
returns table (object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select format('%I.%I', n.nspname, c.relname), 'view is not security_invoker'
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('v', 'm')
    and n.nspname = any (lint.exposed_schemas())
    and not exists (
      select 1 from pg_catalog.unnest(coalesce(c.reloptions, '{}')) opt
      where opt in ('security_invoker=true', 'security_invoker=on', 'security_invoker=1')
    )
$$;

-- 4. anon must not be able to write any table, whatever RLS says.
-- Fix: revoke insert, update, delete, truncate on ... from anon.
create function lint.anon_table_writes()
returns table (object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select format('%I.%I', n.nspname, c.relname),
         'anon holds ' || pg_catalog.array_to_string(array_remove(array[
           case when pg_catalog.has_table_privilege('anon', c.oid, 'INSERT') then 'INSERT' end,
           case when pg_catalog.has_table_privilege('anon', c.oid, 'UPDATE') then 'UPDATE' end,
           case when pg_catalog.has_table_privilege('anon', c.oid, 'DELETE') then 'DELETE' end,
           case when pg_catalog.has_table_privilege('anon', c.oid, 'TRUNCATE') then 'TRUNCATE' end
         ], null), ', ')
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'f')
    and n.nspname <> all (lint.platform_schemas())
    and n.nspname not like 'pg\_%'
    and pg_catalog.has_table_privilege('anon', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
$$;

-- 5. Functions anon may execute in the project's schemas must be on an
-- explicit allow-list (passed by the caller, as signatures).
-- Fix: revoke execute on function ... from public, anon.
create function lint.anon_executable_functions(allowed text[] default '{}')
returns table (object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select p.oid::pg_catalog.regprocedure::text, 'anon may execute this function'
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  where n.nspname <> all (lint.platform_schemas())
    and n.nspname not like 'pg\_%'
    and pg_catalog.has_function_privilege('anon', p.oid, 'EXECUTE')
    and pg_catalog.has_schema_privilege('anon', n.oid, 'USAGE')
    and p.oid::pg_catalog.regprocedure::text <> all (allowed)
    and not exists (
      select 1 from pg_catalog.pg_depend d
      where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass and d.objid = p.oid and d.deptype = 'e'
    )
$$;

-- 6. splinter 0003 auth_rls_initplan: auth.uid()/auth.jwt()/auth.role() in a
-- policy is evaluated per row unless wrapped in a sub-select.
-- Fix: write (select auth.uid()).
create function lint.policies_with_per_row_auth_calls()
returns table (object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select format('%I.%I: %s', p.schemaname, p.tablename, p.policyname),
         'calls auth.uid()/auth.jwt()/auth.role() per row; wrap it as (select auth.uid())'
  from pg_catalog.pg_policies p
  where p.schemaname <> all (lint.platform_schemas())
    and (
      (coalesce(p.qual, '') ~ 'auth\.(uid|jwt|role)\(\)'
        and coalesce(p.qual, '') !~* 'select\s+auth\.(uid|jwt|role)\(\)')
      or (coalesce(p.with_check, '') ~ 'auth\.(uid|jwt|role)\(\)'
        and coalesce(p.with_check, '') !~* 'select\s+auth\.(uid|jwt|role)\(\)')
    )
$$;

-- 7. splinter 0001 unindexed_foreign_keys: deletes on the referenced table
-- and tenant-scoped joins scan the whole referencing table.
-- Fix: create an index whose leading columns are the foreign key columns.
create function lint.unindexed_foreign_keys()
returns table (object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select format('%I.%I', n.nspname, c.relname),
         format('foreign key %I has no index on its columns', con.conname)
  from pg_catalog.pg_constraint con
  join pg_catalog.pg_class c on c.oid = con.conrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where con.contype = 'f'
    and n.nspname <> all (lint.platform_schemas())
    and n.nspname not like 'pg\_%'
    and not exists (
      select 1 from pg_catalog.pg_index i
      where i.indrelid = con.conrelid
        and (i.indkey::int2[])[0:pg_catalog.cardinality(con.conkey) - 1] operator(pg_catalog.@>) con.conkey
        and (i.indkey::int2[])[0:pg_catalog.cardinality(con.conkey) - 1] operator(pg_catalog.<@) con.conkey
    )
$$;

-- Every check in one result, for readiness and the go/no-go report.
create function lint.findings(anon_allowed_functions text[] default '{}')
returns table (check_name text, object_name text, detail text)
language sql
stable
set search_path = ''
as $$
  select 'tables_without_rls', f.object_name, f.detail from lint.tables_without_rls() f
  union all
  select 'definer_functions_without_search_path', f.object_name, f.detail from lint.definer_functions_without_search_path() f
  union all
  select 'views_without_security_invoker', f.object_name, f.detail from lint.views_without_security_invoker() f
  union all
  select 'anon_table_writes', f.object_name, f.detail from lint.anon_table_writes() f
  union all
  select 'anon_executable_functions', f.object_name, f.detail from lint.anon_executable_functions(anon_allowed_functions) f
  union all
  select 'policies_with_per_row_auth_calls', f.object_name, f.detail from lint.policies_with_per_row_auth_calls() f
  union all
  select 'unindexed_foreign_keys', f.object_name, f.detail from lint.unindexed_foreign_keys() f
$$;

grant execute on all functions in schema lint to service_role;
