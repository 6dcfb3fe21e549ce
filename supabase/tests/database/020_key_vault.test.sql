-- The key vault: ciphertext only (CHECK is_encrypted), one active version,
-- version numbering, immutability, rotation with grace and its expiry,
-- emergency disable, the audit, and RLS one actor at a time down to anon.
begin;
select plan(44);

-- Fixtures, as the test runner (superuser). Bytes stand in for real ciphertext.
select tests.create_user('vault.admin.a@example.test') as admin_a \gset
select tests.create_user('vault.member.a@example.test') as member_a \gset
select tests.create_user('vault.admin.b@example.test') as admin_b \gset
insert into public.tenants (id, name, slug) values
  ('0aaa0000-0000-0000-0000-00000000000a', 'Vault A', 'vault-a'),
  ('0bbb0000-0000-0000-0000-00000000000b', 'Vault B', 'vault-b');
insert into public.memberships (tenant_id, user_id, role) values
  ('0aaa0000-0000-0000-0000-00000000000a', :'admin_a', 'admin'),
  ('0aaa0000-0000-0000-0000-00000000000a', :'member_a', 'member'),
  ('0bbb0000-0000-0000-0000-00000000000b', :'admin_b', 'admin');
insert into public.llm_providers (slug, kind, base_url) values ('vault-test', 'openai', 'http://127.0.0.1:9');

select lives_ok($$select private.create_secure_key('0aaa0000-1111-0000-0000-00000000000a', '0aaa0000-0000-0000-0000-00000000000a',
  'vault-test', 'default', sha256('a1'::bytea), decode(repeat('01', 12), 'hex'), sha256('wrap-a1'::bytea), 'test-1', 'a1a1')$$,
  'the service connection stores version 1 of tenant A''s key');
select lives_ok($$select private.create_secure_key('0bbb0000-1111-0000-0000-00000000000b', '0bbb0000-0000-0000-0000-00000000000b',
  'vault-test', 'default', sha256('b1'::bytea), decode(repeat('01', 12), 'hex'), sha256('wrap-b1'::bytea), 'test-1', 'b1b1')$$,
  'and version 1 of tenant B''s key');
select is(private.create_secure_key('0c0c0000-1111-0000-0000-00000000000c', null, 'vault-test', 'default',
  sha256('g1'::bytea), decode(repeat('01', 12), 'hex'), sha256('wrap-g1'::bytea), 'test-1', '') ->> 'version',
  '1', 'a global key (tenant null) starts at version 1');

-- Invariants, whoever writes.
select throws_ok($$insert into public.secure_keys (key_id, tenant_id, provider, label, version_int, ciphertext, iv, wrapped_data_key, kek_id, is_encrypted)
  values (gen_random_uuid(), '0aaa0000-0000-0000-0000-00000000000a', 'vault-test', 'plain', 1, sha256('p'::bytea),
          decode(repeat('01', 12), 'hex'), sha256('w'::bytea), 'test-1', false)$$,
  '23514', 'new row for relation "secure_keys" violates check constraint "secure_keys_is_encrypted_check"',
  'the CHECK refuses a row with is_encrypted = false');
select throws_ok($$insert into public.secure_keys (key_id, tenant_id, provider, label, version_int, ciphertext, iv, wrapped_data_key, kek_id)
  values ('0aaa0000-1111-0000-0000-00000000000a', '0aaa0000-0000-0000-0000-00000000000a', 'vault-test', 'default', 2,
          sha256('a2'::bytea), decode(repeat('01', 12), 'hex'), sha256('w'::bytea), 'test-1')$$,
  '23505', 'duplicate key value violates unique constraint "secure_keys_one_active_version"',
  'a second active version of one key is refused');
select throws_ok($$select private.create_secure_key(gen_random_uuid(), null, 'vault-test', 'default',
  sha256('g2'::bytea), decode(repeat('01', 12), 'hex'), sha256('w'::bytea), 'test-1', '')$$,
  '23505', 'duplicate key value violates unique constraint "secure_keys_one_active_version"', 'a second global key for the same provider and label is refused (nulls not distinct)');
select throws_ok($$insert into public.secure_keys (key_id, tenant_id, provider, label, version_int, ciphertext, iv, wrapped_data_key, kek_id)
  values ('0aaa0000-1111-0000-0000-00000000000a', '0aaa0000-0000-0000-0000-00000000000a', 'vault-test', 'default', 3,
          sha256('a3'::bytea), decode(repeat('01', 12), 'hex'), sha256('w'::bytea), 'test-1')$$,
  '23514', 'the next version of this key is 2, not 3', 'versions are numbered without gaps');
select throws_ok($$insert into public.secure_keys (key_id, tenant_id, provider, label, version_int, ciphertext, iv, wrapped_data_key, kek_id)
  values ('0aaa0000-1111-0000-0000-00000000000a', '0bbb0000-0000-0000-0000-00000000000b', 'vault-test', 'default', 2,
          sha256('x'::bytea), decode(repeat('01', 12), 'hex'), sha256('w'::bytea), 'test-1')$$,
  '23514', 'every version of a key has the same tenant, provider and label', 'a version cannot move a key to another tenant');
select throws_ok($$update public.secure_keys set ciphertext = sha256('swapped'::bytea) where key_id = '0aaa0000-1111-0000-0000-00000000000a'$$,
  '23514', 'a stored key version is immutable: only its status and its wrapping change', 'stored ciphertext never changes');
select throws_ok($$select private.create_secure_key(gen_random_uuid(), '0aaa0000-0000-0000-0000-00000000000a', 'no-such-provider', 'default',
  sha256('u'::bytea), decode(repeat('01', 12), 'hex'), sha256('w'::bytea), 'test-1', '')$$,
  '22023', 'provider: unknown provider (not in the catalog)', 'a provider outside the catalog is refused');
select is_empty($$select 1 from public.secure_keys where provider = 'no-such-provider' or label = 'plain'$$,
  'refused writes left nothing behind');

-- Rotation: roll forward, then grace, then disabled.
select is((private.rotate_secure_key('0aaa0000-1111-0000-0000-00000000000a', 2, sha256('a2'::bytea), decode(repeat('02', 12), 'hex'),
  sha256('wrap-a2'::bytea), 'test-1', 'a2a2', 600, 'req-rotate') -> 'previous' ->> 'status'), 'grace',
  'rotation puts the active version in grace');
select results_eq($$select version_int, status, grace_until = now() + interval '600 seconds' from public.secure_keys
  where key_id = '0aaa0000-1111-0000-0000-00000000000a' order by version_int$$,
  $$values (1, 'grace', true), (2, 'active', null)$$, 'version 2 is active, version 1 in grace for 600 s');
select throws_ok($$select private.rotate_secure_key('0aaa0000-1111-0000-0000-00000000000a', 2, sha256('a2bis'::bytea),
  decode(repeat('02', 12), 'hex'), sha256('w'::bytea), 'test-1', '', 600)$$,
  '40001', 'the key was rotated meanwhile (version 2 is taken): retry', 'a rotation encrypted for a taken version is refused');
select throws_ok($$select private.disable_secure_key_version('0aaa0000-1111-0000-0000-00000000000a', 2)$$,
  '55000', 'version 2 is the only active version of this key: rotate to a replacement first, or pass force: true',
  'disabling the only active version needs force');
select throws_ok($$select private.disable_secure_key_version('0aaa0000-1111-0000-0000-00000000000a', 9)$$,
  'P0002', 'version 9 of this key does not exist', 'a version that does not exist is not found');
select is((private.disable_secure_key_version('0aaa0000-1111-0000-0000-00000000000a', 1, false, 'leaked') ->> 'previous_status'),
  'grace', 'a version in grace is disabled at once');
select throws_ok($$update public.secure_keys set status = 'active', disabled_at = null
  where key_id = '0aaa0000-1111-0000-0000-00000000000a' and version_int = 1$$,
  '23514', 'version 1 of key 0aaa0000-1111-0000-0000-00000000000a is disabled for good', 'disabled is final');
select is((private.disable_secure_key_version('0aaa0000-1111-0000-0000-00000000000a', 1) ->> 'already_disabled'), 'true',
  'disabling twice changes nothing');

-- Grace expiry: readers treat it as disabled; the sweep makes it so, as of grace_until.
select lives_ok($$select private.rotate_secure_key('0aaa0000-1111-0000-0000-00000000000a', 3, sha256('a3'::bytea),
  decode(repeat('03', 12), 'hex'), sha256('wrap-a3'::bytea), 'test-1', 'a3a3', 60)$$, 'a second rotation');
update public.secure_keys set grace_until = now() - interval '1 minute'
where key_id = '0aaa0000-1111-0000-0000-00000000000a' and version_int = 2;
select is(public.disable_expired_key_versions(), 1, 'the sweep disables the version whose grace is over');
select results_eq($$select status, disabled_at = grace_until from public.secure_keys
  where key_id = '0aaa0000-1111-0000-0000-00000000000a' and version_int = 2$$,
  $$values ('disabled', true)$$, 'disabled as of its grace_until');
select results_eq($$select action, version_int, actor, details ->> 'reason' from public.secure_keys_audit
  where key_id = '0aaa0000-1111-0000-0000-00000000000a' order by id$$,
  $$values ('create', 1, 'db:postgres', null), ('rotate', 1, 'db:postgres', null), ('rotate', 2, 'db:postgres', null),
           ('disable', 1, 'db:postgres', 'leaked'), ('rotate', 2, 'db:postgres', null), ('rotate', 3, 'db:postgres', null),
           ('rotate', 2, 'db:postgres', null), ('disable', 2, 'system:grace-expiry', 'grace_expired')$$,
  'every change wrote one audit row, with its actor');
select is((select request_id from public.secure_keys_audit where key_id = '0aaa0000-1111-0000-0000-00000000000a'
  and action = 'rotate' and version_int = 2 order by id limit 1), 'req-rotate', 'the audit keeps the request id');

-- The admin of tenant A.
select tests.authenticate_as(:'admin_a');
select results_eq($$select key_id, version_int, status from public.secure_keys order by version_int$$,
  $$values ('0aaa0000-1111-0000-0000-00000000000a'::uuid, 1, 'disabled'), ('0aaa0000-1111-0000-0000-00000000000a'::uuid, 2, 'disabled'),
           ('0aaa0000-1111-0000-0000-00000000000a'::uuid, 3, 'active')$$,
  'an admin sees its tenant''s key metadata only (no other tenant''s, no global key)');
select throws_ok('select ciphertext from public.secure_keys', '42501', 'permission denied for table secure_keys',
  'a tenant admin cannot read ciphertext');
select throws_ok('select wrapped_data_key from public.secure_keys', '42501', 'permission denied for table secure_keys',
  'nor wrapped data keys');
select is((private.rotate_secure_key('0aaa0000-1111-0000-0000-00000000000a', 4, sha256('a4'::bytea),
  decode(repeat('04', 12), 'hex'), sha256('wrap-a4'::bytea), 'test-1', 'a4a4', 0) ->> 'version'), '4',
  'the admin rotates its key (grace 0: the old version is disabled at once)');
select results_eq($$select actor from public.secure_keys_audit where key_id = '0aaa0000-1111-0000-0000-00000000000a' order by id desc limit 1$$,
  format('values (%L)', 'user:' || :'admin_a'), 'the audit names the user from the JWT');
select throws_ok($$select private.rotate_secure_key('0bbb0000-1111-0000-0000-00000000000b', 2, sha256('x'::bytea),
  decode(repeat('05', 12), 'hex'), sha256('w'::bytea), 'test-1', '', 60)$$,
  'P0002', 'key not found', 'another tenant''s key does not exist for the admin');
select throws_ok($$select private.create_secure_key(gen_random_uuid(), null, 'vault-test', 'other',
  sha256('x'::bytea), decode(repeat('01', 12), 'hex'), sha256('w'::bytea), 'test-1', '')$$,
  '42501', 'new row violates row-level security policy for table "secure_keys"', 'a tenant admin cannot create a global key');
select throws_ok($$insert into public.secure_keys_audit (key_id, provider, label, action, actor)
  values ('0aaa0000-1111-0000-0000-00000000000a', 'vault-test', 'default', 'decrypt', 'forged')$$,
  '42501', 'permission denied for table secure_keys_audit', 'a tenant admin cannot write the audit');
select throws_ok('select public.disable_expired_key_versions()', '42501', 'permission denied for function disable_expired_key_versions',
  'the sweep is the service role''s');

-- A plain member of tenant A reads metadata and changes nothing.
select tests.authenticate_as(:'member_a');
select isnt_empty($$select 1 from public.secure_keys_audit where key_id = '0aaa0000-1111-0000-0000-00000000000a'$$,
  'a member reads its tenant''s key audit');
select throws_ok($$select private.rotate_secure_key('0aaa0000-1111-0000-0000-00000000000a', 5, sha256('x'::bytea),
  decode(repeat('05', 12), 'hex'), sha256('w'::bytea), 'test-1', '', 60)$$,
  '42501', 'only an admin of this tenant can rotate its keys', 'a member cannot rotate');
select throws_ok($$select private.disable_secure_key_version('0aaa0000-1111-0000-0000-00000000000a', 4, true)$$,
  '42501', 'only an admin of this tenant can disable its key versions', 'a member cannot disable');

-- The admin of tenant B sees nothing of A.
select tests.authenticate_as(:'admin_b');
select is_empty($$select 1 from public.secure_keys where tenant_id = '0aaa0000-0000-0000-0000-00000000000a'$$,
  'tenant B cannot see tenant A''s keys');
select is_empty($$select 1 from public.secure_keys_audit where tenant_id = '0aaa0000-0000-0000-0000-00000000000a'$$,
  'nor their audit');

-- The service role sees every key and ciphertext, and records decrypts.
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.secure_keys where key_id in ('0aaa0000-1111-0000-0000-00000000000a',
  '0bbb0000-1111-0000-0000-00000000000b', '0c0c0000-1111-0000-0000-00000000000c') and ciphertext is not null), 6,
  'the service role reads every version with its ciphertext, global keys included');
select lives_ok($$select public.record_secure_key_decrypt((select id from public.secure_keys
  where key_id = '0bbb0000-1111-0000-0000-00000000000b'), 'llm-router', 'req-decrypt')$$, 'the service role records a decrypt');
select results_eq($$select action, actor, request_id from public.secure_keys_audit
  where key_id = '0bbb0000-1111-0000-0000-00000000000b' order by id$$,
  $$values ('create', 'db:postgres', null), ('decrypt', 'llm-router', 'req-decrypt')$$, 'the decrypt is audited');

-- anon: nothing at all.
select tests.authenticate_as_anon();
select throws_ok('select * from public.secure_keys', '42501', 'permission denied for table secure_keys', 'anon cannot read keys');
select throws_ok('select * from public.secure_keys_audit', '42501', 'permission denied for table secure_keys_audit',
  'anon cannot read the audit');
select throws_ok($$select private.create_secure_key(gen_random_uuid(), '0aaa0000-0000-0000-0000-00000000000a', 'vault-test', 'anon',
  '\x00'::bytea, '\x00'::bytea, '\x00'::bytea, 'x', '')$$, '42501', 'permission denied for schema private',
  'anon cannot call the key functions');
select tests.clear_authentication();

select * from finish();
rollback;
