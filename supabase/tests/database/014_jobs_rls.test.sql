-- Jobs under RLS, one section per actor down to anon: anon writes and reads
-- nothing; members read their tenant's jobs, events and artifacts; operators
-- and admins also read its dead letters; nobody but the job functions writes.
begin;
select plan(37);

select tests.create_user('jobs.member.a@example.test') as member_a \gset
select tests.create_user('jobs.operator.a@example.test') as operator_a \gset
select tests.create_user('jobs.member.b@example.test') as member_b \gset
insert into public.tenants (id, name, slug) values
  ('a2000000-0000-0000-0000-000000000001', 'Jobs RLS A', 'jobs-rls-a'),
  ('b2000000-0000-0000-0000-000000000002', 'Jobs RLS B', 'jobs-rls-b');
insert into public.memberships (tenant_id, user_id, role) values
  ('a2000000-0000-0000-0000-000000000001', :'member_a', 'member'),
  ('a2000000-0000-0000-0000-000000000001', :'operator_a', 'operator'),
  ('b2000000-0000-0000-0000-000000000002', :'member_b', 'member');

select public.register_job_kind('test.rls', 'rls probe', 1, 60);
select public.enqueue_job('test.rls', '{"t":"a"}', 'a2000000-0000-0000-0000-000000000001', null, -5) as job_a \gset
select public.enqueue_job('test.rls', '{"t":"b"}', 'b2000000-0000-0000-0000-000000000002', null, -4) as job_b \gset
-- Both run; each leaves an artifact and a dead letter.
create temporary table claimed as select * from public.claim_jobs('rls-worker', array['test.rls'], 2, 30);
select public.add_job_artifact(id, lease_token, null, jsonb_build_object('for', tenant_id)) from claimed;
select public.fail_job(id, lease_token, 'boom', false) from claimed;

-- anon: nothing.
select tests.authenticate_as_anon();
select throws_ok($$insert into public.jobs (kind, max_attempts, timeout_seconds) values ('test.rls', 1, 1)$$,
  '42501', 'permission denied for table jobs', 'anon cannot insert into jobs');
select throws_ok(format($$insert into public.artifacts (job_id, content) values (%L, '{}')$$, :'job_a'),
  '42501', 'permission denied for table artifacts', 'anon cannot insert into artifacts');
select throws_ok($$insert into public.job_events (job_id, event, to_status, attempt) values (gen_random_uuid(), 'queued', 'queued', 0)$$,
  '42501', 'permission denied for table job_events', 'anon cannot insert into job_events');
select throws_ok($$insert into public.job_dead_letters (job_id, kind, payload, attempts) values (gen_random_uuid(), 'x', '{}', 1)$$,
  '42501', 'permission denied for table job_dead_letters', 'anon cannot insert into job_dead_letters');
select throws_ok($$select * from public.jobs$$, '42501', 'permission denied for table jobs', 'anon cannot read jobs');
select throws_ok($$select * from public.artifacts$$, '42501', 'permission denied for table artifacts', 'anon cannot read artifacts');
select throws_ok($$select public.enqueue_job('test.rls', '{}')$$, '42501', 'permission denied for function enqueue_job',
  'anon cannot enqueue');
select throws_ok($$select public.reap_expired_jobs()$$, '42501', 'permission denied for function reap_expired_jobs',
  'anon cannot run the reaper');
select throws_ok(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'anon', 'because', tenant_id => %L)$$,
  :'job_a', 'a2000000-0000-0000-0000-000000000001'),
  '42501', 'permission denied for function requeue_dead_letters', 'anon cannot requeue dead letters');

-- A member of A: A's jobs, events and artifacts; no dead letters; no writes.
select tests.authenticate_as(:'member_a');
select results_eq($$select payload ->> 't' from public.jobs where kind = 'test.rls'$$, $$values ('a')$$,
  'a member sees its tenant''s jobs only');
select results_eq(format($$select count(*)::int from public.job_events where job_id in (%L, %L)$$, :'job_a', :'job_b'),
  $$values (3)$$, 'and only their events');
select results_eq($$select content ->> 'for' from public.artifacts$$, $$values ('a2000000-0000-0000-0000-000000000001')$$,
  'and only their artifacts');
select is_empty($$select * from public.job_dead_letters$$, 'a plain member does not see dead letters');
select results_eq($$select count(*)::int from public.job_kinds where kind = 'test.rls'$$, $$values (1)$$, 'members read the job kinds');
select throws_ok($$insert into public.jobs (kind, max_attempts, timeout_seconds, tenant_id) values ('test.rls', 1, 1, 'a2000000-0000-0000-0000-000000000001')$$,
  '42501', 'permission denied for table jobs', 'a member cannot insert jobs directly');
select throws_ok(format($$update public.jobs set priority = 1 where id = %L$$, :'job_a'),
  '42501', 'permission denied for table jobs', 'a member cannot update jobs directly');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, content) values (%L, 'a2000000-0000-0000-0000-000000000001', '{}')$$, :'job_a'),
  '42501', 'permission denied for table artifacts', 'a member cannot insert artifacts');
select throws_ok($$select * from public.claim_jobs('intruder')$$, '42501', 'permission denied for function claim_jobs',
  'a member cannot claim jobs');
select throws_ok(format($$select public.requeue_dead_letter(%L, 'me', 'because')$$, :'job_a'),
  '42501', 'permission denied for function requeue_dead_letter', 'a member cannot call requeue directly');
select throws_ok(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'me', 'because', tenant_id => %L)$$,
  :'job_a', 'a2000000-0000-0000-0000-000000000001'),
  '42501', 'you are not an operator or admin of this tenant', 'a plain member cannot requeue its tenant''s dead letters');

-- An operator of A: A's dead letters only.
select tests.authenticate_as(:'operator_a');
select results_eq($$select job_id from public.job_dead_letters$$, format('values (%L::uuid)', :'job_a'),
  'an operator sees its tenant''s dead letters only');
select throws_ok($$update public.job_dead_letters set requeue_reason = 'x'$$, '42501', 'permission denied for table job_dead_letters',
  'an operator cannot change dead letters directly');
select throws_ok(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'me', 'because', tenant_id => %L)$$,
  :'job_b', 'b2000000-0000-0000-0000-000000000002'),
  '42501', 'you are not an operator or admin of this tenant', 'an operator of A cannot requeue in B');
select throws_ok(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'me', 'because')$$, :'job_b'),
  '42501', 'you are not an operator or admin of this tenant', 'a user must name the tenant (no cross-tenant requeue)');
select throws_ok(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'me', 'because', tenant_id => %L)$$,
  :'job_b', 'a2000000-0000-0000-0000-000000000001'),
  'SYJ03', format('dead letter not found: %s', :'job_b'), 'another tenant''s job counts as not found in A');
select results_eq(format($$select public.requeue_dead_letters(array[%L::uuid], null, 'service_role', 'operator retry', tenant_id => %L) -> 'requeued'$$,
  :'job_a', 'a2000000-0000-0000-0000-000000000001'),
  format($$values (jsonb_build_array(%L::text))$$, :'job_a'), 'an operator requeues its tenant''s dead letter');
select results_eq($$select requeued_by from public.job_dead_letters$$, format('values (%L)', 'user:' || :'operator_a'),
  'recorded as the signed-in user, not the actor it passed');

-- A member of B: B only.
select tests.authenticate_as(:'member_b');
select results_eq($$select payload ->> 't' from public.jobs where kind = 'test.rls'$$, $$values ('b')$$,
  'a member of B sees B''s job only');
select is_empty(format($$select 1 from public.job_events where job_id = %L$$, :'job_a'), 'and none of A''s events');
select throws_ok(format($$select public.requeue_dead_letters(null, '{}'::jsonb, 'me', 'because', tenant_id => %L)$$,
  'a2000000-0000-0000-0000-000000000001'),
  '42501', 'you are not an operator or admin of this tenant', 'a member of B cannot requeue A''s dead letters');

-- The service role: executes the job functions; writes nothing directly.
select tests.authenticate_as_service_role();
select lives_ok($$select public.enqueue_job('test.rls', '{}', 'a2000000-0000-0000-0000-000000000001')$$,
  'the service role enqueues');
select results_eq($$select count(*)::int from public.jobs where kind = 'test.rls'$$, $$values (3)$$,
  'the service role reads every tenant''s jobs');
select throws_ok(format($$update public.jobs set status = 'succeeded' where id = %L$$, :'job_a'),
  '42501', 'permission denied for table jobs', 'the service role cannot update jobs directly');
select throws_ok(format($$delete from public.jobs where id = %L$$, :'job_a'),
  '42501', 'permission denied for table jobs', 'the service role cannot delete jobs');
select throws_ok($$insert into public.artifacts (job_id, content) values (gen_random_uuid(), '{}')$$,
  '42501', 'permission denied for table artifacts', 'the service role adds artifacts only through add_job_artifact');
select throws_ok($$update public.job_dead_letters set requeued_at = now()$$,
  '42501', 'permission denied for table job_dead_letters', 'the service role requeues only through the requeue functions');
select tests.clear_authentication();

select is_empty($$select * from lint.findings() where object_name ~ '(job|artifact)'$$,
  'the lint gate finds nothing on the job tables and functions');

select * from finish();
rollback;
