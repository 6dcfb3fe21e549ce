import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimJobs, registerJobKind } from '../../supabase/functions/_shared/jobs/index.ts';
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

// The jobs function through the real stack: a tenant member (user JWT) or a
// tenant API key enqueues for its own tenant, reads a job with its events,
// cancels a waiting job; other tenants' jobs are 404; bad input is a 400
// naming the field and changes nothing.
const sql = connectDatabase();
const kind = `test.api.${crypto.randomUUID().slice(0, 8)}`;
let tenantA: string;
let tenantB: string;
let memberA: string;
let memberB: string;
let twoTenants: string;
let apiKeyA: string;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  await registerJobKind(sql, { kind, description: 'jobs API test', maxAttempts: 2, timeoutSeconds: 30 });
  tenantA = await createTenant('Jobs API A');
  tenantB = await createTenant('Jobs API B');
  memberA = await createUser(sql, 'jobs-member-a');
  memberB = await createUser(sql, 'jobs-member-b');
  twoTenants = await createUser(sql, 'jobs-two-tenants');
  await addMember(sql, tenantA, memberA, 'member');
  await addMember(sql, tenantB, memberB, 'member');
  await addMember(sql, tenantA, twoTenants, 'member');
  await addMember(sql, tenantB, twoTenants, 'member');
  for (const [name, id] of Object.entries({ memberA, memberB, twoTenants })) tokens[name] = await signUserToken(id);
  const response = await call(`/ops/tenants/${tenantA}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"jobs"}',
  });
  apiKeyA = ((await response.json()) as { key: string }).key;
});
afterAll(() => sql.end());

async function send(
  method: string,
  pathname: string,
  bearer: string,
  body?: unknown,
  extra: Record<string, string> = {},
) {
  const response = await call(pathname, {
    method,
    headers: bearer === 'service' ? serviceHeaders(extra) : headersFor(bearer, extra),
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  // deno-lint-ignore no-explicit-any -- response bodies are asserted field by field
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

async function jobCount(tenantId: string): Promise<number> {
  const [row] = await sql<
    { count: number }[]
  >`select count(*)::int as count from public.jobs where tenant_id = ${tenantId}`;
  return row.count;
}

describe('POST /jobs', () => {
  it('lets a member enqueue for its tenant, and shows the job with its events', async () => {
    const created = await send('POST', '/jobs', tokens.memberA, {
      kind,
      payload: { to: 'a@example.test' },
      priority: 5,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      tenant_id: tenantA,
      kind,
      status: 'queued',
      priority: 5,
      attempts: 0,
      max_attempts: 2,
    });
    expect(created.body).not.toHaveProperty('lease_token');

    const read = await send('GET', `/jobs/${created.body.id}`, tokens.memberA);
    expect(read.status).toBe(200);
    expect(read.body.status).toBe('queued');
    expect(read.body.events).toEqual([
      expect.objectContaining({ event: 'queued', from_status: null, to_status: 'queued', attempt: 0 }),
    ]);
  });

  it('honours Idempotency-Key: the same key and body return the first job, another body is a 409', async () => {
    const key = `order-${crypto.randomUUID()}`;
    const first = await send('POST', '/jobs', tokens.memberA, { kind, payload: { n: 1 } }, { 'idempotency-key': key });
    const second = await send('POST', '/jobs', tokens.memberA, { kind, payload: { n: 1 } }, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(second.body.id).toBe(first.body.id);
    const different = await send('POST', '/jobs', tokens.memberA, { kind, payload: { n: 2 } }, {
      'idempotency-key': key,
    });
    expect(different.status).toBe(409);
    expect(different.body).toEqual({
      error: {
        code: 'conflict',
        message: `idempotency key "${key}" was already used for a different job`,
        details: null,
      },
    });
    const [row] = await sql<
      { count: number }[]
    >`select count(*)::int as count from public.jobs where idempotency_key = ${key}`;
    expect(row.count).toBe(1);
  });

  it('lets a tenant API key enqueue for its own tenant', async () => {
    const created = await send('POST', '/jobs', apiKeyA, { kind, payload: {} });
    expect(created.status).toBe(201);
    expect(created.body.tenant_id).toBe(tenantA);
    expect((await send('GET', `/jobs/${created.body.id}`, apiKeyA)).status).toBe(200);
  });

  it('asks a member of several tenants which one, and refuses a tenant it is not in', async () => {
    const ambiguous = await send('POST', '/jobs', tokens.twoTenants, { kind, payload: {} });
    expect(ambiguous.status).toBe(400);
    expect(ambiguous.body.error.message).toMatch(/^x-tenant-id: /);
    const chosen = await send('POST', '/jobs', tokens.twoTenants, { kind, payload: {} }, { 'x-tenant-id': tenantB });
    expect(chosen.status).toBe(201);
    expect(chosen.body.tenant_id).toBe(tenantB);
    const before = await jobCount(tenantB);
    const refused = await send('POST', '/jobs', tokens.memberA, { kind, payload: {} }, { 'x-tenant-id': tenantB });
    expect(refused.status).toBe(403);
    expect(await jobCount(tenantB)).toBe(before);
  });

  it('answers bad input with 400 naming the field, and changes nothing', async () => {
    const before = await jobCount(tenantA);
    const cases: [unknown, Record<string, string>, RegExp][] = [
      [{ kind: 'no.such.kind', payload: {} }, {}, /^kind: unknown job kind "no\.such\.kind"$/],
      [{ kind: 'Bad Kind', payload: {} }, {}, /^kind: must be a job kind name/],
      [{ payload: {} }, {}, /^kind: /],
      [{ kind, payload: {}, priority: 1.5 }, {}, /^priority: must be a whole number/],
      [{ kind, payload: {}, max_attempts: 0 }, {}, /^max_attempts: /],
      [{ kind, payload: {}, run_at: 'tomorrow' }, {}, /^run_at: must be an ISO 8601 date-time/],
      [{ kind, payload: {}, lease_token: 'x' }, {}, /lease_token/],
      [{ kind, payload: {} }, { 'idempotency-key': 'has space' }, /^Idempotency-Key: /],
      ['{"kind":', {}, /not valid JSON/],
    ];
    for (const [body, extra, message] of cases) {
      const response = await send('POST', '/jobs', tokens.memberA, body, extra);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.message, JSON.stringify(body)).toMatch(message);
    }
    expect(await jobCount(tenantA)).toBe(before);
  });

  it('refuses callers without credentials', async () => {
    const response = await send('POST', '/jobs', undefined as unknown as string, { kind, payload: {} });
    expect(response.status).toBe(401);
  });
});

describe('GET /jobs/:id and POST /jobs/:id/cancel', () => {
  it("hides another tenant's job (404) from users and API keys, and lets the service role see it", async () => {
    const other = await send('POST', '/jobs', tokens.memberB, { kind, payload: { secret: true } });
    expect((await send('GET', `/jobs/${other.body.id}`, tokens.memberA)).status).toBe(404);
    expect((await send('GET', `/jobs/${other.body.id}`, apiKeyA)).status).toBe(404);
    const cancel = await send('POST', `/jobs/${other.body.id}/cancel`, tokens.memberA);
    expect(cancel.status).toBe(404);
    expect(cancel.body.error.code).toBe('not_found');
    expect((await send('GET', `/jobs/${other.body.id}`, tokens.memberB)).body.status).toBe('queued');
    expect((await send('GET', `/jobs/${other.body.id}`, 'service')).status).toBe(200);
  });

  it('cancels a queued job once, with its event; cancelling again answers it as is', async () => {
    const job = await send('POST', '/jobs', tokens.memberA, { kind, payload: {} });
    const cancelled = await send('POST', `/jobs/${job.body.id}/cancel`, tokens.memberA, { reason: 'changed my mind' });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.events.map((event: { event: string }) => event.event)).toEqual(['queued', 'cancelled']);
    expect(cancelled.body.events[1].details.reason).toBe(`changed my mind (by user:${memberA})`);
    const again = await send('POST', `/jobs/${job.body.id}/cancel`, tokens.memberA);
    expect(again.status).toBe(200);
    expect(again.body.events).toHaveLength(2);
  });

  it('refuses to cancel a running job with 409', async () => {
    const job = await send('POST', '/jobs', tokens.memberA, { kind, payload: {}, priority: -30000 });
    const [claimed] = await claimJobs(sql, { worker: 'api-test', kinds: [kind], batchSize: 1 });
    expect(claimed.id).toBe(job.body.id);
    const refused = await send('POST', `/jobs/${job.body.id}/cancel`, tokens.memberA);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/is assigned: only queued or retry_scheduled jobs can be cancelled/);
    expect((await send('GET', `/jobs/${job.body.id}`, tokens.memberA)).body.status).toBe('assigned');
  });

  it('answers a non-UUID id with 400 naming it', async () => {
    const response = await send('GET', '/jobs/not-a-uuid', tokens.memberA);
    expect(response.status).toBe(400);
    expect(response.body.error.message).toMatch(/^id: must be a UUID/);
  });
});
