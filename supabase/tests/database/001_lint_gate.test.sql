-- The lint gate: every check is empty on the schema as migrated, and each
-- check is shown to fail on an offending object created in this transaction.
begin;
select plan(22);

-- The schema as migrated passes every check.
select is_empty('select * from lint.tables_without_rls()', 'every table in an exposed schema has RLS');
select is_empty('select * from lint.definer_functions_without_search_path()', 'every SECURITY DEFINER function pins search_path');
select is_empty('select * from lint.views_without_security_invoker()', 'every exposed view is security_invoker');
select is_empty('select * from lint.anon_table_writes()', 'anon holds no INSERT, UPDATE, DELETE or TRUNCATE on any table');
select is_empty('select * from lint.anon_executable_functions()', 'anon may execute no function outside the allow-list');
select is_empty('select * from lint.policies_with_per_row_auth_calls()', 'no policy calls auth.uid()/auth.jwt() per row');
select is_empty('select * from lint.unindexed_foreign_keys()', 'every foreign key has an index');

-- Each check catches an offending object.
create table public.lint_probe_no_rls (id int primary key);
select ok(exists (select 1 from lint.tables_without_rls() where object_name = 'public.lint_probe_no_rls'),
  'tables_without_rls finds a table without RLS');
alter table public.lint_probe_no_rls enable row level security;
select ok(not exists (select 1 from lint.tables_without_rls() where object_name = 'public.lint_probe_no_rls'),
  'tables_without_rls passes once RLS is enabled');

create function public.lint_probe_definer() returns int language sql security definer as 'select 1';
select ok(exists (select 1 from lint.definer_functions_without_search_path() where object_name = 'public.lint_probe_definer()'),
  'definer_functions_without_search_path finds a definer function with no search_path');
alter function public.lint_probe_definer() set search_path = '';
select ok(not exists (select 1 from lint.definer_functions_without_search_path() where object_name = 'public.lint_probe_definer()'),
  'definer_functions_without_search_path passes once search_path is pinned');

create view public.lint_probe_view as select 1 as one;
select ok(exists (select 1 from lint.views_without_security_invoker() where object_name = 'public.lint_probe_view'),
  'views_without_security_invoker finds a definer-rights view');
alter view public.lint_probe_view set (security_invoker = true);
select ok(not exists (select 1 from lint.views_without_security_invoker() where object_name = 'public.lint_probe_view'),
  'views_without_security_invoker passes once security_invoker is set');

-- Supabase's default privileges hand every new public table to anon.
select ok(exists (select 1 from lint.anon_table_writes() where object_name = 'public.lint_probe_no_rls'),
  'anon_table_writes finds a table anon can write (default privileges)');
revoke insert, update, delete, truncate on public.lint_probe_no_rls, public.lint_probe_view from anon;
select ok(not exists (select 1 from lint.anon_table_writes() where object_name like 'public.lint_probe%'),
  'anon_table_writes passes once the grants are revoked');

select ok(exists (select 1 from lint.anon_executable_functions() where object_name = 'public.lint_probe_definer()'),
  'anon_executable_functions finds a function anon may execute');
select ok(not exists (select 1 from lint.anon_executable_functions(array['public.lint_probe_definer()']) where object_name = 'public.lint_probe_definer()'),
  'anon_executable_functions accepts a function on the allow-list');

create table public.lint_probe_owned (owner uuid);
alter table public.lint_probe_owned enable row level security;
create policy "probe per row" on public.lint_probe_owned for select using (owner = auth.uid());
select ok(exists (select 1 from lint.policies_with_per_row_auth_calls() where object_name like '%lint_probe_owned: probe per row'),
  'policies_with_per_row_auth_calls finds auth.uid() called per row');
drop policy "probe per row" on public.lint_probe_owned;
create policy "probe initplan" on public.lint_probe_owned for select using (owner = (select auth.uid()));
select ok(not exists (select 1 from lint.policies_with_per_row_auth_calls() where object_name like '%lint_probe_owned%'),
  'policies_with_per_row_auth_calls passes (select auth.uid())');

create table public.lint_probe_fk (id int primary key, tenant_id uuid references public.tenants (id));
select ok(exists (select 1 from lint.unindexed_foreign_keys() where object_name = 'public.lint_probe_fk'),
  'unindexed_foreign_keys finds a foreign key without an index');
create index on public.lint_probe_fk (tenant_id);
select ok(not exists (select 1 from lint.unindexed_foreign_keys() where object_name = 'public.lint_probe_fk'),
  'unindexed_foreign_keys passes once the index exists');

select ok((select count(distinct check_name) from lint.findings()) >= 2,
  'lint.findings reports every failing check in one result');

select * from finish();
rollback;
