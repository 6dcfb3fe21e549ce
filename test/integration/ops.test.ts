import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addMember,
  call,
  connectDatabase,
  countTenantRows,
  countTenantsNamed,
  createTenant,
  createUser,
  headersFor,
  serviceHeaders,
  signUserToken,
} from '../helpers/stack.ts';

const sql = connectDatabase();
const tenancyTables = ['public.tenants', 'public.memberships', 'public.tenant_api_keys'];
let tenantA: string;
let tenantB: string;
let adminA: string;
let memberA: string;
let adminB: string;
let outsider: string;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  tenantA = await createTenant('Ops tenant A');
  tenantB = await createTenant('Ops tenant B');
  adminA = await createUser(sql, 'admin-a');
  memberA = await createUser(sql, 'member-a');
  adminB = await createUser(sql, 'admin-b');
  outsider = await createUser(sql, 'outsider');
  await addMember(sql, tenantA, adminA, 'admin');
  await addMember(sql, tenantA, memberA, 'member');
  await addMember(sql, tenantB, adminB, 'admin');
  for (const [name, id] of Object.entries({ adminA, memberA, adminB, outsider })) {
    tokens[name] = await signUserToken(id);
  }
});
afterAll(() => sql.end());

async function send(method: string, pathname: string, bearer: string | undefined, body?: unknown) {
  const response = await call(pathname, {
    method,
    headers: bearer === undefined
      ? headersFor(undefined)
      : bearer === 'service'
      ? serviceHeaders()
      : headersFor(bearer),
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any -- response bodies are asserted field by field
  return { status: response.status, body: (await response.json()) as any };
}

describe('POST /ops/tenants', () => {
  it('creates a tenant as the service role', async () => {
    const { status, body } = await send('POST', '/ops/tenants', 'service', {
      name: 'Created',
      slug: `created-${Date.now()}`,
    });
    expect(status).toBe(201);
    expect(body).toMatchObject({ name: 'Created' });
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses a taken slug with 409 and a user caller with 403', async () => {
    const slug = `dup-${Date.now()}`;
    expect((await send('POST', '/ops/tenants', 'service', { name: 'One', slug })).status).toBe(201);
    const duplicate = await send('POST', '/ops/tenants', 'service', { name: 'Two', slug });
    expect(duplicate).toEqual({
      status: 409,
      body: { error: { code: 'conflict', message: `slug "${slug}" is taken`, details: null } },
    });
    const byUser = await send('POST', '/ops/tenants', tokens.adminA, { name: 'Mine' });
    expect(byUser.status).toBe(403);
    expect(byUser.body.error.code).toBe('forbidden');
  });

  it('names the field on a schema miss and refuses malformed JSON', async () => {
    const miss = await send('POST', '/ops/tenants', 'service', { name: '', slug: 'BAD SLUG' });
    expect(miss.status).toBe(400);
    expect(miss.body.error.code).toBe('validation_failed');
    expect(miss.body.error.message).toMatch(/^name: /);
    expect(miss.body.error.details.issues.map((issue: { path: string }) => issue.path)).toEqual(['name', 'slug']);
    const name = `refused-${crypto.randomUUID()}`;
    const extra = await send('POST', '/ops/tenants', 'service', { name, owner: 'y' });
    expect(extra.status).toBe(400);
    expect(extra.body.error.message).toMatch(/owner/);
    const malformed = await send('POST', '/ops/tenants', 'service', `{"name":"${name}"`);
    expect(malformed).toEqual({
      status: 400,
      body: { error: { code: 'invalid_json', message: 'request body is not valid JSON', details: null } },
    });
    expect(await countTenantsNamed(sql, name)).toBe(0);
  });
});

describe('GET /ops/tenants/:id', () => {
  it('shows a tenant and its members to a member', async () => {
    const { status, body } = await send('GET', `/ops/tenants/${tenantA}`, tokens.memberA);
    expect(status).toBe(200);
    expect(body.id).toBe(tenantA);
    expect(body.members.map((member: { user_id: string }) => member.user_id).sort()).toEqual([adminA, memberA].sort());
  });

  it('answers 404 to users of other tenants, never the data', async () => {
    for (const token of [tokens.adminB, tokens.outsider]) {
      const { status, body } = await send('GET', `/ops/tenants/${tenantA}`, token);
      expect(status).toBe(404);
      expect(body).toEqual({ error: { code: 'not_found', message: 'tenant not found', details: null } });
    }
  });

  it('answers 400 naming the parameter for a malformed id', async () => {
    const { status, body } = await send('GET', '/ops/tenants/not-a-uuid', 'service');
    expect(status).toBe(400);
    expect(body.error.message).toMatch(/^id: must be a UUID/);
  });
});

describe('POST /ops/tenants/:id/members', () => {
  it('lets an admin add a member', async () => {
    const newcomer = await createUser(sql, 'newcomer');
    const { status, body } = await send('POST', `/ops/tenants/${tenantA}/members`, tokens.adminA, {
      user_id: newcomer,
      role: 'operator',
    });
    expect(status).toBe(201);
    expect(body).toMatchObject({ tenant_id: tenantA, user_id: newcomer, role: 'operator' });
  });

  it('refuses plain members (403), other tenants (404), unknown users (404), duplicates (409) and bad roles (400)', async () => {
    const candidate = await createUser(sql, 'candidate');
    const before = await countTenantRows(sql, tenancyTables, [tenantA, tenantB]);
    expect(
      (await send('POST', `/ops/tenants/${tenantA}/members`, tokens.memberA, { user_id: candidate, role: 'member' }))
        .status,
    ).toBe(403);
    expect(
      (await send('POST', `/ops/tenants/${tenantA}/members`, tokens.adminB, { user_id: candidate, role: 'member' }))
        .status,
    ).toBe(404);
    const unknownUser = await send('POST', `/ops/tenants/${tenantA}/members`, tokens.adminA, {
      user_id: crypto.randomUUID(),
      role: 'member',
    });
    expect(unknownUser.status).toBe(404);
    expect(unknownUser.body.error.message).toBe('user not found');
    expect(
      (await send('POST', `/ops/tenants/${tenantA}/members`, tokens.adminA, { user_id: memberA, role: 'member' }))
        .status,
    ).toBe(409);
    const badRole = await send('POST', `/ops/tenants/${tenantA}/members`, tokens.adminA, {
      user_id: candidate,
      role: 'owner',
    });
    expect(badRole.status).toBe(400);
    expect(badRole.body.error.message).toMatch(/^role: /);
    expect(await countTenantRows(sql, tenancyTables, [tenantA, tenantB])).toEqual(before);
  });
});

describe('tenant API keys', () => {
  it('are shown once on creation and only as metadata afterwards', async () => {
    const created = await send('POST', `/ops/tenants/${tenantA}/api-keys`, tokens.adminA, { name: 'ci key' });
    expect(created.status).toBe(201);
    expect(created.body.key).toMatch(/^sy_[A-Za-z0-9_-]{32}$/);
    expect(created.body.key.startsWith(created.body.prefix)).toBe(true);

    const listed = await send('GET', `/ops/tenants/${tenantA}/api-keys`, tokens.memberA);
    expect(listed.status).toBe(200);
    const entry = listed.body.items.find((item: { id: string }) => item.id === created.body.id);
    expect(entry).toMatchObject({ name: 'ci key', prefix: created.body.prefix, revoked_at: null });
    expect(JSON.stringify(listed.body)).not.toContain(created.body.key);
    expect(entry).not.toHaveProperty('key_hash');

    const [stored] = await sql<
      { key_hash: string }[]
    >`select key_hash from public.tenant_api_keys where id = ${created.body.id}`;
    expect(stored.key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.key_hash).not.toContain(created.body.key);
  });

  it('can be created only by admins of the tenant', async () => {
    const before = await countTenantRows(sql, tenancyTables, [tenantA, tenantB]);
    expect((await send('POST', `/ops/tenants/${tenantA}/api-keys`, tokens.memberA, { name: 'no' })).status).toBe(403);
    expect((await send('POST', `/ops/tenants/${tenantA}/api-keys`, tokens.adminB, { name: 'no' })).status).toBe(404);
    expect((await send('GET', `/ops/tenants/${tenantA}/api-keys`, tokens.outsider)).status).toBe(404);
    expect(await countTenantRows(sql, tenancyTables, [tenantA, tenantB])).toEqual(before);
  });

  it('are revoked by an admin of their tenant only, idempotently', async () => {
    const created = await send('POST', `/ops/tenants/${tenantA}/api-keys`, 'service', { name: 'to revoke' });
    const id = created.body.id as string;
    expect((await send('DELETE', `/ops/api-keys/${id}`, tokens.memberA)).status).toBe(403);
    expect((await send('DELETE', `/ops/api-keys/${id}`, tokens.adminB)).status).toBe(404);
    const [stillActive] = await sql`select revoked_at from public.tenant_api_keys where id = ${id}`;
    expect(stillActive.revoked_at).toBeNull();

    const first = await send('DELETE', `/ops/api-keys/${id}`, tokens.adminA);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id, already_revoked: false });
    const second = await send('DELETE', `/ops/api-keys/${id}`, tokens.adminA);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ id, already_revoked: true, revoked_at: first.body.revoked_at });
    expect((await send('DELETE', `/ops/api-keys/${crypto.randomUUID()}`, 'service')).status).toBe(404);
  });
});
