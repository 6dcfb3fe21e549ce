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
