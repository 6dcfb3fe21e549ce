import { describe, expect, it } from 'vitest';
import { HttpError } from '../../../supabase/functions/_shared/errors.ts';
import type {
  CatalogSnapshot,
  HealthRecord,
  ModelCapability,
  ModelRecord,
  PolicyRecord,
  ProviderRecord,
  ReputationRecord,
} from '../../../supabase/functions/_shared/router/catalog.ts';
import { healthKey, reputationKey } from '../../../supabase/functions/_shared/router/catalog.ts';
import {
  bucketKey,
  explorationPoint,
  pickBucket,
  planRoute,
  type RouteRequest,
  stableHash,
} from '../../../supabase/functions/_shared/router/plan.ts';

function provider(slug: string, overrides: Partial<ProviderRecord> = {}): ProviderRecord {
  return {
    id: `p-${slug}`,
    slug,
    kind: 'openai',
    baseUrl: 'http://127.0.0.1:1/v1',
    enabled: true,
    connectTimeoutMs: 1000,
    firstByteTimeoutMs: 1000,
    totalTimeoutMs: 5000,
    maxRetries: 1,
    keyName: slug,
    ...overrides,
  };
}

function model(id: string, providerSlug: string, alias: string, overrides: Partial<ModelRecord> = {}): ModelRecord {
  return {
    id,
    providerId: `p-${providerSlug}`,
    alias,
    upstreamModel: `${id}-upstream`,
    inputCostPerMillion: 1_000_000,
    outputCostPerMillion: 2_000_000,
    cacheWriteCostPerMillion: 1_000_000,
    cacheReadCostPerMillion: 1_000_000,
    contextWindow: 1000,
    maxOutputTokens: 500,
    capabilities: new Set<ModelCapability>(['chat', 'stream']),
    priority: 100,
    enabled: true,
    ...overrides,
  };
}

function snapshot(
  providers: ProviderRecord[],
  models: ModelRecord[],
  policies: PolicyRecord[] = [],
  health: [string, HealthRecord][] = [],
  reputation: [string, ReputationRecord][] = [],
): CatalogSnapshot {
  const modelsByAlias = new Map<string, ModelRecord[]>();
  for (const m of models) modelsByAlias.set(m.alias, [...(modelsByAlias.get(m.alias) ?? []), m]);
  return {
    loadedAt: new Date(0),
    providers: new Map(providers.map((p) => [p.id, p])),
    models: new Map(models.map((m) => [m.id, m])),
    modelsByAlias,
    policies,
    health: new Map(health),
    reputation: new Map(reputation),
  };
}

function policy(overrides: Partial<PolicyRecord>): PolicyRecord {
  return {
    id: 'policy-1',
    tenantId: null,
    name: 'p',
    modelAlias: 'chat',
    domain: null,
    strategy: 'priority',
    abHashBy: null,
    abBuckets: null,
    fallbackAliases: [],
    cacheTtlSeconds: null,
    priority: 100,
    minReputation: null,
    explorationShare: 0,
    targets: [],
    ...overrides,
  };
}

const request: RouteRequest = { tenantId: 't1', alias: 'chat', requires: ['chat'], promptTokens: 10 };
const options = { now: new Date(1_000_000), isCoolingDown: () => false, random: () => 0.5 };
const ids = (plan: ReturnType<typeof planRoute>) => plan.candidates.map((candidate) => candidate.model.id);

function expectHttpError(run: () => unknown, code: string, message: RegExp) {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(HttpError);
  expect((thrown as HttpError).code).toBe(code);
  expect((thrown as HttpError).message).toMatch(message);
}

describe('planRoute without a policy', () => {
  it('offers every enabled model of the alias, by priority then estimated cost', () => {
    const catalog = snapshot([provider('a'), provider('b'), provider('off', { enabled: false })], [
      model('expensive', 'a', 'chat', { inputCostPerMillion: 9_000_000 }),
      model('cheap', 'b', 'chat', { inputCostPerMillion: 100 }),
      model('preferred', 'a', 'chat', { priority: 1, inputCostPerMillion: 50_000_000 }),
      model('disabled', 'b', 'chat', { enabled: false }),
      model('on-disabled-provider', 'off', 'chat'),
    ]);
    expect(ids(planRoute(catalog, request, options))).toEqual(['preferred', 'cheap', 'expensive']);
  });

  it('answers model_not_found for an unknown alias', () => {
    expectHttpError(
      () => planRoute(snapshot([provider('a')], []), { ...request, alias: 'nope' }, options),
      'model_not_found',
      /`nope` does not exist/,
    );
  });

  it('refuses a capability no model has and a prompt over every context window', () => {
    const catalog = snapshot([provider('a')], [model('m', 'a', 'chat', { contextWindow: 100 })]);
    expectHttpError(
      () => planRoute(catalog, { ...request, requires: ['chat', 'tools'] }, options),
      'unsupported_parameter',
      /does not support tools/,
    );
    expectHttpError(
      () => planRoute(catalog, { ...request, promptTokens: 90, maxOutputTokens: 20 }, options),
      'context_length_exceeded',
      /maximum context length is 100 tokens.*110 tokens/,
    );
  });

  it("refuses max_tokens above every model's output limit naming max_tokens and the limit", () => {
    const catalog = snapshot([provider('a')], [model('m', 'a', 'chat', { maxOutputTokens: 4096 })]);
    expectHttpError(
      () => planRoute(catalog, { ...request, maxOutputTokens: 32000 }, options),
      'validation_failed',
      /^max_tokens: 32000 is more than the model `chat` can produce \(at most 4096 output tokens\)\.$/,
    );
  });

  it('keeps only models whose window fits the request', () => {
    const catalog = snapshot([provider('a')], [
      model('small', 'a', 'chat', { contextWindow: 50, priority: 1 }),
      model('large', 'a', 'chat', { contextWindow: 5000 }),
    ]);
    expect(ids(planRoute(catalog, { ...request, promptTokens: 60 }, options))).toEqual(['large']);
  });

  it('moves providers that are cooling down (here or in the shared health) to the end', () => {
    const catalog = snapshot(
      [provider('a'), provider('b'), provider('c')],
      [
        model('m-a', 'a', 'chat', { priority: 1 }),
        model('m-b', 'b', 'chat', { priority: 2 }),
        model('m-c', 'c', 'chat', { priority: 3 }),
      ],
      [],
      [[healthKey('p-b', 'm-b-upstream'), {
        status: 'down',
        p50LatencyMs: null,
        errorRate: 1,
        cooldownUntil: new Date(2_000_000),
      }]],
    );
    const plan = planRoute(catalog, request, { ...options, isCoolingDown: (providerId) => providerId === 'p-a' });
    expect(ids(plan)).toEqual(['m-c', 'm-a', 'm-b']);
    expect(plan.reason).toMatch(/cooling_down=a,b/);
  });
});

describe('planRoute with policies', () => {
  const providers = [provider('a'), provider('b'), provider('c')];
  const models = [
    model('m-a', 'a', 'chat', { inputCostPerMillion: 5_000_000 }),
    model('m-b', 'b', 'chat', { inputCostPerMillion: 1_000 }),
    model('m-c', 'c', 'other'),
  ];
  const targets = [
    { modelId: 'm-a', position: 0, weight: 1, bucket: null },
    { modelId: 'm-b', position: 1, weight: 1, bucket: null },
  ];

  it('orders by position (priority), estimated cost (cost) or measured latency (latency)', () => {
    const health: [string, HealthRecord][] = [
      [healthKey('p-a', 'm-a-upstream'), { status: 'up', p50LatencyMs: 900, errorRate: 0, cooldownUntil: null }],
      [healthKey('p-b', 'm-b-upstream'), { status: 'up', p50LatencyMs: 100, errorRate: 0, cooldownUntil: null }],
    ];
    expect(ids(planRoute(snapshot(providers, models, [policy({ targets })]), request, options))).toEqual([
      'm-a',
      'm-b',
    ]);
    expect(ids(planRoute(snapshot(providers, models, [policy({ targets, strategy: 'cost' })]), request, options)))
      .toEqual(['m-b', 'm-a']);
    expect(
      ids(planRoute(snapshot(providers, models, [policy({ targets, strategy: 'latency' })], health), request, options)),
    ).toEqual(['m-b', 'm-a']);
  });

  it('orders weighted targets by weight-proportional draws', () => {
    const weighted = policy({
      strategy: 'weighted',
      targets: [{ ...targets[0], weight: 1 }, { ...targets[1], weight: 3 }],
    });
    const catalog = snapshot(providers, models, [weighted]);
    const firstPicks = { 'm-a': 0, 'm-b': 0 } as Record<string, number>;
    for (let i = 0; i < 1000; i++) {
      firstPicks[ids(planRoute(catalog, request, { ...options, random: () => (i + 0.5) / 1000 }))[0]] += 1;
    }
    expect(firstPicks).toEqual({ 'm-a': 250, 'm-b': 750 });
  });

  it("prefers the tenant's policy, then a domain match, then priority; appends fallback aliases", () => {
    const global = policy({ id: 'global', name: 'global', targets: [targets[0]] });
    const tenants = policy({
      id: 'mine',
      name: 'mine',
      tenantId: 't1',
      targets: [targets[1]],
      fallbackAliases: ['other'],
    });
    const otherTenant = policy({ id: 'theirs', name: 'theirs', tenantId: 't2', targets: [targets[0]] });
    const domain = policy({ id: 'legal', name: 'legal', domain: 'legal', targets: [targets[0]] });
    const catalog = snapshot(providers, models, [global, tenants, otherTenant, domain]);
    const plan = planRoute(catalog, request, options);
    expect(plan.policy?.id).toBe('mine');
    expect(ids(plan)).toEqual(['m-b', 'm-c']);
    expect(planRoute(catalog, { ...request, tenantId: 't3', domain: 'legal' }, options).policy?.id).toBe('legal');
    expect(planRoute(catalog, { ...request, tenantId: 't3' }, options).policy?.id).toBe('global');
  });

  it('splits A/B buckets by a stable hash within tolerance, each bucket using its own targets', () => {
    const ab = policy({
      abHashBy: 'tenant',
      abBuckets: [{ name: 'control', percent: 80 }, { name: 'treatment', percent: 20 }],
      targets: [{ ...targets[0], bucket: 'control' }, { ...targets[1], bucket: 'treatment' }],
    });
    const catalog = snapshot(providers, models, [ab]);
    let treatment = 0;
    for (let i = 0; i < 2000; i++) {
      const plan = planRoute(catalog, { ...request, tenantId: `tenant-${i}` }, options);
      if (plan.bucket === 'treatment') {
        treatment += 1;
        expect(ids(plan)).toEqual(['m-b']);
      } else {
        expect(ids(plan)).toEqual(['m-a']);
      }
    }
    expect(treatment / 2000).toBeGreaterThan(0.17);
    expect(treatment / 2000).toBeLessThan(0.23);
    // Stable: the same tenant always lands in the same bucket.
    expect(pickBucket(ab, 'tenant-7', undefined)).toBe(pickBucket(ab, 'tenant-7', 'someone'));
    expect(stableHash('abc')).toBe(stableHash('abc'));
  });
});

describe('planRoute with reputation', () => {
  const providers = [provider('a'), provider('b')];
  // m-a is the cheaper model: it wins ties.
  const models = [
    model('m-a', 'a', 'chat', { inputCostPerMillion: 1_000 }),
    model('m-b', 'b', 'chat', { inputCostPerMillion: 5_000_000 }),
  ];
  const targets = [
    { modelId: 'm-b', position: 0, weight: 1, bucket: null },
    { modelId: 'm-a', position: 1, weight: 1, bucket: null },
  ];
  const rep = (tenantId: string | null, domain: string, id: string, score: number): [string, ReputationRecord] => [
    reputationKey(tenantId, domain, `p-${id.slice(2)}`, `${id}-upstream`),
    { score, sampleCount: 3 },
  ];
  const quality = policy({ strategy: 'quality', targets });
  /** A request id whose exploration point is below (or not below) `share`. */
  const requestIdWhere = (explores: boolean, share: number) => {
    for (let i = 0;; i++) {
      if ((explorationPoint(`req-${i}`) < share) === explores) return `req-${i}`;
    }
  };

  it('orders by reputation, cost breaking ties, and says so in the reason', () => {
    expect(ids(planRoute(snapshot(providers, models, [quality]), request, options))).toEqual(['m-a', 'm-b']);
    const worseA = snapshot(providers, models, [quality], [], [rep(null, '', 'm-a', 0.25)]);
    const plan = planRoute(worseA, request, options);
    expect(ids(plan)).toEqual(['m-b', 'm-a']);
    expect(plan.reason).toBe('policy:p:quality:reputation=0.50');
  });

  it("uses the most specific row: the tenant's over the global, the domain's over any domain", () => {
    const rows = [rep(null, '', 'm-a', 0.9), rep('t1', '', 'm-a', 0.2), rep('t1', 'law', 'm-a', 0.8)];
    const catalog = snapshot(providers, models, [quality], [], rows);
    expect(ids(planRoute(catalog, request, options))[0]).toBe('m-b');
    expect(ids(planRoute(catalog, { ...request, domain: 'law' }, options))[0]).toBe('m-a');
    expect(ids(planRoute(catalog, { ...request, tenantId: 't2' }, options))[0]).toBe('m-a');
  });

  it('skips a model under min_reputation while an alternative exists, on any strategy', () => {
    const guarded = policy({ strategy: 'priority', minReputation: 0.4, targets });
    const low = snapshot(providers, models, [guarded], [], [rep(null, '', 'm-b', 0.3)]);
    const plan = planRoute(low, request, options);
    expect(ids(plan)).toEqual(['m-a']);
    expect(plan.reason).toContain(':below_min_reputation=b');
    const bothLow = snapshot(providers, models, [guarded], [], [rep(null, '', 'm-b', 0.3), rep(null, '', 'm-a', 0.1)]);
    expect(ids(planRoute(bothLow, request, options))).toEqual(['m-b', 'm-a']);
  });

  it('explores another candidate for the configured share of request ids, deterministically', () => {
    const exploring = policy({ strategy: 'quality', explorationShare: 0.2, targets });
    const catalog = snapshot(providers, models, [exploring], [], [rep(null, '', 'm-a', 0.1)]);
    const stays = planRoute(catalog, { ...request, requestId: requestIdWhere(false, 0.2) }, options);
    expect(ids(stays)).toEqual(['m-b', 'm-a']);
    const explores = planRoute(catalog, { ...request, requestId: requestIdWhere(true, 0.2) }, options);
    expect(ids(explores)).toEqual(['m-a', 'm-b']);
    expect(explores.reason).toContain(':explore=a');
    let explored = 0;
    for (let i = 0; i < 2000; i++) {
      if (planRoute(catalog, { ...request, requestId: `share-${i}` }, options).candidates[0].model.id === 'm-a') {
        explored += 1;
      }
    }
    expect(explored / 2000).toBeGreaterThan(0.17);
    expect(explored / 2000).toBeLessThan(0.23);
  });

  it('explores a model the guard skipped, so it can recover', () => {
    const guarded = policy({ strategy: 'priority', minReputation: 0.4, explorationShare: 0.5, targets });
    const catalog = snapshot(providers, models, [guarded], [], [rep(null, '', 'm-b', 0.3)]);
    const plan = planRoute(catalog, { ...request, requestId: requestIdWhere(true, 0.5) }, options);
    expect(ids(plan)).toEqual(['m-b', 'm-a']);
    expect(plan.reason).toContain(':explore=b');
  });

  it('sends a bucket whose cap is spent to the control bucket', () => {
    const ab = policy({
      abHashBy: 'tenant',
      abBuckets: [{ name: 'control', percent: 50 }, { name: 'treatment', percent: 50 }],
      targets: [{ ...targets[0], bucket: 'control' }, { ...targets[1], bucket: 'treatment' }],
    });
    const catalog = snapshot(providers, models, [ab]);
    let tenantId = 'tenant-0';
    for (let i = 0; pickBucket(ab, tenantId, undefined) !== 'treatment'; i++) tenantId = `tenant-${i}`;
    expect(planRoute(catalog, { ...request, tenantId }, options).bucket).toBe('treatment');
    const fallback = planRoute(catalog, { ...request, tenantId }, {
      ...options,
      spentBuckets: new Set([bucketKey(ab.id, 'treatment')]),
    });
    expect(fallback.bucket).toBe('control');
    expect(ids(fallback)).toEqual(['m-b']);
    expect(fallback.reason).toBe('policy:p:priority:bucket=control:cap_spent=treatment');
  });
});
