import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError } from '../../supabase/functions/_shared/errors.ts';
import {
  addMember,
  call,
  connectDatabase,
  countTenantRows,
  createTenant,
  createUser,
  headersFor,
  serviceHeaders,
  signUserToken,
} from '../helpers/stack.ts';
import { inProcessKeysApp, inProcessResolver, movableClock, stackKms } from '../helpers/vault.ts';

const sql = connectDatabase();
const vaultTables = ['public.secure_keys', 'public.secure_keys_audit'];
let tenantA: string;
let tenantB: string;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  tenantA = await createTenant('Vault tenant A');
  tenantB = await createTenant('Vault tenant B');
  const users = {
    adminA: await createUser(sql, 'vault-admin-a'),
    memberA: await createUser(sql, 'vault-member-a'),
    adminB: await createUser(sql, 'vault-admin-b'),
  };
  await addMember(sql, tenantA, users.adminA, 'admin');
  await addMember(sql, tenantA, users.memberA, 'member');
  await addMember(sql, tenantB, users.adminB, 'admin');
  for (const [name, id] of Object.entries(users)) tokens[name] = await signUserToken(id);
});
afterAll(() => sql.end());

/** A secret no other test uses, long enough to show last4. */
const newSecret = () => `vault-test-${randomBytes(18).toString('hex')}`;

type Caller = 'service' | 'adminA' | 'memberA' | 'adminB' | 'none';

async function send(method: string, pathname: string, caller: Caller, body?: unknown) {
  const headers = caller === 'service' ? serviceHeaders() : headersFor(caller === 'none' ? undefined : tokens[caller]);
  const response = await call(`/keys${pathname}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any -- response bodies are asserted field by field
  const answer: any = await response.json();
  return { status: response.status, body: answer, requestId: response.headers.get('x-request-id') };
}

async function createKey(caller: Caller, body: Record<string, unknown>) {
  const created = await send('POST', '', caller, body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created;
}

describe('POST /keys', () => {
  it('stores a key encrypted and answers 201 with metadata only, audited', async () => {
    const secret = newSecret();
    const { body, requestId } = await createKey('service', { provider: 'openai', secret, tenant_id: tenantA });
    expect(body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      tenant_id: tenantA,
      provider: 'openai',
      label: 'default',
      version: 1,
      status: 'active',
      last4: secret.slice(-4),
      kek_id: 'local-1',
      created_at: expect.any(String),
    });
    const [row] = await sql<{ is_encrypted: boolean; ciphertext: Buffer; wrapped_data_key: Buffer }[]>`
      select is_encrypted, ciphertext, wrapped_data_key from public.secure_keys where key_id = ${body.id}`;
    expect(row.is_encrypted).toBe(true);
    expect(row.ciphertext.includes(Buffer.from(secret))).toBe(false);
    expect(row.wrapped_data_key.length).toBeGreaterThan(32);
    const audit =
      await sql`select action, version_int, actor, request_id from public.secure_keys_audit where key_id = ${body.id}`;
    expect(audit).toEqual([{ action: 'create', version_int: 1, actor: 'service_role', request_id: requestId }]);
  });

  it("lets a tenant admin add its own tenant's keys; refuses members, other tenants and global keys", async () => {
    const label = `admin-${randomBytes(4).toString('hex')}`;
    const created = await createKey('adminA', { provider: 'anthropic', label, secret: newSecret() });
    expect(created.body.tenant_id).toBe(tenantA);
    const [audit] = await sql`select actor from public.secure_keys_audit where key_id = ${created.body.id}`;
    expect(audit.actor).toMatch(/^user:[0-9a-f-]{36}$/);

    const before = await countTenantRows(sql, vaultTables, [tenantA, tenantB]);
    const member = await send('POST', '', 'memberA', { provider: 'gemini', label, secret: newSecret() });
    expect(member).toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden', message: 'only an admin of this tenant can add keys' } },
    });
    const otherTenant = await send('POST', '', 'adminB', {
      provider: 'gemini',
      label,
      secret: newSecret(),
      tenant_id: tenantA,
    });
    expect(otherTenant).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    const global = await send('POST', '', 'adminA', {
      provider: 'gemini',
      label,
      secret: newSecret(),
      tenant_id: null,
    });
    expect(global).toMatchObject({
      status: 403,
      body: { error: { message: 'only the service role manages global keys' } },
    });
    const duplicate = await send('POST', '', 'adminA', { provider: 'anthropic', label, secret: newSecret() });
    expect(duplicate).toMatchObject({ status: 409, body: { error: { code: 'conflict' } } });
    expect(await countTenantRows(sql, vaultTables, [tenantA, tenantB])).toEqual(before);
  });

  it('refuses bad input with a JSON error naming the field, and changes nothing', async () => {
    const before = await countTenantRows(sql, vaultTables, [tenantA]);
    const cases: [unknown, number, string, string | null][] = [
      [{ provider: 'openai', tenant_id: tenantA }, 400, 'secret: required', 'secret'],
      [{ provider: 'openai', secret: '', tenant_id: tenantA }, 400, 'secret: must not be empty', 'secret'],
      [{ provider: 'openai', secret: 42, tenant_id: tenantA }, 400, 'secret: must be a string', 'secret'],
      [
        { provider: 'openai', secret: ' padded-secret-value ', tenant_id: tenantA },
        400,
        'secret: must not start or end with whitespace',
        'secret',
      ],
      [
        { provider: 'no-such-provider', secret: newSecret(), tenant_id: tenantA },
        400,
        'provider: unknown provider (not in the catalog)',
        'provider',
      ],
      [
        { provider: 'Not A Provider', secret: newSecret(), tenant_id: tenantA },
        400,
        'provider: a provider key name: lower-case letters, digits, "_" and "-"',
        'provider',
      ],
      [{ provider: 'openai', secret: newSecret(), tenant_id: 'nope' }, 400, 'tenant_id: must be a UUID', 'tenant_id'],
      [
        { provider: 'openai', secret: newSecret(), tenant_id: tenantA, plaintext: true },
        400,
        'body: Unrecognized key: "plaintext"',
        null,
      ],
      ['{"provider":"openai","secret":', 400, 'request body is not valid JSON', null],
    ];
    for (const [body, status, message, param] of cases) {
      const answer = await send('POST', '', 'service', body);
      expect(answer.status, message).toBe(status);
      expect(answer.body.error.message).toBe(message);
      expect(answer.body.error.code).toBe(
        answer.body.error.message === 'request body is not valid JSON' ? 'invalid_json' : 'validation_failed',
      );
      if (param) expect(answer.body.error.details.issues[0].path).toBe(param);
    }
    const unknownTenant = await send('POST', '', 'service', {
      provider: 'openai',
      secret: newSecret(),
      tenant_id: crypto.randomUUID(),
    });
    expect(unknownTenant).toMatchObject({
      status: 404,
      body: { error: { code: 'not_found', message: 'tenant not found' } },
    });
    const anonymous = await send('POST', '', 'none', { provider: 'openai', secret: newSecret(), tenant_id: tenantA });
    expect(anonymous.status).toBe(401);
    expect(await countTenantRows(sql, vaultTables, [tenantA])).toEqual(before);
  });
});

describe('GET /keys', () => {
  it("shows metadata to the service role and the tenant's members only, never a secret", async () => {
    const secret = newSecret();
    const label = `list-${randomBytes(4).toString('hex')}`;
    const { body: key } = await createKey('service', { provider: 'gemini', label, secret, tenant_id: tenantB });
    const { body: global } = await createKey('service', { provider: 'gemini', label, secret: newSecret() });
    expect(global.tenant_id).toBeNull();

    const byService = await send('GET', `?tenant_id=${tenantB}&provider=gemini`, 'service');
    const listed = byService.body.items.find((item: { id: string }) => item.id === key.id);
    expect(listed).toEqual({
      id: key.id,
      tenant_id: tenantB,
      provider: 'gemini',
      label,
      active_version: 1,
      created_at: key.created_at,
      versions: [{
        version: 1,
        status: 'active',
        last4: secret.slice(-4),
        kek_id: 'local-1',
        created_at: key.created_at,
        grace_until: null,
        disabled_at: null,
        rewrapped_at: null,
      }],
    });
    const globals = await send('GET', '?tenant_id=global', 'service');
    expect(globals.body.items.map((item: { id: string }) => item.id)).toContain(global.id);
    expect(globals.body.items.every((item: { tenant_id: string | null }) => item.tenant_id === null)).toBe(true);

    const byAdminB = await send('GET', '', 'adminB');
    expect(byAdminB.body.items.map((item: { id: string }) => item.id)).toContain(key.id);
    expect(byAdminB.body.items.every((item: { tenant_id: string }) => item.tenant_id === tenantB)).toBe(true);
    const byAdminA = await send('GET', '', 'adminA');
    expect(byAdminA.body.items.some((item: { tenant_id: string }) => item.tenant_id !== tenantA)).toBe(false);
    expect((await send('GET', `/${key.id}`, 'adminA')).status).toBe(404);
    expect((await send('GET', `/${key.id}`, 'adminB')).body.id).toBe(key.id);
    expect((await send('GET', `/${global.id}`, 'adminB')).status).toBe(404);
    expect((await send('GET', '?tenant_id=x', 'service')).body.error.message).toBe('tenant_id: a UUID or "global"');
    expect(JSON.stringify([byService.body, byAdminB.body])).not.toContain(secret);
  });
});

describe('rotation: roll forward, grace, then disabled', () => {
  it('rotates, keeps the old version usable during grace, and disables it after', async () => {
    const label = `rotate-${randomBytes(4).toString('hex')}`;
    const first = newSecret();
    const second = newSecret();
    const { body: key } = await createKey('adminA', { provider: 'openai', label, secret: first });
    const clock = movableClock();
    const { resolver } = inProcessResolver(sql, { clock, cacheTtlMs: 30_000 });
    expect(await resolver.getProviderKey(tenantA, 'openai', { label, requestId: 'req-before-rotate' })).toEqual({
      secret: first,
      keyId: key.id,
      version: 1,
    });

    const rotated = await send('POST', `/${key.id}/rotate`, 'adminA', { secret: second, grace_seconds: 600 });
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(201);
    expect(rotated.body).toMatchObject({ id: key.id, version: 2, status: 'active', last4: second.slice(-4) });
    expect(rotated.body.previous).toMatchObject({ version: 1, status: 'grace', disabled_at: null });
    const graceUntil = Date.parse(rotated.body.previous.grace_until);
    expect(graceUntil - Date.parse(rotated.body.created_at)).toBe(600_000);

    // The cached version 1 is handed out until the TTL; then the active version 2.
    expect((await resolver.getProviderKey(tenantA, 'openai', { label }))?.version).toBe(1);
    clock.advance(30_000);
    expect(await resolver.getProviderKey(tenantA, 'openai', { label, requestId: 'req-after-rotate' })).toEqual({
      secret: second,
      keyId: key.id,
      version: 2,
    });
    // In-flight requests on version 1 still decrypt it during the grace period.
    expect((await resolver.getKeyVersion(key.id, 1))?.secret).toBe(first);

    // Grace over: readers see it disabled before the sweep, and the sweep makes it so.
    await sql`update public.secure_keys set grace_until = now() - interval '1 second' where key_id = ${key.id} and version_int = 1`;
    const { resolver: fresh } = inProcessResolver(sql);
    expect(await fresh.getKeyVersion(key.id, 1)).toBeNull();
    const listed = await send('GET', `/${key.id}`, 'adminA');
    expect(
      listed.body.versions.map((version: { version: number; status: string }) => [version.version, version.status]),
    )
      .toEqual([[2, 'active'], [1, 'disabled']]);
    // (Another file's resolver may run the same sweep first: the row is what counts.)
    await sql`select public.disable_expired_key_versions()`;
    const [row] = await sql`select status from public.secure_keys where key_id = ${key.id} and version_int = 1`;
    expect(row.status).toBe('disabled');

    const audit = await send('GET', `/${key.id}/audit`, 'memberA');
    expect(audit.status).toBe(200);
    const trail = audit.body.items.map((
      entry: { action: string; version: number; actor: string; details: { reason?: string } },
    ) => [
      entry.action,
      entry.version,
      entry.actor.replace(/^user:.*/, 'user'),
      entry.details.reason ?? null,
    ]).reverse();
    expect(trail).toEqual([
      ['create', 1, 'user', null],
      ['decrypt', 1, 'vault-test', null],
      ['rotate', 1, 'user', null],
      ['rotate', 2, 'user', null],
      ['decrypt', 2, 'vault-test', null],
      ['decrypt', 1, 'vault-test', null],
      ['rotate', 1, 'db:postgres', null],
      ['disable', 1, 'system:grace-expiry', 'grace_expired'],
    ]);
    expect(
      audit.body.items.find((entry: { action: string; version: number }) =>
        entry.action === 'decrypt' && entry.version === 2
      ).request_id,
    )
      .toBe('req-after-rotate');
    const page = await send('GET', `/${key.id}/audit?limit=2`, 'adminA');
    expect(page.body.items).toHaveLength(2);
    const next = await send('GET', `/${key.id}/audit?limit=2&before=${page.body.next_before}`, 'adminA');
    expect(next.body.items[0].id).not.toBe(page.body.items[1].id);
    expect(Number(next.body.items[0].id)).toBeLessThan(Number(page.body.next_before));
  });

  it("refuses a rotation by a member, of another tenant's key, and with bad input, changing nothing", async () => {
    const { body: key } = await createKey('adminA', {
      provider: 'openai',
      label: `refuse-${randomBytes(4).toString('hex')}`,
      secret: newSecret(),
    });
    const before = await countTenantRows(sql, vaultTables, [tenantA]);
    expect(await send('POST', `/${key.id}/rotate`, 'memberA', { secret: newSecret() })).toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden', message: 'only an admin of this tenant can rotate its keys' } },
    });
    expect((await send('POST', `/${key.id}/rotate`, 'adminB', { secret: newSecret() })).status).toBe(404);
    expect((await send('POST', `/${crypto.randomUUID()}/rotate`, 'service', { secret: newSecret() })).status).toBe(404);
    expect((await send('POST', `/${key.id}/rotate`, 'adminA', {})).body.error.message).toBe('secret: required');
    expect(
      (await send('POST', `/${key.id}/rotate`, 'adminA', { secret: newSecret(), grace_seconds: -1 })).body.error
        .message,
    )
      .toMatch(/^grace_seconds: /);
    expect((await send('POST', '/not-a-uuid/rotate', 'adminA', { secret: newSecret() })).body.error.message).toBe(
      'id: must be a UUID',
    );
    expect(await countTenantRows(sql, vaultTables, [tenantA])).toEqual(before);
  });
});

describe('emergency disable', () => {
  it('refuses the only active version unless forced, then refuses the version at once', async () => {
    const label = `disable-${randomBytes(4).toString('hex')}`;
    const secret = newSecret();
    const { body: key } = await createKey('service', { provider: 'openai', label, secret, tenant_id: tenantB });
    const { resolver } = inProcessResolver(sql);
    expect((await resolver.getKeyVersion(key.id, 1))?.secret).toBe(secret);

    const before = await countTenantRows(sql, vaultTables, [tenantB]);
    const refused = await send('POST', `/${key.id}/versions/1/disable`, 'adminB');
    expect(refused).toMatchObject({
      status: 409,
      body: {
        error: {
          code: 'conflict',
          message:
            'version 1 is the only active version of this key: rotate to a replacement first, or pass force: true',
          details: { field: 'force' },
        },
      },
    });
    expect((await send('POST', `/${key.id}/versions/7/disable`, 'adminB', { force: true })).body.error)
      .toEqual({ code: 'not_found', message: 'version 7 of this key does not exist', details: null });
    expect((await send('POST', `/${key.id}/versions/x/disable`, 'adminB')).body.error.message)
      .toBe('version: must be a version number (1, 2, …)');
    expect((await send('POST', `/${key.id}/versions/1/disable`, 'adminA', { force: true })).status).toBe(404);
    expect((await send('POST', `/${key.id}/versions/1/disable`, 'adminB', { force: 'yes' })).status).toBe(400);
    expect(await countTenantRows(sql, vaultTables, [tenantB])).toEqual(before);

    const disabled = await send('POST', `/${key.id}/versions/1/disable`, 'adminB', {
      force: true,
      reason: 'leaked in a CI log',
    });
    expect(disabled).toMatchObject({
      status: 200,
      body: { id: key.id, version: 1, status: 'disabled', previous_status: 'active', already_disabled: false },
    });
    // Refused at once for every uncached reader, and for a cached one once evicted.
    const { resolver: fresh } = inProcessResolver(sql);
    expect(await fresh.getKeyVersion(key.id, 1)).toBeNull();
    expect(await fresh.getProviderKey(tenantB, 'openai', { label })).toBeNull();
    resolver.evictKey(key.id);
    expect(await resolver.getKeyVersion(key.id, 1)).toBeNull();
    const again = await send('POST', `/${key.id}/versions/1/disable`, 'adminB');
    expect(again.body).toMatchObject({ already_disabled: true });

    const [audit] = await sql`
      select actor, details from public.secure_keys_audit where key_id = ${key.id} and action = 'disable'`;
    expect(audit.details).toEqual({ from_status: 'active', reason: 'leaked in a CI log' });

    // A rotation brings the key back with a new version.
    const replacement = newSecret();
    expect((await send('POST', `/${key.id}/rotate`, 'service', { secret: replacement })).body.previous).toBeNull();
    fresh.clear(); // it remembered "no key" for the TTL
    expect((await fresh.getProviderKey(tenantB, 'openai', { label }))?.secret).toBe(replacement);
  });
});

describe('the KMS missing or wrong at start', () => {
  it('answers 503 kms_unavailable on the endpoints that need it, and still serves the others', async () => {
    const { body: key } = await createKey('service', {
      provider: 'openai',
      label: `kms-${randomBytes(4).toString('hex')}`,
      secret: newSecret(),
      tenant_id: tenantA,
    });
    const short = `local-1:${randomBytes(16).toString('base64')}`;
    const environments: Record<string, string>[] = [
      { SWITCHYARD_MASTER_KEYS: short },
      {},
      { SWITCHYARD_MASTER_KEYS: `local-1:${randomBytes(32).toString('base64')}` },
    ];
    for (const environment of environments) {
      const keys = inProcessKeysApp(environment);
      try {
        const headers = serviceHeaders();
        const before = await countTenantRows(sql, vaultTables, [tenantA]);
        const create = await keys.app.request('/keys', {
          method: 'POST',
          headers,
          body: JSON.stringify({ provider: 'gemini', label: 'kms-down', secret: newSecret(), tenant_id: tenantA }),
        });
        const createBody = await create.json();
        expect(create.status, JSON.stringify(createBody)).toBe(503);
        expect(createBody.error.code).toBe('kms_unavailable');
        expect(JSON.stringify(createBody)).not.toMatch(/\bat .*\.ts:\d+/);
        const rotate = await keys.app.request(`/keys/${key.id}/rotate`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ secret: newSecret() }),
        });
        expect(rotate.status).toBe(503);
        expect(await countTenantRows(sql, vaultTables, [tenantA])).toEqual(before);

        expect((await keys.app.request(`/keys/${key.id}`, { headers })).status).toBe(200);
        expect((await keys.app.request(`/keys/${key.id}/audit`, { headers })).status).toBe(200);
        if (environment.SWITCHYARD_MASTER_KEYS === short) {
          expect(createBody.error.message).toBe(
            'key management is unavailable: SWITCHYARD_MASTER_KEYS: entry 1 ("local-1") is not 32 bytes of base64',
          );
          expect(keys.logLines.join('\n')).not.toContain(short.slice(8));
        } else if (environment.SWITCHYARD_MASTER_KEYS) {
          expect(createBody.error.message).toMatch(
            /^master key "local-1" does not unwrap the data keys stored under it/,
          );
        } else {
          expect(createBody.error.message).toMatch(/no KMS is configured: set SWITCHYARD_MASTER_KEYS/);
        }
      } finally {
        await keys.close();
      }
    }
  });

  it('the resolver answers kms_unavailable with a wrong master key, and hands out nothing', async () => {
    const label = `wrongkey-${randomBytes(4).toString('hex')}`;
    const { body: key } = await createKey('service', {
      provider: 'openai',
      label,
      secret: newSecret(),
      tenant_id: tenantA,
    });
    const { resolver } = inProcessResolver(sql, { kms: stackKms(`local-1:${randomBytes(32).toString('base64')}`) });
    const error = await resolver.getProviderKey(tenantA, 'openai', { label }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).code).toBe('kms_unavailable');
    const decrypts = await sql`select 1 from public.secure_keys_audit where key_id = ${key.id} and action = 'decrypt'`;
    expect(decrypts).toHaveLength(0);
  });
});
