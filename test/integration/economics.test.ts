import { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countPromptTokens } from '../../supabase/functions/_shared/router/tokens.ts';
import { type FakeUpstream, startFakeUpstream } from '../fakes/fake-upstream.ts';
import { type CatalogFixture, createCatalogFixture } from '../helpers/catalog.ts';
import { createInProcessRouter, fixedKeySource, type InProcessRouter } from '../helpers/in-process-router.ts';
import { call, connectDatabase, createTenant, serviceHeaders, stack } from '../helpers/stack.ts';

// Budget conservation through the real router code and the real SQL saga,
// with the official SDK as the client. Prices: 1 micro-USD per prompt token,
// 2 per completion token; every request asks max_tokens = 10.
const sql = connectDatabase();
let fake: FakeUpstream;
let router: InProcessRouter;
let catalog: CatalogFixture;
const messages = [{ role: 'user' as const, content: 'count my words please' }];
const maxTokens = 10;
const estimate = countPromptTokens(messages) * 1 + maxTokens * 2;

beforeAll(async () => {
  fake = await startFakeUpstream();
  catalog = await createCatalogFixture(sql, {
    baseUrl: fake.endpoints.openai,
    inputCostPerMillion: 1_000_000,
    outputCostPerMillion: 2_000_000,
  });
  router = createInProcessRouter(fixedKeySource);
});
afterAll(async () => {
  await router.close();
  await fake.close();
  await sql.end();
});

async function tenantWithKey(): Promise<{ tenantId: string; key: string }> {
  const tenantId = await createTenant('Economics');
  const response = await call(`/ops/tenants/${tenantId}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"economics"}',
  });
  return { tenantId, key: ((await response.json()) as { key: string }).key };
}

async function setBudget(tenantId: string, limit: number, extra: Record<string, unknown> = {}) {
  const response = await call('/ops/budgets', {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({
      tenant_id: tenantId,
      scope: 'tenant',
      unit: 'usd_micros',
      period: 'total',
      limit,
      ...extra,
    }),
  });
  expect(response.status).toBe(201);
}

async function counters(tenantId: string) {
  const [row] = await sql<{ spent: number; reserved: number; overflow: number; limit_amount: number }[]>`
    select c.spent::int, c.reserved::int, c.overflow::int, c.limit_amount::int
    from public.usage_counters c join public.budgets b on b.id = c.budget_id where b.tenant_id = ${tenantId}`;
  return row;
}

async function usageTotal(tenantId: string) {
  const [row] = await sql<{ records: number; cost: number }[]>`
    select count(*)::int as records, coalesce(sum(cost_usd_micros), 0)::int as cost from public.usage_records where tenant_id = ${tenantId}`;
  return row;
}

async function invariantViolationsFor(tenantId: string) {
  return await sql`
    select v.* from public.usage_invariant_violations() v join public.budgets b on b.id = v.budget_id where b.tenant_id = ${tenantId}`;
}

/** The same request without the SDK, to read status and headers of refusals. */
function rawChat(key: string): Promise<Response> {
  return Promise.resolve(router.app.request('/llm-router/v1/chat/completions', {
    method: 'POST',
    headers: { apikey: stack.anonKey, authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: catalog.alias, messages, max_tokens: maxTokens }),
  }));
}

function ask(client: ReturnType<InProcessRouter['client']>) {
  return client.chat.completions.create({ model: catalog.alias, messages, max_tokens: maxTokens }).then(
    () => 'ok' as const,
    (error: unknown) => {
      if (error instanceof APIError && error.status === 402) return 'budget' as const;
      throw error;
    },
  );
}

/** Samples the invariant while `work` runs; returns every violation seen. */
async function whileSampling<T>(tenantId: string, work: Promise<T>): Promise<{ result: T; violations: unknown[] }> {
  const violations: unknown[] = [];
  let running = true;
  const sampler = (async () => {
    while (running) {
      violations.push(...(await invariantViolationsFor(tenantId)));
      const row = await counters(tenantId);
      if (row && row.spent + row.reserved > row.limit_amount) violations.push(row);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
  })();
  const result = await work;
  running = false;
  await sampler;
  return { result, violations };
}

async function expectConserved(tenantId: string, successes: number) {
  const row = await counters(tenantId);
  const usage = await usageTotal(tenantId);
  expect(row.reserved).toBe(0);
  expect(row.spent + row.reserved).toBeLessThanOrEqual(row.limit_amount);
  expect(usage.records).toBe(successes);
  expect(row.spent + row.overflow).toBe(usage.cost);
  expect(await invariantViolationsFor(tenantId)).toEqual([]);
}

describe('budget conservation', () => {
  it('holds over 10 sequential requests against a budget of exactly 3 estimates', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 3 * estimate);
    const client = router.client(key);
    const outcomes: string[] = [];
    const { violations } = await whileSampling(
      tenantId,
      (async () => {
        for (let i = 0; i < 10; i++) outcomes.push(await ask(client));
      })(),
    );
    expect(violations).toEqual([]);
    expect(outcomes.filter((outcome) => outcome === 'budget').length).toBeGreaterThan(0);
    await expectConserved(tenantId, outcomes.filter((outcome) => outcome === 'ok').length);
  });

  it('lets exactly 3 of 5 parallel requests through when all are in flight at once', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 3 * estimate);
    fake.enqueue({ kind: 'delay', ms: 400 }, { times: 5, match: { model: catalog.upstreamModel } });
    const client = router.client(key);
    const { result, violations } = await whileSampling(
      tenantId,
      Promise.all(Array.from({ length: 5 }, () => ask(client))),
    );
    fake.clearFaults();
    expect(violations).toEqual([]);
    expect(result.filter((outcome) => outcome === 'ok').length).toBe(3);
    expect(result.filter((outcome) => outcome === 'budget').length).toBe(2);
    await expectConserved(tenantId, 3);
  });

  it("holds under a 32-request burst: exactly the budget's worth is served", async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 10 * estimate);
    fake.enqueue({ kind: 'delay', ms: 500 }, { times: 32, match: { model: catalog.upstreamModel } });
    const client = router.client(key);
    const { result, violations } = await whileSampling(
      tenantId,
      Promise.all(Array.from({ length: 32 }, () => ask(client))),
    );
    fake.clearFaults();
    expect(violations).toEqual([]);
    expect(result.filter((outcome) => outcome === 'ok').length).toBe(10);
    await expectConserved(tenantId, 10);
  });
});

describe('the saga around the upstream call', () => {
  it("answers 402 in OpenAI's shape naming the budget, and changes nothing", async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, estimate - 1);
    const response = await rawChat(key);
    expect(response.status).toBe(402);
    const body = (await response.json()) as { error: { type: string; code: string; message: string } };
    expect(body.error.type).toBe('insufficient_quota');
    expect(body.error.code).toBe('budget_exceeded');
    expect(body.error.message).toMatch(/total tenant budget \(usd_micros\) has \d+ of \d+ left/);
    expect(await usageTotal(tenantId)).toEqual({ records: 0, cost: 0 });
    expect((await counters(tenantId)).reserved).toBe(0);
  });

  it('caps max_tokens to what fits when the budget says cap, and says so', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, estimate - 6, { over_limit: 'cap' });
    const { response } = await router.client(key).chat.completions
      .create({ model: catalog.alias, messages, max_tokens: maxTokens }).withResponse();
    expect(response.headers.get('x-switchyard-max-tokens-capped')).toBe(String(maxTokens - 3));
    const recorded = fake.requests.filter((request) => request.path.endsWith('/chat/completions')).at(-1);
    expect((recorded?.body as { max_tokens?: number }).max_tokens).toBe(maxTokens - 3);
    await expectConserved(tenantId, 1);
  });

  it('releases the reservation when the upstream fails after retries (502), recording no usage', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 100 * estimate);
    fake.enqueue({ kind: 'status', status: 500 }, { times: 2, match: { model: catalog.upstreamModel } });
    const error = await router.client(key).chat.completions.create({
      model: catalog.alias,
      messages,
      max_tokens: maxTokens,
    })
      .catch((caught: unknown) => caught);
    fake.clearFaults();
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(502);
    const [reservation] =
      await sql`select status, release_reason from public.budget_reservations where tenant_id = ${tenantId}`;
    expect(reservation).toEqual({ status: 'released', release_reason: 'upstream_error' });
    await expectConserved(tenantId, 0);
  });

  it('settles a stream from the usage the provider reports', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 100 * estimate);
    const stream = await router.client(key).chat.completions.create({
      model: catalog.alias,
      messages,
      max_tokens: maxTokens,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('echo: count my words please');
    const [record] =
      await sql`select prompt_tokens, completion_tokens, cost_usd_micros::int as cost from public.usage_records where tenant_id = ${tenantId}`;
    expect(record).toEqual({ prompt_tokens: 4, completion_tokens: 5, cost: 4 + 2 * 5 });
    await expectConserved(tenantId, 1);
  });

  it('settles what was produced when the upstream cuts the stream, leaving nothing reserved', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 100 * estimate);
    fake.enqueue({ kind: 'cut_stream', afterChunks: 2 }, { times: 1, match: { model: catalog.upstreamModel } });
    const stream = await router.client(key).chat.completions.create({
      model: catalog.alias,
      messages,
      max_tokens: maxTokens,
      stream: true,
    });
    const failure = await (async () => {
      for await (const _chunk of stream) { /* read to the end or the error */ }
    })().catch((caught: unknown) => caught);
    fake.clearFaults();
    expect(failure).toBeInstanceOf(Error);
    const [record] =
      await sql`select status, completion_tokens from public.usage_records where tenant_id = ${tenantId}`;
    expect(record.status).toBe('cancelled');
    expect(record.completion_tokens).toBeGreaterThan(0);
    await expectConserved(tenantId, 1);
  });

  it('treats a duplicate settle as a no-op', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 100 * estimate);
    const { response } = await router.client(key).chat.completions.create({
      model: catalog.alias,
      messages,
      max_tokens: maxTokens,
    }).withResponse();
    const requestId = response.headers.get('x-request-id') as string;
    const before = await counters(tenantId);
    const [again] = await sql`select public.settle_budget(${requestId}, 100, 100, 999, 'x', 'y') as answer`;
    expect(again.answer).toEqual({ status: 'duplicate', reservation_status: 'settled' });
    expect(await counters(tenantId)).toEqual(before);
    await expectConserved(tenantId, 1);
  });
});

describe('rate limits', () => {
  it("answers 429 with Retry-After and OpenAI's x-ratelimit headers", async () => {
    // Rate-limit windows are the database's whole minutes: the three requests must share one. A run
    // that crossed a minute boundary (database clock, read before and after) proves nothing and is
    // run again with a fresh tenant.
    const windowMinute = async () =>
      (await sql<{ minute: string }[]>`select date_trunc('minute', clock_timestamp())::text as minute`)[0].minute;
    const threeRequests = async () => {
      const { tenantId, key } = await tenantWithKey();
      const set = await call('/ops/rate-limits', {
        method: 'POST',
        headers: serviceHeaders(),
        body: JSON.stringify({ tenant_id: tenantId, requests_per_minute: 2 }),
      });
      expect(set.status).toBe(201);
      const startedIn = await windowMinute();
      const client = router.client(key);
      const first = await client.chat.completions.create({ model: catalog.alias, messages, max_tokens: maxTokens })
        .withResponse();
      await client.chat.completions.create({ model: catalog.alias, messages, max_tokens: maxTokens });
      const limited = await rawChat(key);
      return { tenantId, first, limited, oneWindow: startedIn === (await windowMinute()) };
    };
    let run = await threeRequests();
    for (let attempt = 1; !run.oneWindow && attempt < 3; attempt++) run = await threeRequests();
    expect(run.oneWindow).toBe(true);
    const { tenantId, first, limited } = run;
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    // OpenAI's duration format: "6s", or "1m0s" at a minute boundary.
    expect(limited.headers.get('x-ratelimit-reset-requests')).toMatch(/^(\d+m)?\d+s$/);
    expect(((await limited.json()) as { error: { type: string } }).error.type).toBe('rate_limit_error');
    expect((await usageTotal(tenantId)).records).toBe(2);
  });
});

describe('the exact-match response cache', () => {
  const upstreamCalls = () =>
    fake.requests.filter((request) => JSON.stringify(request.body).includes('cache me')).length;

  it('answers a repeated request from the cache at zero cost, recorded as a hit, also as a stream', async () => {
    const { tenantId, key } = await tenantWithKey();
    await setBudget(tenantId, 100 * estimate);
    const client = router.client(key);
    const cachedMessages = [{ role: 'user' as const, content: `cache me ${crypto.randomUUID()}` }];
    const before = upstreamCalls();
    const first = await client.chat.completions
      .create({ model: catalog.alias, messages: cachedMessages, max_tokens: maxTokens }, {
        headers: { 'x-switchyard-cache': '60' },
      })
      .withResponse();
    expect(first.response.headers.get('x-switchyard-cache')).toBe('miss');
    const second = await client.chat.completions
      .create({ model: catalog.alias, messages: cachedMessages, max_tokens: maxTokens }, {
        headers: { 'x-switchyard-cache': '60' },
      })
      .withResponse();
    expect(second.response.headers.get('x-switchyard-cache')).toBe('hit');
    expect(second.data.choices[0].message.content).toBe(first.data.choices[0].message.content);
    expect(second.data.id).not.toBe(first.data.id);
    expect(upstreamCalls() - before).toBe(1);

    const stream = await client.chat.completions.create(
      { model: catalog.alias, messages: cachedMessages, max_tokens: maxTokens, stream: true },
      { headers: { 'x-switchyard-cache': '60' } },
    );
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe(first.data.choices[0].message.content);
    expect(upstreamCalls() - before).toBe(1);

    const records = await sql<{ cache_hit: boolean; cost: number }[]>`
      select cache_hit, cost_usd_micros::int as cost from public.usage_records where tenant_id = ${tenantId} order by created_at`;
    expect(records.map((record) => record.cache_hit)).toEqual([false, true, true]);
    expect(records[1].cost + records[2].cost).toBe(0);
    expect((await counters(tenantId)).spent).toBe(records[0].cost);
    // Three usage records (one upstream answer, two cache hits), one charge.
    await expectConserved(tenantId, 3);
  });

  it('misses on a different request, refuses a malformed header, and caches by policy without a header', async () => {
    const { tenantId, key } = await tenantWithKey();
    const client = router.client(key);
    const other = await client.chat.completions
      .create({ model: catalog.alias, messages: [{ role: 'user', content: `cache me too ${crypto.randomUUID()}` }] }, {
        headers: { 'x-switchyard-cache': 'on' },
      })
      .withResponse();
    expect(other.response.headers.get('x-switchyard-cache')).toBe('miss');
    const malformed = await client.chat.completions
      .create({ model: catalog.alias, messages }, { headers: { 'x-switchyard-cache': 'forever' } })
      .catch((caught: unknown) => caught);
    expect((malformed as APIError).status).toBe(400);
    expect((malformed as APIError).param).toBe('x-switchyard-cache');

    const [policy] = await sql<{ id: string }[]>`
      insert into public.routing_policies (tenant_id, name, model_alias, cache_ttl_seconds)
      values (${tenantId}, 'cache everything', ${catalog.alias}, 60) returning id`;
    await sql`insert into public.routing_policy_targets (policy_id, model_id) values (${policy.id}, ${catalog.modelId})`;
    const byPolicy = [{ role: 'user' as const, content: `cache me by policy ${crypto.randomUUID()}` }];
    await client.chat.completions.create({ model: catalog.alias, messages: byPolicy });
    const hit = await client.chat.completions.create({ model: catalog.alias, messages: byPolicy }).withResponse();
    expect(hit.response.headers.get('x-switchyard-cache')).toBe('hit');
  });
});

describe('GET /ops/usage', () => {
  it('sums tokens, cost and requests per group as numbers, for one tenant', async () => {
    const { tenantId, key } = await tenantWithKey();
    const client = router.client(key);
    await client.chat.completions.create({ model: catalog.alias, messages, max_tokens: maxTokens });
    await client.chat.completions.create({ model: catalog.alias, messages, max_tokens: maxTokens });
    const response = await call(`/ops/usage?tenant_id=${tenantId}&group_by=provider,model`, {
      headers: serviceHeaders(),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { items: Record<string, unknown>[] };
    expect(body.items).toEqual([{
      provider: catalog.providerSlug,
      model: catalog.alias,
      requests: 2,
      prompt_tokens: 8,
      completion_tokens: 10,
      cost_usd_micros: 2 * (4 + 2 * 5),
      cache_hits: 0,
    }]);
    const bad = await call(`/ops/usage?tenant_id=${tenantId}&group_by=colour`, { headers: serviceHeaders() });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(
      /^group_by: unknown group colour/,
    );
  });
});
