-- Stored responses (issue 18): only the service role reads, stores and
-- deletes them; the hourly purge deletes expired turns and keeps the others.
begin;
select plan(7);

insert into public.tenants (id, name, slug) values
  ('eeeeeeee-0000-0000-0000-000000000800', 'Stored responses', 'stored-responses');
insert into public.stored_responses (tenant_id, id, request_id, model_alias, input, response, created_at, expires_at) values
  ('eeeeeeee-0000-0000-0000-000000000800', 'resp_live', 'req_1', 'm', '[]', '{"id":"resp_live"}', now(), now() + interval '30 days'),
  ('eeeeeeee-0000-0000-0000-000000000800', 'resp_old', 'req_2', 'm', '[]', '{"id":"resp_old"}', now() - interval '31 days', now() - interval '1 day');

select ok((select relrowsecurity from pg_catalog.pg_class where oid = 'public.stored_responses'::regclass),
  'stored_responses has row level security');
select isnt(obj_description('public.stored_responses'::regclass, 'pg_class'), null, 'stored_responses has a comment');
select throws_ok($$insert into public.stored_responses (tenant_id, id, request_id, model_alias, input, response, expires_at)
    values ('eeeeeeee-0000-0000-0000-000000000800', 'resp_bad', 'r', 'm', '{}', '{}', now() + interval '1 day')$$,
  '23514', null, 'input must be an array of items');

select tests.authenticate_as(tests.create_user('stored-responses-member@example.test'));
select throws_ok($$select count(*) from public.stored_responses$$, '42501',
  'permission denied for table stored_responses', 'a signed-in user reads no stored responses');
select tests.clear_authentication();

select tests.authenticate_as_service_role();
select is(public.purge_expired_responses(), 1, 'the purge deletes the expired turn');
select is((select array_agg(id) from public.stored_responses where tenant_id = 'eeeeeeee-0000-0000-0000-000000000800'),
  array['resp_live'], 'and keeps the live one');
select is((select kind from public.schedules where name = 'purge_expired_responses'), 'sql',
  'the purge is a scheduled task');

select * from finish();
rollback;
