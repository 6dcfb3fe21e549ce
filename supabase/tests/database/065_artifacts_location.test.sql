-- Where an artifact's bytes live: exactly one of inline content and a Storage
-- path, with size and content type (migration 20261123000900_artifacts.sql), written only
-- through add_job_artifact by the worker holding the lease; read per actor
-- down to anon.
begin;
select plan(29);

select tests.create_user('artifacts.member.a@example.test') as member_a \gset
select tests.create_user('artifacts.member.b@example.test') as member_b \gset
insert into public.tenants (id, name, slug) values
  ('a6500000-0000-0000-0000-000000000001', 'Artifacts A', 'artifacts-a'),
  ('b6500000-0000-0000-0000-000000000002', 'Artifacts B', 'artifacts-b');
insert into public.memberships (tenant_id, user_id, role) values
  ('a6500000-0000-0000-0000-000000000001', :'member_a', 'member'),
  ('b6500000-0000-0000-0000-000000000002', :'member_b', 'member');

select public.register_job_kind('test.artifacts', 'artifact probe', 1, 60);
select public.enqueue_job('test.artifacts', '{"t":"a"}', 'a6500000-0000-0000-0000-000000000001', null, -9) as job_a \gset
select public.enqueue_job('test.artifacts', '{"t":"b"}', 'b6500000-0000-0000-0000-000000000002', null, -8) as job_b \gset
create temporary table claimed as select * from public.claim_jobs('artifacts-worker', array['test.artifacts'], 2, 30);
select lease_token as lease_a from claimed where id = :'job_a' \gset
select lease_token as lease_b from claimed where id = :'job_b' \gset

-- The table: exactly one location, a known size inline, a valid content type.
select col_not_null('public', 'artifacts', 'content_type', 'content_type is required');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, storage_path, content, size_bytes) values (%L, 'a6500000-0000-0000-0000-000000000001', 'a6500000-0000-0000-0000-000000000001/' || %L || '/c', '{}', 2)$$, :'job_a', :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_one_location"', 'an artifact cannot be inline and in Storage at once');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, size_bytes) values (%L, 'a6500000-0000-0000-0000-000000000001', 0)$$, :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_one_location"', 'an artifact must be somewhere');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, content) values (%L, 'a6500000-0000-0000-0000-000000000001', '{}')$$, :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_inline_size_known"', 'inline content needs its size');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, content, size_bytes) values (%L, 'a6500000-0000-0000-0000-000000000001', '{}', -1)$$, :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_size_non_negative"', 'a size is never negative');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, content, size_bytes, content_type) values (%L, 'a6500000-0000-0000-0000-000000000001', '{}', 2, 'not a type')$$, :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_content_type_valid"', 'a content type is type/subtype');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, storage_path, size_bytes, inline_reason) values (%L, 'a6500000-0000-0000-0000-000000000001', 'a6500000-0000-0000-0000-000000000001/' || %L || '/c', 9, 'storage_not_configured')$$, :'job_a', :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_inline_reason_valid"', 'only an inline artifact says why it stayed inline');
select throws_ok(format($$insert into public.artifacts (job_id, tenant_id, content, size_bytes, inline_reason) values (%L, 'a6500000-0000-0000-0000-000000000001', '{}', 2, 'because')$$, :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_inline_reason_valid"', 'inline_reason is storage_not_configured or nothing');
select throws_ok(format($$select public.add_job_artifact(%L, %L, storage_path => 'a6500000-0000-0000-0000-000000000002/' || %L || '/x.csv')$$, :'job_a', :'lease_a', :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_storage_path_of_its_job"', 'a Storage path outside the job''s own <tenant>/<job>/ prefix is refused (it would be signed for this job''s readers)');
select throws_ok(format($$select public.add_job_artifact(%L, %L, storage_path => 'a6500000-0000-0000-0000-000000000001/' || %L || '/../other/x.csv')$$, :'job_a', :'lease_a', :'job_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_storage_path_of_its_job"', 'and so is one that climbs out of it with ..');

-- add_job_artifact: inline with its size computed, in Storage with the size given, kept inline with a reason.
select public.add_job_artifact(:'job_a', :'lease_a', content => '{"lines":3}'::jsonb, name => 'summary') as inline_a \gset
select public.add_job_artifact(:'job_a', :'lease_a',
  storage_path => 'a6500000-0000-0000-0000-000000000001/' || :'job_a' || '/report.csv',
  name => 'report', size_bytes => 70000, content_type => 'text/csv; charset=utf-8') as stored_a \gset
select public.add_job_artifact(:'job_b', :'lease_b', content => to_jsonb(repeat('x', 100)), name => 'big',
  size_bytes => 102, inline_reason => 'storage_not_configured') as kept_b \gset
select results_eq(format($$select size_bytes, content_type, inline_reason from public.artifacts where id = %L$$, :'inline_a'),
  $$values (octet_length('{"lines": 3}')::bigint, 'application/json', null::text)$$,
  'inline content: size from its JSON text, application/json by default');
select results_eq(format($$select storage_path is not null, content is null, size_bytes, content_type from public.artifacts where id = %L$$, :'stored_a'),
  $$values (true, true, 70000::bigint, 'text/csv; charset=utf-8')$$,
  'a Storage artifact keeps its path, size and content type, and no content');
select results_eq(format($$select inline_reason, size_bytes from public.artifacts where id = %L$$, :'kept_b'),
  $$values ('storage_not_configured', 102::bigint)$$, 'an output kept inline says why');
select gen_random_uuid() as wrong_token \gset
select throws_ok(format($$select public.add_job_artifact(%L, %L, content => '{}')$$, :'job_a', :'wrong_token'),
  'SYJ02', format('cannot add an artifact to job %s: lease token %s does not hold its lease (a stale token: the job was reaped and claimed again; or a wrong one)', :'job_a', :'wrong_token'), 'a wrong lease token adds nothing');
select throws_ok(format($$select public.add_job_artifact(%L, %L, 'p', '{}')$$, :'job_a', :'lease_a'),
  '23514', 'new row for relation "artifacts" violates check constraint "artifacts_one_location"', 'both locations at once are refused by the function too');
select results_eq(format($$select public.add_job_artifact(%L, %L, null, '[1]') is not null$$, :'job_a', :'lease_a'),
  $$values (true)$$, 'the five-argument form of existing callers still works');

-- anon: nothing.
select tests.authenticate_as_anon();
select throws_ok($$select * from public.artifacts$$, '42501', 'permission denied for table artifacts', 'anon cannot read artifacts');
select throws_ok(format($$insert into public.artifacts (job_id, content, size_bytes) values (%L, '{}', 2)$$, :'job_a'),
  '42501', 'permission denied for table artifacts', 'anon cannot insert artifacts');
select throws_ok(format($$select public.add_job_artifact(%L, %L, content => '{}')$$, :'job_a', :'lease_a'),
  '42501', 'permission denied for function add_job_artifact', 'anon cannot call add_job_artifact');

-- A member of A: A's artifacts with where they live; no writes.
select tests.authenticate_as(:'member_a');
select results_eq($$select name, size_bytes from public.artifacts where name in ('summary', 'report', 'big') order by name$$,
  $$values ('report', 70000::bigint), ('summary', octet_length('{"lines": 3}')::bigint)$$,
  'a member reads its tenant''s artifacts, sizes included, and no other tenant''s');
select results_eq(format($$select storage_path from public.artifacts where id = %L$$, :'stored_a'),
  format($$values (%L)$$, 'a6500000-0000-0000-0000-000000000001/' || :'job_a' || '/report.csv'),
  'and the Storage path under its tenant and job');
select throws_ok(format($$update public.artifacts set size_bytes = 1 where id = %L$$, :'inline_a'),
  '42501', 'permission denied for table artifacts', 'a member cannot change an artifact');
select throws_ok(format($$select public.add_job_artifact(%L, %L, content => '{}')$$, :'job_a', :'lease_a'),
  '42501', 'permission denied for function add_job_artifact', 'a member cannot call add_job_artifact');

-- A member of B: B's only.
select tests.authenticate_as(:'member_b');
select results_eq($$select name, inline_reason from public.artifacts where name in ('summary', 'report', 'big')$$,
  $$values ('big', 'storage_not_configured')$$, 'a member of B reads B''s artifact only, with its inline reason');
select throws_ok(format($$delete from public.artifacts where id = %L$$, :'kept_b'),
  '42501', 'permission denied for table artifacts', 'a member cannot delete an artifact');

-- The service role: through the function only.
select tests.authenticate_as_service_role();
select lives_ok(format($$select public.add_job_artifact(%L, %L, content => '{"ok":true}', name => 'late')$$, :'job_a', :'lease_a'),
  'the service role adds artifacts through add_job_artifact');
select throws_ok(format($$insert into public.artifacts (job_id, content, size_bytes) values (%L, '{}', 2)$$, :'job_a'),
  '42501', 'permission denied for table artifacts', 'the service role cannot insert artifacts directly');
select throws_ok(format($$update public.artifacts set storage_path = 'elsewhere' where id = %L$$, :'stored_a'),
  '42501', 'permission denied for table artifacts', 'the service role cannot move an artifact');
select tests.clear_authentication();

select is_empty($$select * from lint.findings() where object_name ~ 'artifact'$$,
  'the lint gate finds nothing on artifacts and add_job_artifact');

select * from finish();
rollback;
