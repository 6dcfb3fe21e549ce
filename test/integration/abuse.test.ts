import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../fakes/fake-upstream.ts';
import { type CatalogFixture, createCatalogFixture } from '../helpers/catalog.ts';
import { eventually } from '../helpers/eventually.ts';
import { call, connectDatabase, createTenant, headersFor, serviceHeaders } from '../helpers/stack.ts';

// Faults and abuse through the real llm-router under Deno (issue 21): a
// replayed request id is refused before any upstream call whoever sends it,
// and a client that leaves before the first upstream byte frees its
// reservation at once, with no retry and nothing billed.
const sql = connectDatabase();
let fake: FakeUpstream;
let catalog: CatalogFixture;
const upstreamModel = `abuse-${crypto.randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  fake = await startFakeUpstream({ models: [upstreamModel] });
  catalog = await createCatalogFixture(sql, {
    baseUrl: fake.endpoints.openai,
    upstreamModel,
    inputCostPerMillion: 1_000_000,
    outputCostPerMillion: 2_000_000,
    // Long enough that a test which waited for it would see a retry and a bill, not a release.
    firstByteTimeoutMs: 15_000,
    totalTimeoutMs: 30_000,
  });
  const stored = await call('/keys', {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ provider: catalog.providerSlug, secret: `sk-test-${crypto.randomUUID()}` }),
  });
  expect(stored.status).toBe(201);
});
afterAll(async () => {
  await sql`update public.llm_providers set enabled = false where id = ${catalog.providerId}`;
  await fake.close();
  await sql.end();
});

async function tenantKey(): Promise<{ tenantId: string; key: string }> {
  const tenantId = await createTenant('Abuse');
  const created = await call(`/ops/tenants/${tenantId}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"abuse"}',
  });
  expect(created.status).toBe(201);
  return { tenantId, key: ((await created.json()) as { key: string }).key };
}

function chat(key: string, options: { requestId?: string; stream?: boolean; signal?: AbortSignal } = {}) {
  return call('/llm-router/v1/chat/completions', {
    method: 'POST',
    headers: headersFor(key, options.requestId ? { 'x-request-id': options.requestId } : {}),
    body: JSON.stringify({
      model: catalog.alias,
      messages: [{ role: 'user', content: 'replay me' }],
      max_tokens: 5,
      stream: options.stream ?? false,
    }),
    signal: options.signal,
  });
}

/** Upstream calls the fake has seen for this file's model. */
const upstreamCalls = () => fake.requests.filter((request) => request.model === upstreamModel).length;

const usageRecords = async (tenantId: string) =>
  (await sql<{ n: number }[]>`select count(*)::int as n from public.usage_records where tenant_id = ${tenantId}`)[0].n;

async function violations(tenantId: string) {
  return await sql`
    select v.kind from public.usage_invariant_violations() v
    left join public.budgets b on b.id = v.budget_id
    where b.tenant_id = ${tenantId} or v.kind = 'settled_without_usage_record'`;
}

describe('replayed x-request-id', () => {
  let served: { tenantId: string; key: string; leasedId: string; chosenId: string };

  beforeAll(async () => {
    const { tenantId, key } = await tenantKey();
    // The router serves the new alias once its catalog has loaded it; that first answer is leased.
    const first = await eventually(() => chat(key), (response) => response.status === 200);
    expect(first.status).toBe(200);
    await first.text();
    const leasedId = first.headers.get('x-request-id') as string;
    const [leased] = await sql<{ lease_id: string | null }[]>`
      select lease_id from public.usage_records where request_id = ${leasedId}`;
    expect(leased.lease_id).toMatch(/^lease:/);
    const chosenId = `abuse-${crypto.randomUUID()}`;
    const own = await chat(key, { requestId: chosenId });
    expect(own.status).toBe(200);
    await own.text();
    served = { tenantId, key, leasedId, chosenId };
  });

  /** Sends `requestId` again and returns the error body; asserts nothing moved. */
  async function replay(key: string, tenantId: string, requestId: string, stream: boolean) {
    const callsBefore = upstreamCalls();
    const recordsBefore = await usageRecords(tenantId);
    const response = await chat(key, { requestId, stream });
    const body = await response.json();
    expect(response.status).toBe(409);
    expect(upstreamCalls()).toBe(callsBefore);
    expect(await usageRecords(tenantId)).toBe(recordsBefore);
    return body;
  }

  const refusal = {
    error: {
      message: 'x-request-id has already been used; send a new one for each request',
      type: 'invalid_request_error',
      param: 'x-request-id',
      code: 'conflict',
    },
  };

  it('refuses a router-assigned (leased) id sent again, streamed or not, before any upstream call', async () => {
    const { key, tenantId, leasedId } = served;
    expect(await replay(key, tenantId, leasedId, true)).toEqual(refusal);
    expect(await replay(key, tenantId, leasedId, false)).toEqual(refusal);
    const [reservations] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.budget_reservations where request_id = ${leasedId}`;
    expect(reservations.n).toBe(0);
    expect(await violations(tenantId)).toEqual([]);
  });

  it('refuses a caller-chosen id sent again, streamed or not', async () => {
    const { key, tenantId, chosenId } = served;
    expect(await replay(key, tenantId, chosenId, true)).toEqual(refusal);
    expect(await replay(key, tenantId, chosenId, false)).toEqual(refusal);
  });

  it("answers another tenant's replay of either id exactly as its owner's", async () => {
    const other = await tenantKey();
    for (const requestId of [served.leasedId, served.chosenId]) {
      expect(await replay(other.key, other.tenantId, requestId, true)).toEqual(refusal);
      expect(await replay(other.key, other.tenantId, requestId, false)).toEqual(refusal);
    }
    expect(await usageRecords(other.tenantId)).toBe(0);
  });

  it('refuses both ids in the Anthropic Messages dialect too, streamed or not, in its error shape', async () => {
    const { key, tenantId, leasedId, chosenId } = served;
    for (const requestId of [leasedId, chosenId]) {
      for (const stream of [false, true]) {
        const callsBefore = upstreamCalls();
        const recordsBefore = await usageRecords(tenantId);
        const response = await call('/llm-router/v1/messages', {
          method: 'POST',
          headers: {
            'x-api-key': key,
            'anthropic-version': '2023-06-01',
            'content-type': 'application/json',
            'x-request-id': requestId,
          },
          body: JSON.stringify({
            model: catalog.alias,
            max_tokens: 5,
            stream,
            messages: [{ role: 'user', content: 'replay me' }],
          }),
        });
        expect({ requestId, stream, status: response.status, body: await response.json() }).toEqual({
          requestId,
          stream,
          status: 409,
          body: { type: 'error', error: { type: 'invalid_request_error', message: refusal.error.message } },
        });
        expect(upstreamCalls()).toBe(callsBefore);
        expect(await usageRecords(tenantId)).toBe(recordsBefore);
      }
    }
  });

  it('refuses an id in the router-assigned form that the caller made up, like any used one', async () => {
    const { key, tenantId } = served;
    const forged = `req_${crypto.randomUUID().replaceAll('-', '')}`;
    expect(await replay(key, tenantId, forged, false)).toEqual(refusal);
  });
});

describe('a client that leaves before the first upstream byte', () => {
  type Fault = { kind: 'hang' } | { kind: 'delay'; ms: number };

  /**
   * Sends one request that the upstream holds, leaves once the upstream has it,
   * and waits until the router has closed the upstream connection. With
   * `requestId` the request takes its own reservation; without, a budget lease.
   */
  async function leaveEarly(stream: boolean, fault: Fault, requestId?: string) {
    const { tenantId, key } = await tenantKey();
    // Warm: the router knows the alias (a served answer, its own usage record).
    const warm = await eventually(() => chat(key), (response) => response.status === 200);
    await warm.text();
    const recordsBefore = await usageRecords(tenantId);
    const seen = fake.requests.length === 0 ? 0 : fake.requests[fake.requests.length - 1].seq;
    fake.enqueue(fault, { match: { model: upstreamModel } });
    const controller = new AbortController();
    const pending = chat(key, { requestId, stream, signal: controller.signal }).catch((error: unknown) => error);
    const ours = () => fake.requests.filter((request) => request.seq > seen && request.model === upstreamModel);
    // Leave once the upstream holds the request (admission happened before that).
    expect(await eventually(() => ours().length, (n) => n === 1)).toBe(1);
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    // The router hangs up on the upstream: the client's abort reaches it.
    const upstream = await eventually(() => ours(), (calls) => calls[0].closedEarly);
    expect(upstream[0].closedEarly).toBe(true);
    // No retry and no fallback after the client left, and nothing billed.
    expect(upstream).toHaveLength(1);
    expect(await usageRecords(tenantId)).toBe(recordsBefore);
    return { tenantId };
  }

  async function releasedReservation(requestId: string) {
    return await eventually(
      async () =>
        (await sql<{ status: string; reserved_ms: number }[]>`
          select status, (extract(epoch from finished_at - created_at) * 1000)::float8 as reserved_ms
          from public.budget_reservations where request_id = ${requestId}`)[0],
      (row) => row?.status !== 'reserved',
    );
  }

  it('releases its own reservation at once when the upstream hangs (non-streamed and streamed)', async () => {
    for (const stream of [false, true]) {
      const requestId = `leave-${crypto.randomUUID()}`;
      await leaveEarly(stream, { kind: 'hang' }, requestId);
      expect((await releasedReservation(requestId)).status).toBe('released');
    }
  });

  it('hangs up on the upstream and bills nothing for a leased request (non-streamed and streamed)', async () => {
    for (const stream of [false, true]) {
      const { tenantId } = await leaveEarly(stream, { kind: 'hang' });
      expect(await violations(tenantId)).toEqual([]);
    }
  });

  it('does not wait for a slow upstream to answer', async () => {
    const slowMs = 10_000;
    const requestId = `slow-${crypto.randomUUID()}`;
    await leaveEarly(false, { kind: 'delay', ms: slowMs }, requestId);
    const reservation = await releasedReservation(requestId);
    expect(reservation.status).toBe('released');
    // Released long before the upstream would have answered.
    expect(reservation.reserved_ms).toBeLessThan(slowMs);
  });
});
