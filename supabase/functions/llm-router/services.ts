import type { Context } from 'hono';
import type { TenantContext } from '../_shared/auth/tenant.ts';
import { resolveTenant } from '../_shared/auth/tenant.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import type { AppEnv } from '../_shared/hono-env.ts';
import type { CatalogCache } from '../_shared/router/catalog.ts';
import { createCatalogCache } from '../_shared/router/catalog.ts';
import { type DispatchDependencies, sleepWithSignal } from '../_shared/router/dispatch.ts';
import { ProviderHealthTracker } from '../_shared/router/health.ts';
import { type QualitySignalSink, QualitySignalTracker } from '../_shared/router/quality-signals.ts';
import type { ProviderKeySource } from '../_shared/router/provider-keys.ts';
import type { BudgetLedger } from '../_shared/economics/ledger.ts';
import { createLedger } from '../_shared/economics/lease-ledger.ts';

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
    ledger: options.ledger ?? createLedger(deps.db, deps.config, deps.clock, deps.logger),
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

/** The tenant this request acts for (see resolveTenant). */
export function requestTenant(c: Context<AppEnv>, services: RouterServices): Promise<TenantContext> {
  return resolveTenant(services.deps.db, c.get('caller'), c.req.header('x-tenant-id'));
}
