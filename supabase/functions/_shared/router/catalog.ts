import type { Clock } from '../clock.ts';
import type { Database } from '../db.ts';
import type { ProviderKind } from '../providers/types.ts';

export type ModelCapability = 'chat' | 'embeddings' | 'tools' | 'vision' | 'stream' | 'json';
export type RoutingStrategy = 'priority' | 'cost' | 'latency' | 'weighted' | 'quality';

export interface ProviderRecord {
  id: string;
  slug: string;
  kind: ProviderKind;
  baseUrl: string;
  apiVersion?: string;
  region?: string;
  enabled: boolean;
  connectTimeoutMs: number;
  firstByteTimeoutMs: number;
  totalTimeoutMs: number;
  maxRetries: number;
  /** Name of the provider's key in the key vault. */
  keyName: string;
}

export interface ModelRecord {
  id: string;
  providerId: string;
  alias: string;
  upstreamModel: string;
  /** USD micro-units per million tokens. */
  inputCostPerMillion: number;
  outputCostPerMillion: number;
  /** Prompt-cache writes and reads; the input price when the catalog sets none. */
  cacheWriteCostPerMillion: number;
  cacheReadCostPerMillion: number;
  contextWindow: number;
  maxOutputTokens: number;
  capabilities: ReadonlySet<ModelCapability>;
  priority: number;
  enabled: boolean;
}

export interface PolicyTarget {
  modelId: string;
  position: number;
  weight: number;
  bucket: string | null;
}

export interface AbBucket {
  name: string;
  percent: number;
}

export interface PolicyRecord {
  id: string;
  tenantId: string | null;
  name: string;
  modelAlias: string;
  domain: string | null;
  strategy: RoutingStrategy;
  abHashBy: 'tenant' | 'user' | null;
  abBuckets: AbBucket[] | null;
  fallbackAliases: string[];
  cacheTtlSeconds: number | null;
  priority: number;
  /** Models scoring below this reputation are skipped while another candidate exists. */
  minReputation: number | null;
  /** Share of requests (0..1) that try another candidate first, so its reputation can recover. */
  explorationShare: number;
  targets: PolicyTarget[];
}

export interface HealthRecord {
  status: 'up' | 'degraded' | 'down';
  p50LatencyMs: number | null;
  errorRate: number;
  cooldownUntil: Date | null;
}

/** A model_reputation row as the planner reads it. */
export interface ReputationRecord {
  score: number;
  sampleCount: number;
}

/** The catalog as the router sees it at one moment. */
export interface CatalogSnapshot {
  loadedAt: Date;
  providers: ReadonlyMap<string, ProviderRecord>;
  models: ReadonlyMap<string, ModelRecord>;
  modelsByAlias: ReadonlyMap<string, ModelRecord[]>;
  /** Enabled policies only. */
  policies: readonly PolicyRecord[];
  /** Keyed by `${providerId}/${upstreamModel}`; '' as model for provider-wide rows. */
  health: ReadonlyMap<string, HealthRecord>;
  /** Keyed by reputationKey(); absent = no evidence yet. */
  reputation: ReadonlyMap<string, ReputationRecord>;
}

/** tenantId null = the global row; domain '' = every domain. */
export function reputationKey(tenantId: string | null, domain: string, providerId: string, upstreamModel: string) {
  return `${tenantId ?? '*'}|${domain}|${providerId}/${upstreamModel}`;
}

export function healthKey(providerId: string, upstreamModel: string): string {
  return `${providerId}/${upstreamModel}`;
}

interface ProviderRow {
  id: string;
  slug: string;
  kind: ProviderKind;
  base_url: string;
  api_version: string | null;
  region: string | null;
  enabled: boolean;
  connect_timeout_ms: number;
  first_byte_timeout_ms: number;
  total_timeout_ms: number;
  max_retries: number;
  key_name: string | null;
}

interface ModelRow {
  id: string;
  provider_id: string;
  alias: string;
  upstream_model: string;
  input_cost_per_million: number;
  output_cost_per_million: number;
  cache_write_cost_per_million: number;
  cache_read_cost_per_million: number;
  context_window: number;
  max_output_tokens: number;
  capabilities: ModelCapability[];
  priority: number;
  enabled: boolean;
}

interface PolicyRow {
  id: string;
  tenant_id: string | null;
  name: string;
  model_alias: string;
  domain: string | null;
  strategy: RoutingStrategy;
  ab_hash_by: 'tenant' | 'user' | null;
  ab_buckets: AbBucket[] | null;
  fallback_aliases: string[];
  cache_ttl_seconds: number | null;
  priority: number;
  min_reputation: number | null;
  exploration_share: number;
  targets: { model_id: string; position: number; weight: number; bucket: string | null }[];
}

interface ReputationRow {
  tenant_id: string | null;
  domain: string;
  provider_id: string;
  upstream_model: string;
  score: number;
  sample_count: number;
}

interface HealthRow {
  provider_id: string;
  upstream_model: string;
  status: HealthRecord['status'];
  p50_latency_ms: number | null;
  error_rate: number;
  cooldown_until: Date | null;
}

/** Reads the whole catalog, one query per table (they are small), in one snapshot. */
export async function loadCatalog(db: Database, now: Date): Promise<CatalogSnapshot> {
  // One snapshot for all five reads (pipelined on one connection): a policy and the models it names
  // are seen together, never half before and half after a change.
  const [providerRows, modelRows, policyRows, healthRows, reputationRows] = await db.begin(
    'isolation level repeatable read read only',
    (tx) =>
      Promise.all([
        tx<ProviderRow[]>`
      select id, slug, kind, base_url, api_version, region, enabled, connect_timeout_ms,
             first_byte_timeout_ms, total_timeout_ms, max_retries, key_name
      from public.llm_providers`,
        tx<ModelRow[]>`
      select id, provider_id, alias, upstream_model, input_cost_per_million::float8 as input_cost_per_million,
             output_cost_per_million::float8 as output_cost_per_million,
             coalesce(cache_write_cost_per_million, input_cost_per_million)::float8 as cache_write_cost_per_million,
             coalesce(cache_read_cost_per_million, input_cost_per_million)::float8 as cache_read_cost_per_million,
             context_window, max_output_tokens,
             capabilities, priority, enabled
      from public.llm_models`,
        tx<PolicyRow[]>`
      select p.id, p.tenant_id, p.name, p.model_alias, p.domain, p.strategy, p.ab_hash_by, p.ab_buckets,
             p.fallback_aliases, p.cache_ttl_seconds, p.priority, p.min_reputation::float8 as min_reputation,
             p.exploration_share::float8 as exploration_share,
             coalesce((select jsonb_agg(jsonb_build_object('model_id', t.model_id, 'position', t.position,
                                                           'weight', t.weight, 'bucket', t.bucket)
                                        order by t.position)
                       from public.routing_policy_targets t where t.policy_id = p.id), '[]'::jsonb) as targets
      from public.routing_policies p
      where p.enabled`,
        tx<HealthRow[]>`
      select provider_id, upstream_model, status, p50_latency_ms, error_rate, cooldown_until
      from public.provider_health`,
        // Every row with evidence: tenants x domains x models, small today; per-tenant loading is the next step if it grows.
        tx<ReputationRow[]>`
      select tenant_id, domain, provider_id, upstream_model, score::float8 as score, sample_count::float8 as sample_count
      from public.model_reputation
      where sample_count > 0`,
      ]),
  );

  const providers = new Map<string, ProviderRecord>(providerRows.map((row) => [row.id, {
    id: row.id,
    slug: row.slug,
    kind: row.kind,
    baseUrl: row.base_url,
    apiVersion: row.api_version ?? undefined,
    region: row.region ?? undefined,
    enabled: row.enabled,
    connectTimeoutMs: row.connect_timeout_ms,
    firstByteTimeoutMs: row.first_byte_timeout_ms,
    totalTimeoutMs: row.total_timeout_ms,
    maxRetries: row.max_retries,
    keyName: row.key_name ?? row.slug,
  }]));
  const models = new Map<string, ModelRecord>();
  const modelsByAlias = new Map<string, ModelRecord[]>();
  for (const row of modelRows) {
    const model: ModelRecord = {
      id: row.id,
      providerId: row.provider_id,
      alias: row.alias,
      upstreamModel: row.upstream_model,
      inputCostPerMillion: row.input_cost_per_million,
      outputCostPerMillion: row.output_cost_per_million,
      cacheWriteCostPerMillion: row.cache_write_cost_per_million,
      cacheReadCostPerMillion: row.cache_read_cost_per_million,
      contextWindow: row.context_window,
      maxOutputTokens: row.max_output_tokens,
      capabilities: new Set(row.capabilities),
      priority: row.priority,
      enabled: row.enabled,
    };
    models.set(model.id, model);
    const sameAlias = modelsByAlias.get(model.alias) ?? [];
    sameAlias.push(model);
    modelsByAlias.set(model.alias, sameAlias);
  }
  const policies: PolicyRecord[] = policyRows.map((row) => ({
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    modelAlias: row.model_alias,
    domain: row.domain,
    strategy: row.strategy,
    abHashBy: row.ab_hash_by,
    abBuckets: row.ab_buckets,
    fallbackAliases: row.fallback_aliases,
    cacheTtlSeconds: row.cache_ttl_seconds,
    priority: row.priority,
    minReputation: row.min_reputation,
    explorationShare: row.exploration_share,
    targets: row.targets.map((target) => ({
      modelId: target.model_id,
      position: target.position,
      weight: target.weight,
      bucket: target.bucket,
    })),
  }));
  const health = new Map<string, HealthRecord>(
    healthRows.map((row) => [healthKey(row.provider_id, row.upstream_model), {
      status: row.status,
      p50LatencyMs: row.p50_latency_ms,
      errorRate: row.error_rate,
      cooldownUntil: row.cooldown_until,
    }]),
  );
  const reputation = new Map<string, ReputationRecord>(
    reputationRows.map((row) => [reputationKey(row.tenant_id, row.domain, row.provider_id, row.upstream_model), {
      score: row.score,
      sampleCount: row.sample_count,
    }]),
  );
  return { loadedAt: now, providers, models, modelsByAlias, policies, health, reputation };
}

export interface CatalogCache {
  get(): Promise<CatalogSnapshot>;
  /** Forget the snapshot so the next get() reloads (after an operator change in this isolate). */
  invalidate(): void;
}

/**
 * The catalog cached per isolate for `ttlMs`: a change in the database (a new
 * policy, a disabled model) applies within one TTL. One load at a time.
 */
export function createCatalogCache(db: Database, clock: Clock, ttlMs: number): CatalogCache {
  let snapshot: CatalogSnapshot | undefined;
  let loading: Promise<CatalogSnapshot> | undefined;
  return {
    get() {
      const now = clock.now();
      if (snapshot && now.getTime() - snapshot.loadedAt.getTime() < ttlMs) return Promise.resolve(snapshot);
      loading ??= loadCatalog(db, now).then((loaded) => {
        snapshot = loaded;
        return loaded;
      }).finally(() => {
        loading = undefined;
      });
      return loading;
    },
    invalidate() {
      snapshot = undefined;
    },
  };
}
