import type { Context } from 'hono';
import type { TenantContext } from '../_shared/auth/tenant.ts';
import { resolveTenant } from '../_shared/auth/tenant.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import type { AppEnv } from '../_shared/hono-env.ts';
import type { CatalogCache, CatalogSnapshot } from '../_shared/router/catalog.ts';
import { createCatalogCache } from '../_shared/router/catalog.ts';
import { type DispatchDependencies, type DispatchResult, sleepWithSignal } from '../_shared/router/dispatch.ts';
import { ProviderHealthTracker } from '../_shared/router/health.ts';
import { bucketKey, planRoute, type RoutePlan, type RouteRequest } from '../_shared/router/plan.ts';
import { type QualitySignalSink, QualitySignalTracker } from '../_shared/router/quality-signals.ts';
import type { ProviderKeySource } from '../_shared/router/provider-keys.ts';
import { type BudgetLedger, createBatchedBudgetLedger } from '../_shared/economics/ledger.ts';
import { LeasedBudgetLedger } from '../_shared/economics/lease-ledger.ts';

export interface LlmRouterOptions {
  /** Provider keys: the key vault's resolver in production, anything with the same shape in tests. */
  keys: ProviderKeySource;
  /** The budget saga; default: the SQL functions through group commit. */
  ledger?: BudgetLedger;
  random?: () => number;
  /** Automatic quality signals; default: batched into model_quality_signals. */
  signals?: QualitySignalSink;
}

/** What the router's routes share within one isolate. */
export interface RouterServices {
  deps: AppDependencies;
  catalog: CatalogCache;
  health: ProviderHealthTracker;
  dispatch: DispatchDependencies;
  ledger: BudgetLedger;
  reservationTtlSeconds: number;
  random: () => number;
  signals: QualitySignalSink;
  /** A/B buckets whose cap was found spent in this isolate, until when (ms); the planner routes around them. */
  spentBuckets: Map<string, number>;
}

/** The budget saga through group commit, with budget leases unless BUDGET_LEASE_REQUESTS is 0. */
export function createRouterLedger(deps: AppDependencies): BudgetLedger | LeasedBudgetLedger {
  const economics = deps.config.economics;
  const flush = createBatchedBudgetLedger(deps.db, {
    maxBatch: economics.batchMax,
    maxInFlight: economics.batchesInFlight,
  });
  if (economics.lease.requests === 0) return flush;
  return new LeasedBudgetLedger(deps.db, flush, deps.clock, deps.logger, {
    holder: `isolate:${crypto.randomUUID()}`,
    requestsPerLease: economics.lease.requests,
    admitSeconds: economics.lease.admitSeconds,
    ttlSeconds: economics.reservationTtlSeconds,
    idleCloseMs: economics.lease.idleCloseMs,
    declineBackoffMs: economics.lease.declineBackoffMs,
  });
}

export function createRouterServices(deps: AppDependencies, options: LlmRouterOptions): RouterServices {
  const settings = deps.config.router;
  const random = options.random ?? Math.random;
  const health = new ProviderHealthTracker(deps.db, deps.clock, deps.logger, {
    failureThreshold: settings.failureThreshold,
    cooldownMs: settings.cooldownMs,
    flushIntervalMs: settings.healthFlushMs,
  });
  const signals = options.signals ??
    new QualitySignalTracker(deps.db, deps.clock, deps.logger, settings.healthFlushMs);
  return {
    deps,
    signals,
    spentBuckets: new Map(),
    catalog: createCatalogCache(deps.db, deps.clock, settings.catalogTtlMs),
    health,
    random,
    ledger: options.ledger ?? createRouterLedger(deps),
    reservationTtlSeconds: deps.config.economics.reservationTtlSeconds,
    dispatch: {
      keys: options.keys,
      health,
      signals,
      logger: deps.logger,
      retry: {
        baseDelayMs: settings.retryBaseMs,
        maxDelayMs: settings.retryMaxMs,
        maxRetryAfterMs: settings.maxRetryAfterMs,
      },
      sleep: sleepWithSignal,
      random,
      now: () => deps.clock.now().getTime(),
    },
  };
}

/**
 * Plans a request's route with this isolate's circuit breaker and the A/B
 * buckets known to be over their cap (remembered for one catalog TTL, so a
 * raised cap applies again within it).
 */
export function planRequest(
  services: RouterServices,
  snapshot: CatalogSnapshot,
  request: RouteRequest,
  alsoSpent: readonly string[] = [],
): RoutePlan {
  const now = services.deps.clock.now();
  const spent = new Set<string>(alsoSpent);
  for (const [key, until] of services.spentBuckets) {
    if (until > now.getTime()) spent.add(key);
    else services.spentBuckets.delete(key);
  }
  return planRoute(snapshot, request, {
    now,
    isCoolingDown: (providerId, model) => services.health.isCoolingDown(providerId, model),
    random: services.random,
    spentBuckets: spent,
  });
}

/** Remembers that a bucket's cap is spent, so the next plans fall back to the control without asking. */
export function markBucketSpent(services: RouterServices, policyId: string, bucket: string): void {
  const until = services.deps.clock.now().getTime() + services.deps.config.router.catalogTtlMs;
  services.spentBuckets.set(bucketKey(policyId, bucket), until);
}

/** The tenant this request acts for (see resolveTenant). */
export function requestTenant(c: Context<AppEnv>, services: RouterServices): Promise<TenantContext> {
  return resolveTenant(services.deps.db, c.get('caller'), c.req.header('x-tenant-id'));
}

/** Says which provider and model served the call, how many upstream calls it took, and why this route. */
export function setRouteHeaders(c: Context<AppEnv>, plan: RoutePlan, result: DispatchResult<unknown>): void {
  c.header('x-switchyard-provider', result.candidate.provider.slug);
  c.header('x-switchyard-model', result.candidate.model.upstreamModel);
  c.header('x-switchyard-attempts', String(result.attempts));
  c.header('x-switchyard-route-reason', plan.reason);
}

/** A signal that fires when the client disconnects (Deno aborts request.signal then). */
export function clientSignal(c: Context<AppEnv>): AbortSignal {
  return c.req.raw.signal;
}
