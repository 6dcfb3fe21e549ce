-- Test helpers in the spirit of basejump's supabase-test-helpers, written
-- here. pg_prove runs files in name order, so this one runs first; it keeps
-- its objects (schema tests) for the files after it.
create extension if not exists pgtap with schema extensions;

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_user(email text)
returns uuid
language sql
as $$
  insert into auth.users (email) values (email) returning id
$$;

-- Act as a signed-in user for the rest of the transaction, as PostgREST does.
create or replace function tests.authenticate_as(user_id uuid)
returns void
language plpgsql
as $$
begin
  perform set_config('request.jwt.claims',
    json_build_object('sub', user_id, 'role', 'authenticated', 'aud', 'authenticated')::text, true);
  perform set_config('role', 'authenticated', true);
end
$$;

create or replace function tests.authenticate_as_anon()
returns void
language plpgsql
as $$
begin
  perform set_config('request.jwt.claims', json_build_object('role', 'anon')::text, true);
  perform set_config('role', 'anon', true);
end
$$;

create or replace function tests.authenticate_as_service_role()
returns void
language plpgsql
as $$
begin
  perform set_config('request.jwt.claims', json_build_object('role', 'service_role')::text, true);
  perform set_config('role', 'service_role', true);
end
$$;

-- Back to the session user (the test runner's superuser).
create or replace function tests.clear_authentication()
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
end
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

begin;
select plan(2);
select has_function('tests', 'authenticate_as', array['uuid'], 'helper tests.authenticate_as exists');
select has_function('tests', 'clear_authentication', 'helper tests.clear_authentication exists');
select * from finish();
rollback;
