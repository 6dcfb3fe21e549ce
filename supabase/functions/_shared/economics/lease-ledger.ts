import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db.ts';
import type { Logger } from '../logger.ts';
import {
  type BudgetLedger,
  createBatchedBudgetLedger,
  type LeaseRequest,
  type LedgerFlush,
  type RateLimitStatus,
  type Release,
  type ReleaseAnswer,
  type ReserveAnswer,
  type ReserveRequest,
  type SettleAnswer,
  type Settlement,
} from './ledger.ts';

export interface LeaseOptions {
  /** Who holds the leases (one id per isolate), recorded on each lease. */
  holder: string;
  /** A lease covers this many requests like the one that asked for it; 0 turns leases off. */
  requestsPerLease: number;
  /** How long a lease admits requests (the database shortens it to the end of a rate or budget window). */
  admitSeconds: number;
  /** After this the reaper releases a lease nobody closed (a dead isolate); longer than any request. */
  ttlSeconds: number;
  /** A lease that admitted nothing for this long is closed, so idle isolates hold nothing. */
  idleCloseMs: number;
  /** After a decline, the context uses per-request reservations for this long before asking again. */
  declineBackoffMs: number;
}

interface Lease {
  id: string;
  /** What this isolate may still admit: the lease's remainder minus what admitted requests may use. */
  usd: number;
  tokens: number;
  requests: number;
  /** Requests granted; every admission counts as used (a released request stays counted, like a reservation). */
  requestsGranted: number;
  rateLimit: RateLimitStatus | null;
  admitUntil: number;
  lastAdmitAt: number;
  /** Admitted and not yet settled or released. */
  outstanding: number;
  tokensUsed: number;
  /** No more admissions; closed once nothing is outstanding. */
  retired: boolean;
  closing: boolean;
}

interface Admission {
  lease: Lease;
  usd: number;
  tokens: number;
  userId: string | null;
  domain: string | null;
}

/** Requests share a lease when every budget and rate limit that applies to them is the same. */
function contextKey(request: ReserveRequest): string {
  return [
    request.tenant_id,
    request.api_key_id ?? '',
    request.model_alias,
    request.policy_id ?? '',
    request.bucket ?? '',
  ]
    .join('|');
}

function unrefTimer(handle: unknown): void {
  if (typeof handle === 'object' && handle !== null && 'unref' in handle) {
    (handle as { unref(): void }).unref();
  } else if (typeof handle === 'number') {
    (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno?.unrefTimer(handle);
  }
}

/**
 * Budget leases (migration 20261123000600_economics.sql): the isolate reserves a slice of
 * the budgets and of the minute's rate limits for many requests in one call,
 * admits requests against it in memory, and charges each request's usage to
 * the lease when it settles. Acquiring, settling and closing a lease go
 * through the same group-commit queue as everything else. A request then waits on one flush instead of two, and
 * writes one usage record instead of a reservation row twice and a usage
 * record. All deciding that matters for money stays in SQL: a lease is a
 * reservation, settling charges at most what is left of it, and the counters'
 * CHECK holds whatever this class does.
 *
 * Requests whose id the caller chose, and requests of a context the database
 * declined a lease for (too close to a limit), take the exact per-request path.
 */
export class LeasedBudgetLedger implements BudgetLedger {
  private readonly leases = new Map<string, Lease>();
  private readonly acquiring = new Map<string, Promise<Lease | undefined>>();
  private readonly declinedUntil = new Map<string, number>();
  private readonly admitted = new Map<string, Admission>();
  private readonly retired = new Set<Lease>();
  private readonly timer: unknown;

  constructor(
    private readonly flush: LedgerFlush,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: LeaseOptions,
  ) {
    this.timer = setInterval(() => this.sweep(), Math.max(50, Math.min(options.idleCloseMs, 1000)));
    unrefTimer(this.timer);
  }

  async reserve(request: ReserveRequest): Promise<ReserveAnswer> {
    if (request.own_reservation || this.options.requestsPerLease <= 0) return await this.flush.reserve(request);
    const key = contextKey(request);
    // Twice at most: a lease granted to several waiting requests may run out before this one's turn.
    for (let attempt = 0; attempt < 2; attempt++) {
      const current = this.leases.get(key);
      if (current && this.fits(current, request)) return this.admit(current, request);
      if (current) this.retire(key, current);
      if ((this.declinedUntil.get(key) ?? 0) > this.now()) break;
      const lease = await this.acquire(key, request);
      if (!lease) break;
      if (this.fits(lease, request)) return this.admit(lease, request);
    }
    return await this.flush.reserve(request);
  }

  async settle(settlement: Settlement): Promise<SettleAnswer> {
    const admission = this.admitted.get(settlement.request_id);
    if (!admission) return await this.flush.settle(settlement);
    this.admitted.delete(settlement.request_id);
    const { lease } = admission;
    try {
      const answer = await this.flush.settleLeased({
        ...settlement,
        lease_id: lease.id,
        user_id: admission.userId,
        domain: admission.domain,
      });
      // The database drew the actual usage from the lease; the estimate held for it comes back.
      lease.usd += admission.usd - settlement.cost_usd_micros;
      lease.tokens += admission.tokens - (settlement.prompt_tokens + settlement.completion_tokens);
      switch (answer.status) {
        case 'settled':
          return answer;
        case 'duplicate':
          return { status: 'duplicate', reservation_status: 'settled' };
        case 'lease_closed':
          return { status: 'unknown' };
      }
    } finally {
      this.finish(lease);
    }
  }

  release(release: Release): Promise<ReleaseAnswer> {
    const admission = this.admitted.get(release.request_id);
    if (!admission) return this.flush.release(release);
    this.admitted.delete(release.request_id);
    // Like a released reservation, the request stays counted against the rate limit; its
    // estimate stays in the lease (unused), and goes back to the budget when the lease closes.
    this.finish(admission.lease);
    return Promise.resolve({ status: 'released' });
  }

  /**
   * Stops admitting and closes every lease once its requests are done
   * (shutdown, tests); waits at most `timeoutMs`, after which the reaper
   * releases what is still open.
   */
  async close(timeoutMs = 5000): Promise<void> {
    clearInterval(this.timer as number);
    for (const [key, lease] of this.leases) this.retire(key, lease);
    const deadline = this.now() + timeoutMs;
    while (this.retired.size > 0 && this.now() < deadline) {
      for (const lease of this.retired) this.closeIfDone(lease);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private fits(lease: Lease, request: ReserveRequest): boolean {
    return !lease.retired && lease.admitUntil > this.now() && lease.requests >= 1 && lease.usd >= request.usd_micros &&
      lease.tokens >= request.tokens;
  }

  private admit(lease: Lease, request: ReserveRequest): ReserveAnswer {
    lease.usd -= request.usd_micros;
    lease.tokens -= request.tokens;
    lease.requests -= 1;
    lease.outstanding += 1;
    lease.tokensUsed += request.tokens;
    lease.lastAdmitAt = this.now();
    this.admitted.set(request.request_id, {
      lease,
      usd: request.usd_micros,
      tokens: request.tokens,
      userId: request.user_id,
      domain: request.domain ?? null,
    });
    // What the caller may still send this minute: the window's remainder plus this lease's unused part.
    const rate = lease.rateLimit;
    return {
      status: 'reserved',
      rate_limit: rate && {
        ...rate,
        remaining_requests: rate.remaining_requests === null ? null : rate.remaining_requests + lease.requests,
        remaining_tokens: rate.remaining_tokens === null ? null : rate.remaining_tokens + lease.tokens,
        reset_seconds: Math.max(1, Math.ceil((lease.admitUntil - this.now()) / 1000)),
      },
    };
  }

  /** One acquisition per context at a time; concurrent requests wait for the same one. */
  private acquire(key: string, request: ReserveRequest): Promise<Lease | undefined> {
    let pending = this.acquiring.get(key);
    if (!pending) {
      pending = this.requestLease(key, request).finally(() => this.acquiring.delete(key));
      this.acquiring.set(key, pending);
    }
    return pending;
  }

  private async requestLease(key: string, request: ReserveRequest): Promise<Lease | undefined> {
    const size = this.options.requestsPerLease;
    const id = `lease:${crypto.randomUUID()}`;
    const asked: LeaseRequest = {
      lease_id: id,
      holder: this.options.holder,
      tenant_id: request.tenant_id,
      api_key_id: request.api_key_id,
      model_alias: request.model_alias,
      policy_id: request.policy_id ?? null,
      bucket: request.bucket ?? null,
      usd_micros: request.usd_micros * size,
      tokens: request.tokens * size,
      requests: size,
      ttl_seconds: this.options.ttlSeconds,
      admit_seconds: this.options.admitSeconds,
    };
    const startedAt = this.now();
    const answer = await this.flush.acquireLease(asked);
    if (answer.status === 'declined') {
      this.declinedUntil.set(key, this.now() + this.options.declineBackoffMs);
      return undefined;
    }
    const lease: Lease = {
      id,
      usd: asked.usd_micros,
      tokens: asked.tokens,
      requests: size,
      requestsGranted: size,
      rateLimit: answer.rate_limit,
      // Measured from before the call: the database's clock started the admission window then at the latest.
      admitUntil: startedAt + Number(answer.admit_seconds) * 1000,
      lastAdmitAt: this.now(),
      outstanding: 0,
      tokensUsed: 0,
      retired: false,
      closing: false,
    };
    const previous = this.leases.get(key);
    if (previous) this.retire(key, previous);
    this.leases.set(key, lease);
    return lease;
  }

  private retire(key: string, lease: Lease): void {
    lease.retired = true;
    if (this.leases.get(key) === lease) this.leases.delete(key);
    this.retired.add(lease);
    this.closeIfDone(lease);
  }

  /** An admitted request of this lease settled or was released. */
  private finish(lease: Lease): void {
    lease.outstanding -= 1;
    this.closeIfDone(lease);
  }

  /** A retired lease with nothing outstanding is closed. */
  private closeIfDone(lease: Lease): void {
    if (lease.retired && lease.outstanding === 0 && !lease.closing) void this.closeWhenDone(lease);
  }

  private async closeWhenDone(lease: Lease): Promise<void> {
    if (lease.closing || lease.outstanding > 0) return;
    lease.closing = true;
    try {
      const answer = await this.flush.closeLease({
        lease_id: lease.id,
        requests_used: lease.requestsGranted - lease.requests,
        tokens_used: lease.tokensUsed,
      });
      if (answer.status !== 'closed') this.logger.warn('lease_close_not_applied', { status: answer.status });
      this.retired.delete(lease);
    } catch (error) {
      // The reaper releases it after its TTL; the next sweep tries again.
      lease.closing = false;
      this.logger.error('lease_close_failed', { message: error instanceof Error ? error.message : String(error) });
    }
  }

  /** Retires leases past their admission window or idle, and closes retired ones that are done. */
  private sweep(): void {
    const now = this.now();
    for (const [key, lease] of this.leases) {
      if (lease.admitUntil <= now || now - lease.lastAdmitAt >= this.options.idleCloseMs) this.retire(key, lease);
    }
    for (const lease of this.retired) this.closeIfDone(lease);
  }
}

/**
 * Closes the ledger's leases when the runtime is about to stop the isolate
 * (Supabase Edge Runtime dispatches `beforeunload`), so an isolate that is
 * shut down gives its slices back instead of leaving them to the reaper. Best
 * effort: the listener cannot hold the isolate open.
 */
export function closeLeasesOnUnload(ledger: LeasedBudgetLedger, target: EventTarget = globalThis): void {
  target.addEventListener('beforeunload', () => void ledger.close(2000));
}

/** The budget saga through group commit, with budget leases unless BUDGET_LEASE_REQUESTS is 0. */
export function createLedger(
  db: Database,
  config: Config,
  clock: Clock,
  logger: Logger,
): BudgetLedger | LeasedBudgetLedger {
  const economics = config.economics;
  const flush = createBatchedBudgetLedger(db, { maxBatch: economics.batchMax, maxInFlight: economics.batchesInFlight });
  if (economics.lease.requests === 0) return flush;
  return new LeasedBudgetLedger(flush, clock, logger, {
    holder: `isolate:${crypto.randomUUID()}`,
    requestsPerLease: economics.lease.requests,
    admitSeconds: economics.lease.admitSeconds,
    ttlSeconds: economics.reservationTtlSeconds,
    idleCloseMs: economics.lease.idleCloseMs,
    declineBackoffMs: economics.lease.declineBackoffMs,
  });
}
