-- Tenancy under RLS, one section per actor down to anon.
begin;
select plan(20);

-- Fixtures, as the test runner (superuser).
select tests.create_user('admin.a@example.test') as admin_a \gset
select tests.create_user('member.a@example.test') as member_a \gset
select tests.create_user('admin.b@example.test') as admin_b \gset
select tests.create_user('outsider@example.test') as outsider \gset
insert into public.tenants (id, name, slug) values
  ('aaaaaaaa-0000-0000-0000-000000000001', 'Tenant A', 'tenant-a'),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'Tenant B', 'tenant-b');
insert into public.memberships (tenant_id, user_id, role) values
  ('aaaaaaaa-0000-0000-0000-000000000001', :'admin_a', 'admin'),
  ('aaaaaaaa-0000-0000-0000-000000000001', :'member_a', 'member'),
  ('bbbbbbbb-0000-0000-0000-000000000002', :'admin_b', 'admin');
insert into public.tenant_api_keys (id, tenant_id, name, key_hash, prefix) values
  ('aaaaaaaa-1111-0000-0000-000000000001', 'aaaaaaaa-0000-0000-0000-000000000001', 'a key', repeat('a', 64), 'sy_aaaaaaaa'),
  ('bbbbbbbb-1111-0000-0000-000000000002', 'bbbbbbbb-0000-0000-0000-000000000002', 'b key', repeat('b', 64), 'sy_bbbbbbbb');

-- anon: no access at all.
select tests.authenticate_as_anon();
select throws_ok($$insert into public.tenants (name, slug) values ('x', 'x')$$, '42501',
  'permission denied for table tenants', 'anon cannot insert into tenants');
select throws_ok($$insert into public.tenant_api_keys (tenant_id, name, key_hash, prefix) values ('aaaaaaaa-0000-0000-0000-000000000001', 'x', repeat('c', 64), 'sy_cccccccc')$$,
  '42501', 'permission denied for table tenant_api_keys', 'anon cannot insert into tenant_api_keys');
select throws_ok('select * from public.memberships', '42501', 'permission denied for table memberships',
  'anon cannot read memberships');
select throws_ok($$select * from private.resolve_tenant_api_key('x')$$, '42501', 'permission denied for schema private',
  'anon cannot resolve API keys');

-- A member of tenant A sees A only.
select tests.authenticate_as(:'member_a');
select results_eq('select slug from public.tenants', $$values ('tenant-a')$$, 'a member sees only its own tenant');
select results_eq('select count(*)::int from public.memberships', 'values (2)', 'a member sees the memberships of its tenant only');
select results_eq('select prefix from public.tenant_api_keys', $$values ('sy_aaaaaaaa')$$, 'a member sees only its tenant''s key metadata');
select throws_ok('select key_hash from public.tenant_api_keys', '42501', 'permission denied for table tenant_api_keys',
  'nobody but the service role reads key hashes');
select throws_ok(format($$insert into public.memberships (tenant_id, user_id, role) values ('aaaaaaaa-0000-0000-0000-000000000001', %L, 'member')$$, :'outsider'),
  '42501', 'new row violates row-level security policy for table "memberships"', 'a plain member cannot add members');
select is_empty($$update public.tenant_api_keys set revoked_at = now() where id = 'aaaaaaaa-1111-0000-0000-000000000001' returning id$$,
  'a plain member cannot revoke keys');
select throws_ok($$select * from private.resolve_tenant_api_key('x')$$, '42501', 'permission denied for function resolve_tenant_api_key',
  'authenticated users cannot resolve API keys');

-- An admin of tenant A manages A and nothing of B.
select tests.authenticate_as(:'admin_a');
select lives_ok(format($$insert into public.memberships (tenant_id, user_id, role) values ('aaaaaaaa-0000-0000-0000-000000000001', %L, 'operator')$$, :'outsider'),
  'an admin adds a member to its tenant');
select throws_ok(format($$insert into public.memberships (tenant_id, user_id, role) values ('bbbbbbbb-0000-0000-0000-000000000002', %L, 'member')$$, :'outsider'),
  '42501', 'new row violates row-level security policy for table "memberships"', 'an admin cannot add members to another tenant');
select is_empty($$update public.tenant_api_keys set revoked_at = now() where id = 'bbbbbbbb-1111-0000-0000-000000000002' returning id$$,
  'an admin cannot revoke another tenant''s key');
select isnt_empty($$update public.tenant_api_keys set revoked_at = now() where id = 'aaaaaaaa-1111-0000-0000-000000000001' returning id$$,
  'an admin revokes its tenant''s key');
select throws_ok($$update public.tenant_api_keys set revoked_at = null where id = 'aaaaaaaa-1111-0000-0000-000000000001'$$,
  '23514', 'API key aaaaaaaa-1111-0000-0000-000000000001 is already revoked', 'a revoked key cannot be un-revoked');
select is_empty($$select slug from public.tenants where slug = 'tenant-b'$$, 'an admin of A cannot see tenant B');

-- The service role resolves keys; revoked keys resolve to nothing.
select tests.authenticate_as_service_role();
select is_empty($$select * from private.resolve_tenant_api_key(repeat('a', 64))$$, 'a revoked key resolves to nothing');
select results_eq($$select tenant_id from private.resolve_tenant_api_key(repeat('b', 64))$$,
  $$values ('bbbbbbbb-0000-0000-0000-000000000002'::uuid)$$, 'an active key resolves to its tenant');
select tests.clear_authentication();
select results_eq('select count(*)::int from public.memberships where tenant_id = ''aaaaaaaa-0000-0000-0000-000000000001''',
  'values (3)', 'the admin''s insert landed');

select * from finish();
rollback;
