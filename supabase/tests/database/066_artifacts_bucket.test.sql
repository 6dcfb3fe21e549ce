-- The artifacts bucket (migration 20261123000900_artifacts.sql). Here, as on any plain
-- PostgreSQL, there is no storage schema: the migration did nothing and
-- installing again does nothing. Then, inside this rolled-back transaction
-- only, a stand-in for the two Supabase Storage tables the installer touches
-- (the columns, grants and RLS Supabase gives storage.buckets and
-- storage.objects; never part of the schema) shows the bucket it creates and
-- its policies per actor down to anon: only the service role writes, members
-- read their own tenant's objects, and a careless permissive policy of
-- another bucket does not open `artifacts`.
begin;
select plan(22);

-- Without Storage: nothing.
select hasnt_schema('storage', 'there is no storage schema on a plain PostgreSQL');
select is(private.install_artifacts_bucket(), false, 'without the storage tables the installer does nothing');
select hasnt_schema('storage', 'and creates no storage schema');

-- The stand-in for Supabase's storage tables (rolled back with the test).
create schema storage;
grant usage on schema storage to anon, authenticated, service_role;
create table storage.buckets (
  id text primary key,
  name text not null unique,
  public boolean default false,
  created_at timestamptz default now()
);
create table storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  metadata jsonb,
  created_at timestamptz default now()
);
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true);
-- Careless permissive policies another bucket might have: anyone may do anything.
create policy "anyone inserts" on storage.objects for insert to anon, authenticated with check (true);
create policy "anyone reads" on storage.objects for select to anon, authenticated using (true);
create policy "anyone deletes" on storage.objects for delete to anon, authenticated using (true);
create policy "anyone updates" on storage.objects for update to anon, authenticated using (true) with check (true);

-- The installer's `drop policy if exists` notices are not test output.
set local client_min_messages = warning;
select is(private.install_artifacts_bucket(), true, 'with the storage tables the installer runs');
update storage.buckets set public = true where id = 'artifacts';
select is(private.install_artifacts_bucket(), true, 'and runs again');
select results_eq($$select id, public from storage.buckets where id = 'artifacts'$$, $$values ('artifacts', false)$$,
  'one private bucket artifacts, made private again if someone opened it');
select results_eq($$select count(*)::int from pg_policies where schemaname = 'storage' and policyname like 'Artifacts:%'$$,
  $$values (6)$$, 'six policies, not duplicated by the second run');

select tests.create_user('bucket.member.a@example.test') as member_a \gset
select tests.create_user('bucket.member.b@example.test') as member_b \gset
insert into public.tenants (id, name, slug) values
  ('a6600000-0000-0000-0000-000000000001', 'Bucket A', 'bucket-a'),
  ('b6600000-0000-0000-0000-000000000002', 'Bucket B', 'bucket-b');
insert into public.memberships (tenant_id, user_id, role) values
  ('a6600000-0000-0000-0000-000000000001', :'member_a', 'member'),
  ('b6600000-0000-0000-0000-000000000002', :'member_b', 'member');

-- The service role (the worker's uploads) writes.
select tests.authenticate_as_service_role();
select lives_ok($$insert into storage.objects (bucket_id, name) values
  ('artifacts', 'a6600000-0000-0000-0000-000000000001/job-1/report.csv'),
  ('artifacts', 'b6600000-0000-0000-0000-000000000002/job-2/report.csv')$$,
  'the service role uploads into artifacts');
select lives_ok($$update storage.objects set metadata = '{"size":1}' where bucket_id = 'artifacts'$$,
  'the service role updates artifacts');

-- anon: reads none, writes none; other buckets are as their policies say.
select tests.authenticate_as_anon();
select is_empty($$select 1 from storage.objects where bucket_id = 'artifacts'$$, 'anon reads no artifact');
select throws_ok($$insert into storage.objects (bucket_id, name) values ('artifacts', 'a6600000-0000-0000-0000-000000000001/x/y')$$,
  '42501', 'new row violates row-level security policy "Artifacts: only the service role inserts" for table "objects"', 'anon cannot upload into artifacts');
select lives_ok($$insert into storage.objects (bucket_id, name) values ('avatars', 'anon.png')$$,
  'while another bucket''s own policy still lets anon upload there');
select results_eq($$with gone as (delete from storage.objects where bucket_id = 'artifacts' returning 1) select count(*)::int from gone$$,
  $$values (0)$$, 'anon deletes no artifact');

-- A member of A: A's objects only, read-only.
select tests.authenticate_as(:'member_a');
select results_eq($$select name from storage.objects where bucket_id = 'artifacts'$$,
  $$values ('a6600000-0000-0000-0000-000000000001/job-1/report.csv')$$, 'a member reads its tenant''s objects only');
select throws_ok($$insert into storage.objects (bucket_id, name) values ('artifacts', 'a6600000-0000-0000-0000-000000000001/job-1/forged.csv')$$,
  '42501', 'new row violates row-level security policy "Artifacts: only the service role inserts" for table "objects"', 'a member cannot upload into artifacts, even under its tenant');
select results_eq($$with changed as (update storage.objects set name = name || '.x' where bucket_id = 'artifacts' returning 1) select count(*)::int from changed$$,
  $$values (0)$$, 'a member changes no artifact');
select results_eq($$with gone as (delete from storage.objects where bucket_id = 'artifacts' returning 1) select count(*)::int from gone$$,
  $$values (0)$$, 'a member deletes no artifact');
select throws_ok($$update storage.objects set bucket_id = 'artifacts' where bucket_id = 'avatars'$$,
  '42501', 'new row violates row-level security policy "Artifacts: only the service role updates" for table "objects"', 'a member cannot move an object into artifacts');
select results_eq($$select count(*)::int from storage.objects where bucket_id = 'avatars'$$, $$values (1)$$,
  'other buckets still follow their own policies');

-- A member of B: B's objects only.
select tests.authenticate_as(:'member_b');
select results_eq($$select name from storage.objects where bucket_id = 'artifacts'$$,
  $$values ('b6600000-0000-0000-0000-000000000002/job-2/report.csv')$$, 'a member of B reads B''s objects only');

-- The service role still sees both, and the lint gate has nothing to say about the installer.
select tests.authenticate_as_service_role();
select results_eq($$select count(*)::int from storage.objects where bucket_id = 'artifacts'$$, $$values (2)$$,
  'nothing was uploaded, changed or deleted by anyone but the service role');
select tests.clear_authentication();
select is_empty($$select * from lint.findings() where object_name ~ 'artifacts_bucket'$$,
  'the lint gate finds nothing on the installer');

select * from finish();
rollback;
