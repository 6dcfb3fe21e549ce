import { HttpError } from '../errors.ts';
import type {
  CatalogSnapshot,
  ModelCapability,
  ModelRecord,
  PolicyRecord,
  PolicyTarget,
  ProviderRecord,
} from './catalog.ts';
import { healthKey, reputationKey } from './catalog.ts';

/** The reputation of a model with no evidence (model_reputation scores an empty row the same). */
const NEUTRAL_REPUTATION = 0.5;

export interface RouteRequest {
  tenantId: string;
  userId?: string;
  /** The `model` the client asked for. */
  alias: string;
  /** The x-switchyard-domain header. */
  domain?: string;
  requires: readonly ModelCapability[];
  promptTokens: number;
  /** max_tokens asked for; undefined = the model's maximum. */
  maxOutputTokens?: number;
  /** The request id: exploration is a pure function of it, so a route can be replayed. */
  requestId?: string;
}

export interface RouteCandidate {
  model: ModelRecord;
  provider: ProviderRecord;
}

export interface RoutePlan {
  candidates: RouteCandidate[];
  policy?: PolicyRecord;
  bucket?: string;
  /** The request's domain tag ('' without one), for the quality signals of this request. */
  domain: string;
  /** Why this order, for the x-switchyard-route-reason header and logs. */
  reason: string;
}

export interface PlanOptions {
  now: Date;
  /** This isolate's circuit breaker (the snapshot carries other isolates' view). */
  isCoolingDown(providerId: string, upstreamModel: string): boolean;
  random(): number;
  /** `${policyId}:${bucket}` of A/B buckets whose budget cap is spent: requests fall back to the control. */
  spentBuckets?: ReadonlySet<string>;
}

export function bucketKey(policyId: string, bucket: string): string {
  return `${policyId}:${bucket}`;
}

/** The control bucket of an A/B policy: the first of its buckets. */
export function controlBucket(policy: PolicyRecord): string | undefined {
  return policy.abBuckets?.[0]?.name;
}

/**
 * A model's reputation for this request: the most specific row with evidence,
 * (tenant, domain), (tenant, any), (global, domain), (global, any); neutral without one.
 */
function reputationOf(snapshot: CatalogSnapshot, request: RouteRequest, model: ModelRecord): number {
  return reputationRecordOf(snapshot, request, model)?.score ?? NEUTRAL_REPUTATION;
}

function reputationRecordOf(snapshot: CatalogSnapshot, request: RouteRequest, model: ModelRecord) {
  const domain = request.domain ?? '';
  const scopes: [string | null, string][] = [
    [request.tenantId, domain],
    [request.tenantId, ''],
    [null, domain],
    [null, ''],
  ];
  for (const [tenantId, scopeDomain] of scopes) {
    const found = snapshot.reputation.get(reputationKey(tenantId, scopeDomain, model.providerId, model.upstreamModel));
    if (found) return found;
  }
  return undefined;
}

/** murmur3's finalizer: FNV-1a leaves the high bits of similar short strings poorly mixed. */
function mixedHash(text: string): number {
  let hash = stableHash(text);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** Where a request falls in [0, 1) for exploration: stable per request id. */
export function explorationPoint(requestId: string): number {
  return mixedHash(`explore:${requestId}`) / 0x1_0000_0000;
}

/** FNV-1a: a stable, well-spread 32-bit hash for A/B bucketing. */
export function stableHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The bucket a tenant or user falls in: the same input always lands in the same bucket. */
export function pickBucket(policy: PolicyRecord, tenantId: string, userId: string | undefined): string | undefined {
  if (!policy.abBuckets || policy.abBuckets.length === 0) return undefined;
  const subject = policy.abHashBy === 'user' ? (userId ?? tenantId) : tenantId;
  const point = stableHash(`${policy.id}:${subject}`) % 100;
  let cumulative = 0;
  for (const bucket of policy.abBuckets) {
    cumulative += bucket.percent;
    if (point < cumulative) return bucket.name;
  }
  return policy.abBuckets[policy.abBuckets.length - 1].name;
}

/** The policy for a request: tenant's before global, domain-specific before generic, then by priority. */
function matchPolicy(policies: readonly PolicyRecord[], request: RouteRequest): PolicyRecord | undefined {
  const matching = policies.filter((policy) =>
    policy.modelAlias === request.alias &&
    (policy.tenantId === null || policy.tenantId === request.tenantId) &&
    (policy.domain === null || policy.domain === request.domain)
  );
  matching.sort((a, b) =>
    Number(b.tenantId !== null) - Number(a.tenantId !== null) ||
    Number(b.domain !== null) - Number(a.domain !== null) ||
    a.priority - b.priority
  );
  return matching[0];
}

function estimatedCost(model: ModelRecord, request: RouteRequest): number {
  const output = request.maxOutputTokens ?? model.maxOutputTokens;
  return model.inputCostPerMillion * request.promptTokens + model.outputCostPerMillion * output;
}

/** Weighted random order without replacement (a weight-0 target goes last). */
function weightedOrder<T extends { weight: number }>(items: T[], random: () => number): T[] {
  const pool = [...items];
  const ordered: T[] = [];
  while (pool.length > 0) {
    const total = pool.reduce((sum, item) => sum + item.weight, 0);
    let index = 0;
    if (total > 0) {
      let point = random() * total;
      index = pool.findIndex((item) => (point -= item.weight) < 0);
      if (index < 0) index = pool.length - 1;
    }
    ordered.push(pool.splice(index, 1)[0]);
  }
  return ordered;
}

/** Best reputation first; equal reputations go to the cheaper model, then by position. */
function qualityOrder(models: ModelRecord[], snapshot: CatalogSnapshot, request: RouteRequest): ModelRecord[] {
  return models.map((model) => ({ model, score: reputationOf(snapshot, request, model) }))
    .sort((a, b) => b.score - a.score || estimatedCost(a.model, request) - estimatedCost(b.model, request))
    .map((entry) => entry.model);
}

function orderTargets(
  policy: PolicyRecord,
  targets: (PolicyTarget & { model: ModelRecord })[],
  snapshot: CatalogSnapshot,
  request: RouteRequest,
  random: () => number,
): ModelRecord[] {
  const byPosition = [...targets].sort((a, b) => a.position - b.position);
  switch (policy.strategy) {
    case 'priority':
      return byPosition.map((target) => target.model);
    case 'cost':
      return byPosition.sort((a, b) => estimatedCost(a.model, request) - estimatedCost(b.model, request))
        .map((target) => target.model);
    case 'latency': {
      const latency = (model: ModelRecord) =>
        snapshot.health.get(healthKey(model.providerId, model.upstreamModel))?.p50LatencyMs ?? Number.MAX_SAFE_INTEGER;
      return byPosition.sort((a, b) => latency(a.model) - latency(b.model)).map((target) => target.model);
    }
    case 'weighted':
      return weightedOrder(byPosition, random).map((target) => target.model);
    case 'quality':
      return qualityOrder(byPosition.map((target) => target.model), snapshot, request);
  }
}

function defaultOrder(models: readonly ModelRecord[], request: RouteRequest): ModelRecord[] {
  return [...models].sort((a, b) => a.priority - b.priority || estimatedCost(a, request) - estimatedCost(b, request));
}

/**
 * Builds the ordered candidate list for a request: the matching policy's
 * targets (A/B bucket, strategy), then its fallback aliases; without a policy,
 * every model of the alias. Drops disabled models and providers and models
 * lacking a required capability or the context window; moves providers that
 * are cooling down to the end (tried only when everything else failed).
 */
export function planRoute(snapshot: CatalogSnapshot, request: RouteRequest, options: PlanOptions): RoutePlan {
  const policy = matchPolicy(snapshot.policies, request);
  let ordered: ModelRecord[];
  let bucket: string | undefined;
  let reason: string;
  if (policy) {
    bucket = pickBucket(policy, request.tenantId, request.userId);
    let bucketNote = bucket ? `:bucket=${bucket}` : '';
    const control = controlBucket(policy);
    if (bucket && control && bucket !== control && options.spentBuckets?.has(bucketKey(policy.id, bucket))) {
      bucketNote = `:bucket=${control}:cap_spent=${bucket}`;
      bucket = control;
    }
    const targets = policy.targets
      .filter((target) => target.bucket === null || target.bucket === bucket)
      .flatMap((target) => {
        const model = snapshot.models.get(target.modelId);
        return model ? [{ ...target, model }] : [];
      });
    ordered = orderTargets(policy, targets, snapshot, request, options.random);
    for (const alias of policy.fallbackAliases) {
      ordered.push(...defaultOrder(snapshot.modelsByAlias.get(alias) ?? [], request));
    }
    reason = `policy:${policy.name}:${policy.strategy}${bucketNote}`;
  } else {
    ordered = defaultOrder(snapshot.modelsByAlias.get(request.alias) ?? [], request);
    reason = 'default:priority';
  }

  const known = ordered.filter((model, index) => ordered.findIndex((other) => other.id === model.id) === index);
  const available = known.flatMap((model) => {
    const provider = snapshot.providers.get(model.providerId);
    return provider && provider.enabled && model.enabled ? [{ model, provider }] : [];
  });
  if (available.length === 0) {
    throw new HttpError(
      'model_not_found',
      `The model \`${request.alias}\` does not exist or you do not have access to it.`,
      {
        param: 'model',
      },
    );
  }

  const capable = available.filter(({ model }) =>
    request.requires.every((capability) => model.capabilities.has(capability))
  );
  if (capable.length === 0) {
    const missing = request.requires.filter((capability) =>
      !available.some(({ model }) => model.capabilities.has(capability))
    );
    throw new HttpError(
      'unsupported_parameter',
      `The model \`${request.alias}\` does not support ${missing.join(', ')}.`,
      {
        param: missing.includes('tools') ? 'tools' : missing.includes('stream') ? 'stream' : 'model',
      },
    );
  }

  const { maxOutputTokens } = request;
  const withinOutput = capable.filter(({ model }) =>
    maxOutputTokens === undefined || maxOutputTokens <= model.maxOutputTokens
  );
  if (withinOutput.length === 0) {
    const most = Math.max(...capable.map(({ model }) => model.maxOutputTokens));
    throw new HttpError(
      'validation_failed',
      `max_tokens: ${maxOutputTokens} is more than the model \`${request.alias}\` can produce (at most ${most} output tokens).`,
      { param: 'max_tokens' },
    );
  }
  const fitting = withinOutput.filter(({ model }) =>
    request.promptTokens + (maxOutputTokens ?? 0) <= model.contextWindow
  );
  if (fitting.length === 0) {
    const largest = Math.max(...capable.map(({ model }) => model.contextWindow));
    throw new HttpError(
      'context_length_exceeded',
      `This model's maximum context length is ${largest} tokens. However, you requested ${
        request.promptTokens + (request.maxOutputTokens ?? 0)
      } tokens (${request.promptTokens} in the messages, ${request.maxOutputTokens ?? 0} in the completion).`,
      { param: 'messages' },
    );
  }

  const coolingDown = (candidate: RouteCandidate) => {
    const shared = snapshot.health.get(healthKey(candidate.provider.id, candidate.model.upstreamModel));
    const sharedProvider = snapshot.health.get(healthKey(candidate.provider.id, ''));
    const until = [shared?.cooldownUntil, sharedProvider?.cooldownUntil].filter((date): date is Date => !!date);
    return options.isCoolingDown(candidate.provider.id, candidate.model.upstreamModel) ||
      until.some((date) => date.getTime() > options.now.getTime());
  };
  let healthy: RouteCandidate[] = [];
  const cooling: RouteCandidate[] = [];
  for (const candidate of fitting) (coolingDown(candidate) ? cooling : healthy).push(candidate);
  if (cooling.length > 0) reason += `:cooling_down=${cooling.map((c) => c.provider.slug).join(',')}`;

  // The guard: a model with evidence below min_reputation is skipped while another candidate exists.
  let guarded: RouteCandidate[] = [];
  if (policy?.minReputation != null) {
    const minimum = policy.minReputation;
    const below = (candidate: RouteCandidate) => {
      const record = reputationRecordOf(snapshot, request, candidate.model);
      return record !== undefined && record.score < minimum;
    };
    const passing = healthy.filter((candidate) => !below(candidate));
    if (passing.length > 0 && passing.length < healthy.length) {
      guarded = healthy.filter((candidate) => !passing.includes(candidate));
      healthy = passing;
      reason += `:below_min_reputation=${guarded.map((c) => c.provider.slug).join(',')}`;
    }
  }

  // Exploration: a share of requests tries another candidate (guarded ones included) first.
  if (policy && (policy.strategy === 'quality' || policy.minReputation != null) && policy.explorationShare > 0) {
    const others = [...healthy.slice(1), ...guarded];
    const point = request.requestId === undefined ? options.random() : explorationPoint(request.requestId);
    if (others.length > 0 && point < policy.explorationShare) {
      const pick = request.requestId === undefined
        ? Math.floor(options.random() * others.length) % others.length
        : mixedHash(`explore-pick:${request.requestId}`) % others.length;
      const explored = others[pick];
      healthy = [explored, ...healthy.filter((candidate) => candidate !== explored)];
      reason += `:explore=${explored.provider.slug}`;
    }
  }
  if (policy?.strategy === 'quality' && healthy.length > 0) {
    reason += `:reputation=${reputationOf(snapshot, request, healthy[0].model).toFixed(2)}`;
  }
  return { candidates: [...healthy, ...cooling], policy, bucket, domain: request.domain ?? '', reason };
}
