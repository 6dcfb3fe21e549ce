import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../supabase/functions/_shared/clock.ts';
import { createBatchedBudgetLedger, type ReserveRequest } from '../../supabase/functions/_shared/economics/ledger.ts';
import {
  closeLeasesOnUnload,
  LeasedBudgetLedger,
  type LeaseOptions,
} from '../../supabase/functions/_shared/economics/lease-ledger.ts';
import { createJsonLogger } from '../../supabase/functions/_shared/logger.ts';
import { type FakeUpstream, startFakeUpstream } from '../fakes/fake-upstream.ts';
import { createCatalogFixture } from '../helpers/catalog.ts';
import { createInProcessRouter, fixedKeySource, type InProcessRouter } from '../helpers/in-process-router.ts';
import { call, connectDatabase, createTenant, serviceHeaders, stack } from '../helpers/stack.ts';
import { eventually } from '../helpers/eventually.ts';

// Budget leases (economics/lease-ledger.ts over migration 20261123000600_economics.sql): the
// real ledger classes against the real SQL, one postgres pool per "isolate".
const sql = connectDatabase();
const pools: postgres.Sql[] = [];
const logger = createJsonLogger({ level: 'error', write: () => {} });
const estimate = { usd: 100, tokens: 40 };

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end({ timeout: 5 })));
  await sql.end();
});

function isolate(options: Partial<LeaseOptions> = {}, clock: Clock = systemClock): LeasedBudgetLedger {
  const db = postgres(stack.dbUrl, { max: 3, onnotice: () => {} });
  pools.push(db);
  const flush = createBatchedBudgetLedger(db, { maxBatch: 64, maxInFlight: 1 });
  return new LeasedBudgetLedger(flush, clock, logger, {
    holder: `test:${crypto.randomUUID()}`,
    requestsPerLease: 8,
    admitSeconds: 10,
    ttlSeconds: 600,
    idleCloseMs: 60_000,
    declineBackoffMs: 0,
    ...options,
  });
}

async function tenantWith(limit: number, requestsPerMinute?: number): Promise<string> {
  const tenantId = await createTenant('Leases');
  await sql`insert into public.budgets (tenant_id, scope, unit, period, limit_amount)
            values (${tenantId}, 'tenant', 'usd_micros', 'total', ${limit})`;
  if (requestsPerMinute) {
    await sql`insert into public.rate_limits (tenant_id, requests_per_minute) values (${tenantId}, ${requestsPerMinute})`;
  }
  return tenantId;
}

function request(tenantId: string, extra: Partial<ReserveRequest> = {}): ReserveRequest {
  return {
    request_id: crypto.randomUUID(),
    tenant_id: tenantId,
    api_key_id: null,
    user_id: null,
    model_alias: 'lease-model',
    usd_micros: estimate.usd,
    tokens: estimate.tokens,
    ttl_seconds: 600,
    ...extra,
  };
}

function settlement(requestId: string, cost = estimate.usd) {
  return {
    request_id: requestId,
    prompt_tokens: 20,
    completion_tokens: 10,
    cache_write_tokens: 0,
    cache_read_tokens: 0,
    dialect: 'openai_chat' as const,
    cost_usd_micros: cost,
    provider: 'fake',
    upstream_model: 'fake-model',
    latency_ms: 1,
    status: 'succeeded' as const,
  };
}

async function state(tenantId: string) {
  const [row] = await sql<
    { spent: number; reserved: number; leases: number; open: number; records: number; cost: number; leased: number }[]
  >`
    select (select coalesce(sum(c.spent), 0)::int from public.usage_counters c join public.budgets b on b.id = c.budget_id
            where b.tenant_id = ${tenantId}) as spent,
           (select coalesce(sum(c.reserved), 0)::int from public.usage_counters c join public.budgets b on b.id = c.budget_id
            where b.tenant_id = ${tenantId}) as reserved,
           (select count(*)::int from public.budget_leases l join public.budget_reservations r on r.request_id = l.reservation_id
            where r.tenant_id = ${tenantId}) as leases,
           (select count(*)::int from public.budget_reservations r where r.tenant_id = ${tenantId} and r.status = 'reserved') as open,
           (select count(*)::int from public.usage_records u where u.tenant_id = ${tenantId}) as records,
           (select coalesce(sum(u.cost_usd_micros), 0)::int from public.usage_records u where u.tenant_id = ${tenantId}) as cost,
           (select count(*)::int from public.usage_records u where u.tenant_id = ${tenantId} and u.lease_id is not null) as leased`;
  return row;
}

/** Requests the tenant's rate limit counted this minute. */
async function rateWindowRequests(tenantId: string): Promise<number> {
  const [window] = await sql<{ requests: number }[]>`
    select w.requests from public.rate_limit_windows w join public.rate_limits l on l.id = w.rate_limit_id
    where l.tenant_id = ${tenantId}`;
  return window.requests;
}

async function invariantViolations(tenantId: string) {
  return await sql`
    select v.* from public.usage_invariant_violations() v join public.budgets b on b.id = v.budget_id where b.tenant_id = ${tenantId}`;
}

/** True once `check` holds (the shared helper's deadline), else false for the caller's assertion. */
const eventuallyTrue = (check: () => Promise<boolean>) => eventually(check, Boolean);

describe('budget leases (ledger against the real SQL)', () => {
  it('admits a lease worth of requests with one acquisition and charges each to it', async () => {
    const tenantId = await tenantWith(1_000_000, 1000);
    const ledger = isolate();
    const requests = Array.from({ length: 8 }, () => request(tenantId));
    const answers = await Promise.all(requests.map((r) => ledger.reserve(r)));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill('reserved'));
    // The rate-limit status counts what the lease still holds for this isolate.
    const last = answers[7];
    expect(last.status === 'reserved' && last.rate_limit?.limit_requests).toBe(1000);
    expect((await state(tenantId)).leases).toBe(1);
    expect((await state(tenantId)).reserved).toBe(8 * estimate.usd);

    const settled = await Promise.all(requests.map((r, i) => ledger.settle(settlement(r.request_id, 50 + i))));
    expect(settled.every((s) => s.status === 'settled')).toBe(true);
    const during = await state(tenantId);
    expect(during).toMatchObject({
      spent: 8 * 50 + 28,
      reserved: 8 * estimate.usd - (8 * 50 + 28),
      records: 8,
      leased: 8,
    });
    expect(await invariantViolations(tenantId)).toEqual([]);

    await ledger.close();
    expect(await state(tenantId)).toMatchObject({ spent: 8 * 50 + 28, reserved: 0, open: 0, cost: 8 * 50 + 28 });
    expect(await rateWindowRequests(tenantId)).toBe(8);
    expect(await invariantViolations(tenantId)).toEqual([]);
  });

  it('gives a request whose id the caller chose its own reservation, so a retry is a duplicate', async () => {
    const tenantId = await tenantWith(1_000_000);
    const ledger = isolate();
    const chosen = request(tenantId, { request_id: `caller-${crypto.randomUUID()}`, own_reservation: true });
    expect((await ledger.reserve(chosen)).status).toBe('reserved');
    expect((await ledger.reserve(chosen)).status).toBe('duplicate');
    const [row] = await sql<{ status: string }[]>`
      select status from public.budget_reservations where request_id = ${chosen.request_id}`;
    expect(row.status).toBe('reserved');
    expect((await state(tenantId)).leases).toBe(0);
    expect((await ledger.settle(settlement(chosen.request_id))).status).toBe('settled');
    await ledger.close();
  });

  it('uses per-request reservations near a limit: the lease is declined and refusals stay exact', async () => {
    // 3 estimates of room: a lease of 8 must leave 8 free, so it is declined.
    const tenantId = await tenantWith(3 * estimate.usd);
    const ledger = isolate();
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push((await ledger.reserve(request(tenantId))).status);
    expect(answers).toEqual(['reserved', 'reserved', 'reserved', 'refused', 'refused']);
    expect((await state(tenantId)).leases).toBe(0);
    await ledger.close();
  });

  it('never lets two isolates overspend one budget, and refuses early by at most one lease per other isolate', async () => {
    const limit = 50 * estimate.usd;
    const tenantId = await tenantWith(limit);
    const [a, b] = [isolate(), isolate()];
    let admitted = 0;
    await Promise.all(Array.from({ length: 120 }, async (_, i) => {
      const ledger = i % 2 === 0 ? a : b;
      const r = request(tenantId);
      const answer = await ledger.reserve(r);
      if (answer.status !== 'reserved') return;
      admitted += 1;
      await new Promise((resolve) => setTimeout(resolve, i % 5));
      expect((await ledger.settle(settlement(r.request_id))).status).toBe('settled');
    }));
    await Promise.all([a.close(), b.close()]);
    const after = await state(tenantId);
    expect(after.spent).toBe(admitted * estimate.usd);
    expect(after.spent).toBeLessThanOrEqual(limit);
    expect(admitted).toBeGreaterThanOrEqual(50 - 2 * 8);
    expect(after).toMatchObject({ reserved: 0, open: 0, records: admitted, cost: admitted * estimate.usd });
    expect(await invariantViolations(tenantId)).toEqual([]);
  });

  it('keeps a released request counted against the rate limit and gives its estimate back when the lease closes', async () => {
    const tenantId = await tenantWith(1_000_000, 1000);
    const ledger = isolate();
    const requests = [request(tenantId), request(tenantId), request(tenantId)];
    for (const r of requests) expect((await ledger.reserve(r)).status).toBe('reserved');
    expect(await ledger.release({ request_id: requests[0].request_id, reason: 'upstream_failed' })).toEqual({
      status: 'released',
    });
    for (const r of requests.slice(1)) await ledger.settle(settlement(r.request_id));
    await ledger.close();
    expect(await state(tenantId)).toMatchObject({ spent: 2 * estimate.usd, reserved: 0, open: 0, records: 2 });
    expect(await rateWindowRequests(tenantId)).toBe(3);
    expect(await invariantViolations(tenantId)).toEqual([]);
  });

  it('closes an idle lease by itself, and takes a new lease when the admission window ends', async () => {
    const tenantId = await tenantWith(1_000_000);
    const idle = isolate({ idleCloseMs: 100 });
    const first = request(tenantId);
    await idle.reserve(first);
    await idle.settle(settlement(first.request_id));
    expect(await eventuallyTrue(async () => (await state(tenantId)).open === 0)).toBe(true);
    expect((await state(tenantId)).reserved).toBe(0);

    // The isolate's clock stands still until the test moves it past the 200 ms admission window: a
    // slow acquisition cannot use the window up (which took a fourth lease), and no sleep is needed.
    let now = Date.now();
    const short = isolate({ admitSeconds: 0.2 }, { now: () => new Date(now) });
    const second = request(tenantId);
    await short.reserve(second);
    now += 300;
    const third = request(tenantId);
    await short.reserve(third);
    await short.settle(settlement(second.request_id));
    await short.settle(settlement(third.request_id));
    expect((await state(tenantId)).leases).toBe(3);
    await short.close();
    await idle.close();
    expect(await state(tenantId)).toMatchObject({ open: 0, reserved: 0, records: 3, spent: 3 * estimate.usd });
    expect(await invariantViolations(tenantId)).toEqual([]);
  });

  it('gives its leases back when the runtime announces the isolate is stopping (beforeunload)', async () => {
    const tenantId = await tenantWith(1_000_000);
    const ledger = isolate();
    const runtime = new EventTarget();
    closeLeasesOnUnload(ledger, runtime);
    const first = request(tenantId);
    await ledger.reserve(first);
    await ledger.settle(settlement(first.request_id));
    expect((await state(tenantId)).open).toBe(1);
    runtime.dispatchEvent(new Event('beforeunload'));
    expect(await eventuallyTrue(async () => (await state(tenantId)).open === 0)).toBe(true);
    expect(await state(tenantId)).toMatchObject({ reserved: 0, spent: estimate.usd, records: 1 });
  });
});

describe('budget leases through the router', () => {
  let fake: FakeUpstream;
  let router: InProcessRouter;
  let alias: string;

  beforeAll(async () => {
    fake = await startFakeUpstream();
    alias = (await createCatalogFixture(sql, { baseUrl: fake.endpoints.openai })).alias;
    router = createInProcessRouter(fixedKeySource, { BUDGET_LEASE_IDLE_MS: '100' });
  });
  afterAll(async () => {
    await router.close();
    await fake.close();
  });

  it('charges generated-id requests to a lease and keeps caller-chosen ids idempotent', async () => {
    const tenantId = await tenantWith(10_000_000);
    const response = await call(`/ops/tenants/${tenantId}/api-keys`, {
      method: 'POST',
      headers: serviceHeaders(),
      body: '{"name":"leases"}',
    });
    const key = ((await response.json()) as { key: string }).key;
    const chat = (headers: Record<string, string>) =>
      router.app.request('/llm-router/v1/chat/completions', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${key}`,
          apikey: stack.anonKey,
          ...headers,
        },
        body: JSON.stringify({ model: alias, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
      });

    const leased = await chat({ 'x-switchyard-domain': 'support' });
    expect(leased.status).toBe(200);
    const leasedId = leased.headers.get('x-request-id') as string;
    const [record] = await sql<{ lease_id: string | null; domain: string | null }[]>`
      select lease_id, domain from public.usage_records where request_id = ${leasedId}`;
    expect(record.lease_id).toMatch(/^lease:/);
    expect(record.domain).toBe('support');

    const chosenId = `trace-${crypto.randomUUID()}`;
    expect((await chat({ 'x-request-id': chosenId })).status).toBe(200);
    const [own] = await sql<
      { status: string }[]
    >`select status from public.budget_reservations where request_id = ${chosenId}`;
    expect(own.status).toBe('settled');
    expect((await chat({ 'x-request-id': chosenId })).status).toBe(409);

    expect(await eventuallyTrue(async () => (await state(tenantId)).open === 0)).toBe(true);
    expect(await invariantViolations(tenantId)).toEqual([]);
  });
});

interface FlushAnswers {
  settled: { status: string }[];
  reserved: { status: string }[];
}

describe('flush_ledger lock order', () => {
  // Two isolates' flushes of one tenant with a model budget (id sorting first) and a tenant
  // budget. Flush B settles a model request (both counters); flush A settles a request of
  // another model (tenant counter only) and reserves one of the model. A third session holds
  // the model counter so that B queues for it first and A second: a flush that locked its
  // settlement's counters before its reservation's would then hold the tenant counter while
  // waiting for the model one, and B the reverse (a deadlock, SQLSTATE 40P01).
  it('takes every lock of a flush in one global order, so concurrent flushes queue instead of deadlocking', async () => {
    const tenantId = await createTenant('Lock order');
    const modelBudget = `0000${crypto.randomUUID().slice(4)}`;
    const tenantBudget = `ffff${crypto.randomUUID().slice(4)}`;
    await sql`insert into public.budgets (id, tenant_id, scope, model_alias, unit, period, limit_amount) values
              (${modelBudget}, ${tenantId}, 'model', 'lock-m', 'usd_micros', 'total', 1000000),
              (${tenantBudget}, ${tenantId}, 'tenant', null, 'usd_micros', 'total', 1000000)`;
    const reserve = (id: string, model: string) => ({
      request_id: id,
      tenant_id: tenantId,
      model_alias: model,
      usd_micros: 100,
      tokens: 10,
      ttl_seconds: 600,
    });
    const [otherModel, lockModel, later] = ['other', 'model', 'later'].map((name) => `${name}-${crypto.randomUUID()}`);
    await sql`select public.reserve_budgets(${
      sql.json([reserve(otherModel, 'lock-o'), reserve(lockModel, 'lock-m')])
    })`;

    const pool = postgres(stack.dbUrl, { max: 3, onnotice: () => {} });
    pools.push(pool);
    const [holder, first, second] = await Promise.all([pool.reserve(), pool.reserve(), pool.reserve()]);
    const pidOf = async (connection: postgres.ReservedSql) =>
      (await connection<{ pid: number }[]>`select pg_backend_pid() as pid`)[0].pid;
    const waitUntilBlocked = async (pid: number) =>
      await eventuallyTrue(async () =>
        (await sql<{ waiting: boolean }[]>`
          select wait_event_type = 'Lock' as waiting from pg_stat_activity where pid = ${pid}`)[0]?.waiting === true
      );
    const [firstPid, secondPid] = [await pidOf(first), await pidOf(second)];
    try {
      await holder.unsafe('begin');
      await holder`select 1 from public.usage_counters where budget_id = ${modelBudget} for update`;
      // postgres.js sends a query when it is awaited or executed: these start now and block.
      const flushB = first<{ answers: FlushAnswers }[]>`
        select public.flush_ledger('[]', ${sql.json([settlement(lockModel)])}, '[]') as answers`.execute();
      expect(await waitUntilBlocked(firstPid)).toBe(true);
      const flushA = second<{ answers: FlushAnswers }[]>`
        select public.flush_ledger(${sql.json([reserve(later, 'lock-m')])}, ${sql.json([settlement(otherModel)])}, '[]')
          as answers`.execute();
      expect(await waitUntilBlocked(secondPid)).toBe(true);
      await holder.unsafe('commit');
      const [b, a] = await Promise.all([flushB, flushA]);
      expect(b[0].answers.settled).toEqual([expect.objectContaining({ status: 'settled' })]);
      expect(a[0].answers.settled).toEqual([expect.objectContaining({ status: 'settled' })]);
      expect(a[0].answers.reserved).toEqual([expect.objectContaining({ status: 'reserved' })]);
    } finally {
      holder.release();
      first.release();
      second.release();
    }
    expect(await invariantViolations(tenantId)).toEqual([]);
  });
});
