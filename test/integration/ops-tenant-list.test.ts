import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addMember,
  call,
  connectDatabase,
  createTenant,
  createUser,
  headersFor,
  serviceHeaders,
  signUserToken,
} from '../helpers/stack.ts';

// GET /ops/tenants: the tenants a caller can see, with its role in each (what the console's tenant picker shows).
const sql = connectDatabase();
let tenantA: string;
let tenantB: string;
let adminA: string;
let operatorAB: string;
let outsider: string;

beforeAll(async () => {
  tenantA = await createTenant(`List tenant A ${crypto.randomUUID()}`);
  tenantB = await createTenant(`List tenant B ${crypto.randomUUID()}`);
  adminA = await createUser(sql, 'list-admin-a');
  operatorAB = await createUser(sql, 'list-operator-ab');
  outsider = await createUser(sql, 'list-outsider');
  await addMember(sql, tenantA, adminA, 'admin');
  await addMember(sql, tenantA, operatorAB, 'operator');
  await addMember(sql, tenantB, operatorAB, 'member');
});
afterAll(() => sql.end());

interface TenantItem {
  id: string;
  name: string;
  slug: string;
  role: string | null;
}

async function list(headers: Record<string, string>, query = '') {
  const response = await call(`/ops/tenants${query}`, { headers });
  // deno-lint-ignore no-explicit-any -- error bodies are asserted whole
  return { status: response.status, body: (await response.json()) as any };
}

describe('GET /ops/tenants', () => {
  it('shows a user only their tenants, each with their role', async () => {
    const admin = await list(headersFor(await signUserToken(adminA)));
    expect(admin.status).toBe(200);
    expect((admin.body.items as TenantItem[]).map(({ id, role }) => ({ id, role }))).toEqual([
      { id: tenantA, role: 'admin' },
    ]);

    const both = await list(headersFor(await signUserToken(operatorAB)));
    expect((both.body.items as TenantItem[]).map(({ id, role }) => ({ id, role }))).toEqual([
      { id: tenantB, role: 'member' },
      { id: tenantA, role: 'operator' },
    ]);

    expect((await list(headersFor(await signUserToken(outsider)))).body).toEqual({ items: [] });
  });

  it('shows the service role every tenant, newest first, without a role', async () => {
    const service = await list(serviceHeaders(), '?limit=1000');
    expect(service.status).toBe(200);
    const items = service.body.items as TenantItem[];
    const ids = items.map((item) => item.id);
    expect(ids.indexOf(tenantB)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(tenantB)).toBeLessThan(ids.indexOf(tenantA));
    expect(items.find((item) => item.id === tenantA)).toMatchObject({
      role: null,
      name: expect.stringMatching(/^List tenant A/),
    });
  });

  it('refuses a bad limit naming the field, and a caller without credentials', async () => {
    const bad = await list(serviceHeaders(), '?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'validation_failed', message: expect.stringContaining('limit') });
    const anonymous = await list(headersFor(undefined));
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.message).toBe('missing Authorization header');
  });
});
