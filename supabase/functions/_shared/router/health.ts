import type { Clock } from '../clock.ts';
import { PeriodicFlush } from './periodic-flush.ts';
import type { Database } from '../db.ts';
import type { Logger } from '../logger.ts';

export interface HealthTrackerOptions {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long an open circuit keeps traffic away before one trial request. */
  cooldownMs: number;
  /** Outcomes are flushed to provider_health at most this often. */
  flushIntervalMs: number;
}

interface Bucket {
  providerId: string;
  upstreamModel: string;
  requests: number;
  failures: number;
  latencies: number[];
  consecutiveFailures: number;
  cooldownUntil: number | null;
  lastError: string | null;
  /** Something to flush since the last flush. */
  dirty: boolean;
}

function percentile(sorted: readonly number[], fraction: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

/**
 * Request outcomes per provider and model in this isolate: a circuit breaker
 * (open after `failureThreshold` consecutive failures, half-open after
 * `cooldownMs`) and an aggregate flushed to provider_health in batches, not
 * one write per request.
 */
export class ProviderHealthTracker {
  private readonly buckets = new Map<string, Bucket>();
  private readonly flusher: PeriodicFlush;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: HealthTrackerOptions,
  ) {
    this.flusher = new PeriodicFlush(clock, options.flushIntervalMs, () => this.writeOutcomes());
  }

  private bucket(providerId: string, upstreamModel: string): Bucket {
    const key = `${providerId}/${upstreamModel}`;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = {
        providerId,
        upstreamModel,
        requests: 0,
        failures: 0,
        latencies: [],
        consecutiveFailures: 0,
        cooldownUntil: null,
        lastError: null,
        dirty: false,
      };
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  /** True while the circuit is open; after the cooldown one trial goes through (half-open). */
  isCoolingDown(providerId: string, upstreamModel: string): boolean {
    const bucket = this.buckets.get(`${providerId}/${upstreamModel}`);
    return !!bucket?.cooldownUntil && bucket.cooldownUntil > this.clock.now().getTime();
  }

  recordSuccess(providerId: string, upstreamModel: string, latencyMs: number): void {
    const bucket = this.bucket(providerId, upstreamModel);
    bucket.requests += 1;
    bucket.latencies.push(latencyMs);
    bucket.consecutiveFailures = 0;
    bucket.cooldownUntil = null;
    bucket.dirty = true;
    this.flusher.poke();
  }

  recordFailure(providerId: string, upstreamModel: string, latencyMs: number, error: string): void {
    const bucket = this.bucket(providerId, upstreamModel);
    bucket.requests += 1;
    bucket.failures += 1;
    bucket.latencies.push(latencyMs);
    bucket.consecutiveFailures += 1;
    bucket.lastError = error;
    if (bucket.consecutiveFailures >= this.options.failureThreshold) {
      bucket.cooldownUntil = this.clock.now().getTime() + this.options.cooldownMs;
    }
    bucket.dirty = true;
    this.flusher.poke();
  }

  /** Writes what was gathered since the last flush in one statement. */
  flush(): Promise<void> {
    return this.flusher.run();
  }

  private async writeOutcomes(): Promise<void> {
    const outcomes = [...this.buckets.values()].filter((bucket) => bucket.dirty).map((bucket) => {
      const sorted = [...bucket.latencies].sort((a, b) => a - b);
      const outcome = {
        provider_id: bucket.providerId,
        upstream_model: bucket.upstreamModel,
        requests: bucket.requests,
        failures: bucket.failures,
        p50_ms: percentile(sorted, 0.5),
        p95_ms: percentile(sorted, 0.95),
        consecutive_failures: bucket.consecutiveFailures,
        cooldown_until: bucket.cooldownUntil ? new Date(bucket.cooldownUntil).toISOString() : null,
        last_error: bucket.lastError,
      };
      bucket.requests = 0;
      bucket.failures = 0;
      bucket.latencies = [];
      bucket.dirty = false;
      return outcome;
    });
    if (outcomes.length === 0) return;
    try {
      await this.db`select public.record_provider_outcomes(${this.db.json(outcomes)})`;
    } catch (error) {
      this.logger.warn('provider_health_flush_failed', {
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
