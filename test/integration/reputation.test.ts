import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explorationPoint, pickBucket } from '../../supabase/functions/_shared/router/plan.ts';
import type { PolicyRecord } from '../../supabase/functions/_shared/router/catalog.ts';
import { countPromptTokens } from '../../supabase/functions/_shared/router/tokens.ts';
import { type FakeUpstream, startFakeUpstream } from '../fakes/fake-upstream.ts';
import { type CatalogFixture, createCatalogFixture } from '../helpers/catalog.ts';
import { call, connectDatabase, createTenant, headersFor, serviceHeaders } from '../helpers/stack.ts';
import { eventually } from '../helpers/eventually.ts';

// Reputation-aware routing through the real llm-router under Deno: feedback
// moves traffic, exploration keeps the loser sampled, positive feedback brings
// it back; A/B bucket caps stop a bucket at its cap and fall back to control.
// The reputation refresh is the SQL job function, called here as the worker would.
const sql = connectDatabase();
let fake: FakeUpstream;
const messages = [{ role: 'user' as const, content: 'rate my answer please' }];
/** Providers this file created: disabled at the end, so no other test (smoke picks the first model) finds them. */
const providerIds: string[] = [];

beforeAll(async () => {
  fake = await startFakeUpstream();
});
afterAll(async () => {
  if (providerIds.length > 0) {
    await sql`update public.llm_providers set enabled = false where id = any (${providerIds})`;
  }
  await fake.close();
  await sql.end();
});

async function storeProviderKey(provider: string) {
  const response = await call('/keys', {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ provider, secret: `sk-test-${crypto.randomUUID()}` }),
  });
  expect(response.status).toBe(201);
}

async function modelPair(alias: string, cheap: Partial<Parameters<typeof createCatalogFixture>[1]> = {}) {
  const a = await createCatalogFixture(sql, {
    baseUrl: fake.endpoints.openai,
    upstreamModel: `model-a-${alias}`,
    alias,
    inputCostPerMillion: 1_000,
    outputCostPerMillion: 1_000,
    ...cheap,
  });
  const b = await createCatalogFixture(sql, {
    baseUrl: fake.endpoints.openai,
    upstreamModel: `model-b-${alias}`,
    alias,
    inputCostPerMillion: 1_000_000,
    outputCostPerMillion: 2_000_000,
  });
  providerIds.push(a.providerId, b.providerId);
  await storeProviderKey(a.providerSlug);
  await storeProviderKey(b.providerSlug);
  return { a, b };
}

async function tenantKey(tenantId: string): Promise<string> {
  const created = await call(`/ops/tenants/${tenantId}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"reputation"}',
  });
  return ((await created.json()) as { key: string }).key;
}

interface Routed {
  status: number;
  provider: string | null;
  reason: string | null;
  requestId: string;
}

async function chat(key: string, alias: string, requestId: string, maxTokens = 5): Promise<Routed> {
  const response = await call('/llm-router/v1/chat/completions', {
    method: 'POST',
    headers: headersFor(key, { 'x-request-id': requestId }),
    body: JSON.stringify({ model: alias, messages, max_tokens: maxTokens }),
  });
  await response.text();
  return {
    status: response.status,
    provider: response.headers.get('x-switchyard-provider'),
    reason: response.headers.get('x-switchyard-route-reason'),
    requestId,
  };
}

function feedback(key: string, body: unknown): Promise<Response> {
  return call('/llm-router/v1/feedback', { method: 'POST', headers: headersFor(key), body: JSON.stringify(body) });
}

/** Request ids that do (or do not) explore under `share`: exploration is a pure function of the id. */
function requestIds(prefix: string, explores: boolean, share: number) {
  let i = 0;
  return () => {
    for (;; i++) {
      const id = `${prefix}-${i}`;
      if ((explorationPoint(id) < share) === explores) {
        i += 1;
        return id;
      }
    }
  };
}

/** Routed by the policy named `name` (the router has loaded it), not by the default order. */
const byPolicy = (routed: Routed, name: string) => routed.reason?.startsWith(`policy:${name}:`) ?? false;

const refresh = async () =>
  (await sql<{ folded: number }[]>`select public.refresh_model_reputation(1000) as folded`)[0].folded;

describe('quality routing', () => {
  it('moves traffic off a model after negative feedback within one refresh, keeps exploring it, and lets it recover', async () => {
    const alias = `quality-${crypto.randomUUID().slice(0, 8)}`;
    const { a, b } = await modelPair(alias);
    const share = 0.2;
    const [policy] = await sql<{ id: string }[]>`
      insert into public.routing_policies (name, model_alias, strategy, exploration_share)
      values (${`quality ${alias}`}, ${alias}, 'quality', ${share}) returning id`;
    await sql`insert into public.routing_policy_targets (policy_id, model_id, position)
              values (${policy.id}, ${b.modelId}, 0), (${policy.id}, ${a.modelId}, 1)`;
    const tenantId = await createTenant('Reputation');
    const key = await tenantKey(tenantId);
    const steady = requestIds(`steady-${alias}`, false, share);
    const exploring = requestIds(`explore-${alias}`, true, share);

    // No evidence yet: equal reputations, the cheaper A wins (once the router has loaded the policy).
    const first = await eventually(() => chat(key, alias, steady()), (r) => byPolicy(r, `quality ${alias}`));
    expect(first.status).toBe(200);
    expect(first.provider).toBe(a.providerSlug);
    expect(first.reason).toMatch(/^policy:quality [^:]+:quality:reputation=0\.50$/);

    const down = await feedback(key, { request_id: first.requestId, thumbs: 'down', tags: ['hallucination'] });
    expect(down.status).toBe(201);
    expect(await refresh()).toBeGreaterThanOrEqual(1);

    // One refresh, then one catalog TTL: steady traffic goes to B.
    const moved = await eventually(() => chat(key, alias, steady()), (r) => r.provider === b.providerSlug);
    expect(moved.provider).toBe(b.providerSlug);
    expect(moved.reason).toContain(':quality:reputation=0.50');
    for (let i = 0; i < 3; i++) expect((await chat(key, alias, steady())).provider).toBe(b.providerSlug);

    // Exploration keeps A sampled, and says so.
    const explored = [await chat(key, alias, exploring()), await chat(key, alias, exploring())];
    for (const routed of explored) {
      expect(routed.provider).toBe(a.providerSlug);
      expect(routed.reason).toContain(`:explore=${a.providerSlug}`);
    }

    // Positive feedback on the explored answers: 0, 1, 1 -> quality 0.625 > 0.5.
    for (const routed of explored) {
      expect((await feedback(key, { request_id: routed.requestId, score: 1 })).status).toBe(201);
    }
    expect(await refresh()).toBeGreaterThanOrEqual(2);
    const recovered = await eventually(() => chat(key, alias, steady()), (r) => r.provider === a.providerSlug);
    expect(recovered.provider).toBe(a.providerSlug);
    expect(recovered.reason).toContain(':quality:reputation=0.63');

    // The ops view shows the tenant's and the global rows.
    const ops = await call(`/ops/reputation?tenant_id=${tenantId}`, { headers: serviceHeaders() });
    expect(ops.status).toBe(200);
    const items = ((await ops.json()) as {
      items: { scope: string; provider: string; score: number; sample_count: number }[];
    }).items;
    const tenantA = items.find((item) => item.scope === 'tenant' && item.provider === a.providerSlug);
    expect(tenantA?.score).toBeCloseTo(0.625, 5);
    expect(items.some((item) => item.scope === 'global' && item.provider === a.providerSlug)).toBe(true);
  });

  it('skips a model under min_reputation while another exists', async () => {
    const alias = `guard-${crypto.randomUUID().slice(0, 8)}`;
    const { a, b } = await modelPair(alias);
    const [policy] = await sql<{ id: string }[]>`
      insert into public.routing_policies (name, model_alias, strategy, min_reputation, exploration_share)
      values (${`guard ${alias}`}, ${alias}, 'priority', 0.4, 0) returning id`;
    await sql`insert into public.routing_policy_targets (policy_id, model_id, position)
              values (${policy.id}, ${a.modelId}, 0), (${policy.id}, ${b.modelId}, 1)`;
    const tenantId = await createTenant('Guard');
    const key = await tenantKey(tenantId);
    const served = await eventually(
      () => chat(key, alias, `guard-${crypto.randomUUID()}`),
      (r) => byPolicy(r, `guard ${alias}`),
    );
    expect(served.status).toBe(200);
    expect(served.provider).toBe(a.providerSlug);
    expect((await feedback(key, { request_id: served.requestId, score: 0 })).status).toBe(201);
    await refresh();
    const skipped = await eventually(
      () => chat(key, alias, `guard-${crypto.randomUUID()}`),
      (r) => r.provider === b.providerSlug,
    );
    expect(skipped.provider).toBe(b.providerSlug);
    expect(skipped.reason).toContain(`:below_min_reputation=${a.providerSlug}`);
  });
});

describe('POST /llm-router/v1/feedback', () => {
  let alias: string;
  let pair: { a: CatalogFixture; b: CatalogFixture };
  let tenantId: string;
  let key: string;
  let otherKey: string;

  beforeAll(async () => {
    alias = `feedback-${crypto.randomUUID().slice(0, 8)}`;
    pair = await modelPair(alias);
    tenantId = await createTenant('Feedback');
    key = await tenantKey(tenantId);
    otherKey = await tenantKey(await createTenant('Feedback other'));
    // The router serves the new alias once its catalog has loaded it.
    const warm = await eventually(
      () => chat(key, alias, `${alias}-warm-${crypto.randomUUID()}`),
      (r) => r.status === 200,
    );
    expect(warm.status).toBe(200);
  });

  const rows = async () =>
    (await sql<{ n: number }[]>`
      select count(*)::int as n from public.request_feedback f
      join public.tenants t on t.id = f.tenant_id where t.name like 'Feedback%' and f.request_id like ${`${alias}%`}`)[
      0
    ].n;

  it('stores a rating once per source: the same again is 200, a different one 409', async () => {
    const served = await chat(key, alias, `${alias}-idem`);
    expect(served.status).toBe(200);
    const created = await feedback(key, { request_id: served.requestId, score: 0.8, comment: 'good' });
    expect(created.status).toBe(201);
    const body = (await created.json()) as { id: string; object: string; score: number; source: string };
    expect(body).toMatchObject({ object: 'feedback', score: expect.closeTo(0.8, 5) });
    expect(body.source).toMatch(/^api_key:/);
    const again = await feedback(key, { request_id: served.requestId, score: 0.8, comment: 'good' });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(body.id);
    const different = await feedback(key, { request_id: served.requestId, score: 0.1 });
    expect(different.status).toBe(409);
    expect(((await different.json()) as { error: { code: string } }).error.code).toBe('conflict');
    const [stored] = await sql<{ score: number; provider_id: string }[]>`
      select score::float8 as score, provider_id from public.request_feedback where request_id = ${served.requestId}`;
    expect(stored.score).toBeCloseTo(0.8, 5);
    expect(stored.provider_id).toBe(pair.a.providerId);
  });

  it("refuses an unknown request, another tenant's request and a bad score in OpenAI's error shape, changing nothing", async () => {
    const served = await chat(key, alias, `${alias}-bad`);
    expect(served.status).toBe(200);
    const before = await rows();

    const unknown = await feedback(key, { request_id: `${alias}-never-made`, score: 1 });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      error: {
        message: `No request with id ${alias}-never-made was found for this tenant.`,
        type: 'invalid_request_error',
        param: 'request_id',
        code: 'not_found',
      },
    });

    const foreign = await feedback(otherKey, { request_id: served.requestId, thumbs: 'up' });
    expect(foreign.status).toBe(404);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe('not_found');

    const outOfRange = await feedback(key, { request_id: served.requestId, score: 1.5 });
    expect(outOfRange.status).toBe(400);
    expect(((await outOfRange.json()) as { error: { param: string; code: string } }).error).toMatchObject({
      param: 'score',
      code: 'validation_failed',
    });

    const both = await feedback(key, { request_id: served.requestId, score: 1, thumbs: 'up' });
    expect(both.status).toBe(400);
    const neither = await feedback(key, { request_id: served.requestId });
    expect(neither.status).toBe(400);
    const notJson = await call('/llm-router/v1/feedback', { method: 'POST', headers: headersFor(key), body: '{' });
    expect(notJson.status).toBe(400);
    const anonymous = await call('/llm-router/v1/feedback', {
      method: 'POST',
      headers: headersFor(undefined),
      body: JSON.stringify({ request_id: served.requestId, score: 1 }),
    });
    expect(anonymous.status).toBe(401);

    expect(await rows()).toBe(before);
  });
});

describe('A/B bucket budget caps', () => {
  it('stops a bucket exactly at its cap and sends its traffic to the control', async () => {
    const alias = `bucket-${crypto.randomUUID().slice(0, 8)}`;
    const { a, b } = await modelPair(alias);
    const buckets = [{ name: 'control', percent: 50 }, { name: 'treatment', percent: 50 }];
    const [policy] = await sql<{ id: string }[]>`
      insert into public.routing_policies (name, model_alias, strategy, ab_hash_by, ab_buckets)
      values (${`ab ${alias}`}, ${alias}, 'priority', 'tenant', ${sql.json(buckets)}) returning id`;
    await sql`insert into public.routing_policy_targets (policy_id, model_id, position, bucket)
              values (${policy.id}, ${a.modelId}, 0, 'control'), (${policy.id}, ${b.modelId}, 0, 'treatment')`;
    const record = { id: policy.id, abHashBy: 'tenant', abBuckets: buckets } as PolicyRecord;
    let tenantId = await createTenant('Bucket');
    for (let i = 0; i < 30 && pickBucket(record, tenantId, undefined) !== 'treatment'; i++) {
      tenantId = await createTenant('Bucket');
    }
    expect(pickBucket(record, tenantId, undefined)).toBe('treatment');
    const key = await tenantKey(tenantId);

    // B costs 1 micro-USD per prompt token and 2 per completion token; max_tokens 5.
    const estimate = countPromptTokens(messages) + 5 * 2;
    const cap = Math.floor(estimate * 2.5);
    const created = await call('/ops/budgets', {
      method: 'POST',
      headers: serviceHeaders(),
      body: JSON.stringify({
        tenant_id: tenantId,
        scope: 'bucket',
        policy_id: policy.id,
        bucket: 'treatment',
        unit: 'usd_micros',
        period: 'total',
        limit: cap,
      }),
    });
    expect(created.status).toBe(201);

    const counter = async () =>
      (await sql<{ spent: number; reserved: number; limit_amount: number }[]>`
        select c.spent::int, c.reserved::int, c.limit_amount::int from public.usage_counters c
        join public.budgets b on b.id = c.budget_id where b.tenant_id = ${tenantId} and b.scope = 'bucket'`)[0];

    // Until the router has loaded the policy it serves the alias by the default order (A, outside
    // any bucket and its budget): those answers are not part of the experiment.
    let sent = 0;
    const first = await eventually(() => chat(key, alias, `${alias}-${sent++}`), (r) => byPolicy(r, `ab ${alias}`));
    expect(first.status).toBe(200);
    const served: Routed[] = [first];
    for (let i = 0; i < 10 && served[served.length - 1].provider !== a.providerSlug; i++) {
      const routed = await chat(key, alias, `${alias}-${sent++}`);
      expect(routed.status).toBe(200);
      served.push(routed);
    }
    const treatment = served.filter((routed) => routed.provider === b.providerSlug);
    const fallback = served[served.length - 1];
    expect(treatment.length).toBeGreaterThanOrEqual(1);
    expect(fallback.provider).toBe(a.providerSlug);
    expect(fallback.reason).toContain(':bucket=control:cap_spent=treatment');
    for (const routed of treatment) expect(routed.reason).toContain(':bucket=treatment');

    // Exactly at the cap: never over, and what is left cannot hold one more request.
    const row = await counter();
    expect(row.reserved).toBe(0);
    expect(row.limit_amount).toBe(cap);
    expect(row.spent).toBeLessThanOrEqual(cap);
    expect(cap - row.spent).toBeLessThan(estimate);
    const [usage] = await sql<{ n: number; cost: number }[]>`
      select count(*)::int as n, coalesce(sum(cost_usd_micros), 0)::int as cost from public.usage_records
      where tenant_id = ${tenantId} and provider = ${b.providerSlug}`;
    expect(usage.n).toBe(treatment.length);
    expect(usage.cost).toBe(row.spent);

    // The bucket stays closed while its cap is spent.
    expect((await chat(key, alias, `${alias}-after`)).provider).toBe(a.providerSlug);
    const violations = await sql`
      select v.* from public.usage_invariant_violations() v join public.budgets b on b.id = v.budget_id
      where b.tenant_id = ${tenantId}`;
    expect(violations).toEqual([]);
  });
});
