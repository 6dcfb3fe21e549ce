import type { Clock } from '../clock.ts';
import { PeriodicFlush } from './periodic-flush.ts';
import type { Database } from '../db.ts';
import type { Logger } from '../logger.ts';
import type { RouteCandidate, RoutePlan } from './plan.ts';

/** What one request taught about the model that served (or failed) it. */
export type QualityOutcome = 'ok' | 'error' | 'timeout' | 'refusal' | 'invalid_json';

export interface QualitySignal {
  tenantId: string;
  /** The request's domain tag; '' without one. */
  domain: string;
  providerId: string;
  upstreamModel: string;
  outcome: QualityOutcome;
}

/** The signal of one attempt of a planned request on one candidate. */
export function signalOf(tenantId: string, plan: RoutePlan, candidate: RouteCandidate, outcome: QualityOutcome) {
  return {
    tenantId,
    domain: plan.domain,
    providerId: candidate.provider.id,
    upstreamModel: candidate.model.upstreamModel,
    outcome,
  } satisfies QualitySignal;
}

/** Where the router reports outcomes; the tracker below, or anything with the same shape in tests. */
export interface QualitySignalSink {
  record(signal: QualitySignal): void;
}

type Aggregate = {
  tenant_id: string;
  domain: string;
  provider_id: string;
  upstream_model: string;
  requests: number;
  failures: number;
  kinds: { [kind in Exclude<QualityOutcome, 'ok'>]?: number };
};

/**
 * Automatic quality signals, aggregated per (tenant, domain, provider, model)
 * in this isolate and flushed to model_quality_signals at most every
 * `flushIntervalMs`, one statement per flush (the provider-health pattern).
 * refresh_model_reputation folds them into the reputation later, off the
 * request path.
 */
export class QualitySignalTracker implements QualitySignalSink {
  private pending = new Map<string, Aggregate>();
  private readonly flusher: PeriodicFlush;

  constructor(
    private readonly db: Database,
    clock: Clock,
    private readonly logger: Logger,
    flushIntervalMs: number,
  ) {
    this.flusher = new PeriodicFlush(clock, flushIntervalMs, () => this.writeSignals());
  }

  record(signal: QualitySignal): void {
    const key = `${signal.tenantId}|${signal.domain}|${signal.providerId}/${signal.upstreamModel}`;
    let aggregate = this.pending.get(key);
    if (!aggregate) {
      aggregate = {
        tenant_id: signal.tenantId,
        domain: signal.domain,
        provider_id: signal.providerId,
        upstream_model: signal.upstreamModel,
        requests: 0,
        failures: 0,
        kinds: {},
      };
      this.pending.set(key, aggregate);
    }
    aggregate.requests += 1;
    if (signal.outcome !== 'ok') {
      aggregate.failures += 1;
      aggregate.kinds[signal.outcome] = (aggregate.kinds[signal.outcome] ?? 0) + 1;
    }
    this.flusher.poke();
  }

  /** Writes everything gathered since the last flush in one statement; a failure is logged, not thrown. */
  flush(): Promise<void> {
    return this.flusher.run();
  }

  private async writeSignals(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    if (batch.length === 0) return;
    try {
      await this.db`select public.record_quality_signals(${this.db.json(batch)})`;
    } catch (error) {
      this.logger.warn('quality_signals_flush_failed', {
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

/** A refusal: the model declined (OpenAI's `refusal` field or a content-filter stop). */
export function isRefusal(choice: { finish_reason?: string | null; message?: { refusal?: string | null } }): boolean {
  return choice.finish_reason === 'content_filter' || !!choice.message?.refusal;
}

/** JSON mode was asked and the answer does not parse as JSON. */
export function isInvalidJson(content: string | null | undefined): boolean {
  if (content == null) return true;
  try {
    JSON.parse(content);
    return false;
  } catch {
    return true;
  }
}
