import type { Database } from '../db.ts';

/** One request's reservation, as `reserve_budget` takes it. */
export interface ReserveRequest {
  request_id: string;
  tenant_id: string;
  api_key_id: string | null;
  user_id: string | null;
  model_alias: string;
  usd_micros: number;
  tokens: number;
  ttl_seconds: number;
  /** The routing policy and A/B bucket the planner chose: a budget of scope 'bucket' applies to it. */
  policy_id?: string | null;
  bucket?: string | null;
  /** The request's x-switchyard-domain tag, remembered on the reservation for feedback. */
  domain?: string | null;
  /**
   * The caller chose the request id (x-request-id): the request gets its own
   * reservation, whose primary key refuses a retry with the same id. Requests
   * with an id the router generated may run under a budget lease instead.
   */
  own_reservation?: boolean;
}

export interface RateLimitStatus {
  limit_requests: number | null;
  remaining_requests: number | null;
  limit_tokens: number | null;
  remaining_tokens: number | null;
  reset_seconds: number;
}

export type ReserveAnswer =
  | { status: 'reserved'; rate_limit: RateLimitStatus | null }
  | { status: 'duplicate'; reservation_status: string }
  | {
    status: 'refused';
    budget_id: string;
    scope: string;
    unit: 'usd_micros' | 'tokens';
    period: string;
    over_limit: 'refuse' | 'cap';
    limit: number;
    requested: number;
    remaining: number;
  }
  | ({ status: 'rate_limited'; rate_limit_id: string } & RateLimitStatus);

/**
 * The wire format a metered request was made in, as usage records carry it.
 * A new dialect adds its name here and to the check constraint of
 * usage_records.dialect (migration 20261123000600_economics.sql).
 */
export type DialectName = 'openai_chat' | 'openai_embeddings' | 'anthropic_messages' | 'openai_responses';

export interface Settlement {
  request_id: string;
  prompt_tokens: number;
  completion_tokens: number;
  /** The parts of prompt_tokens written to and read from the provider's prompt cache. */
  cache_write_tokens: number;
  cache_read_tokens: number;
  dialect: DialectName;
  cost_usd_micros: number;
  provider: string;
  upstream_model: string;
  latency_ms: number | null;
  status: 'succeeded' | 'failed' | 'cancelled';
}

export type SettleAnswer =
  | { status: 'settled'; overflow_usd_micros: number }
  | { status: 'duplicate'; reservation_status: string }
  | { status: 'unknown' };

export interface Release {
  request_id: string;
  reason: string;
}

export type ReleaseAnswer = { status: 'released' } | { status: 'duplicate'; reservation_status: string } | {
  status: 'unknown';
};

/** A request admitted under a budget lease, settled against it (settle_leased_usage). */
export interface LeasedSettlement extends Settlement {
  lease_id: string;
  user_id: string | null;
  domain: string | null;
}

export type LeasedSettleAnswer =
  | { status: 'settled'; overflow_usd_micros: number }
  | { status: 'duplicate' }
  | { status: 'lease_closed'; lease_status: string };

/** Closing a lease: what is left goes back; requests and tokens the holder admitted count as used. */
export interface LeaseClose {
  lease_id: string;
  requests_used: number;
  tokens_used: number;
}

export type LeaseCloseAnswer = { status: 'closed' } | { status: 'duplicate'; lease_status?: string } | {
  status: 'unknown';
};

/** Asking for a budget lease (acquire_budget_leases): a slice of every budget and rate limit of one context. */
export interface LeaseRequest {
  lease_id: string;
  holder: string;
  tenant_id: string;
  api_key_id: string | null;
  model_alias: string;
  policy_id: string | null;
  bucket: string | null;
  usd_micros: number;
  tokens: number;
  requests: number;
  ttl_seconds: number;
  admit_seconds: number;
}

export type LeaseAnswer =
  | { status: 'granted'; admit_seconds: number; rate_limit: RateLimitStatus | null }
  | { status: 'declined'; reason: string };

/** The budget saga as the router sees it; every call lands in the SQL functions of the same name. */
export interface BudgetLedger {
  reserve(request: ReserveRequest): Promise<ReserveAnswer>;
  settle(settlement: Settlement): Promise<SettleAnswer>;
  release(release: Release): Promise<ReleaseAnswer>;
}

/**
 * Group commit for one SQL batch function: calls made while a batch is in
 * flight wait and go together in the next one (one transaction, one commit),
 * so under load the hot budget rows see one update burst per batch instead of
 * one transaction per request, and at low load a call goes out at once.
 * Each caller gets its own answer, in order; the SQL does all the deciding.
 */
class GroupCommitQueue<Input, Answer> {
  private queue: { input: Input; resolve(answer: Answer): void; reject(error: unknown): void }[] = [];
  private inFlight = 0;

  constructor(
    private readonly send: (inputs: Input[]) => Promise<Answer[]>,
    private readonly maxBatch: number,
    /** Batches in flight at once (one per pooled connection that may be used). */
    private readonly maxInFlight: number,
  ) {}

  submit(input: Input): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight += 1;
      this.send(batch.map((entry) => entry.input)).then(
        (answers) => {
          if (answers.length !== batch.length) throw new Error(`batch answered ${answers.length} of ${batch.length}`);
          batch.forEach((entry, index) => entry.resolve(answers[index]));
        },
      ).catch((error) => batch.forEach((entry) => entry.reject(error))).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }
}

export interface LedgerOptions {
  maxBatch: number;
  maxInFlight: number;
}

/** The per-request saga plus what budget leases acquire, settle and close, all through one flush queue. */
export interface LedgerFlush extends BudgetLedger {
  acquireLease(request: LeaseRequest): Promise<LeaseAnswer>;
  settleLeased(settlement: LeasedSettlement): Promise<LeasedSettleAnswer>;
  closeLease(close: LeaseClose): Promise<LeaseCloseAnswer>;
}

type LedgerEntry =
  | { kind: 'reserve'; input: ReserveRequest }
  | { kind: 'settle'; input: Settlement }
  | { kind: 'release'; input: Release }
  | { kind: 'settleLeased'; input: LeasedSettlement }
  | { kind: 'closeLease'; input: LeaseClose }
  | { kind: 'acquireLease'; input: LeaseRequest };
type LedgerAnswer =
  | ReserveAnswer
  | SettleAnswer
  | ReleaseAnswer
  | LeasedSettleAnswer
  | LeaseCloseAnswer
  | LeaseAnswer;

interface FlushAnswers {
  reserved: ReserveAnswer[];
  settled: SettleAnswer[];
  released: ReleaseAnswer[];
  leased_settled: LeasedSettleAnswer[];
  lease_closed: LeaseCloseAnswer[];
}

/**
 * The production ledger: reservations, settlements, releases and the leases'
 * settlements and closes queue up together and go to `flush_ledger` in one
 * transaction per flush (one round trip, one lock on the tenant's counter
 * row, one commit). Lease requests in the same batch go to
 * `acquire_budget_leases` in one call beside it (its own transaction, as
 * before: a lease is granted or declined whatever the flush does).
 */
export function createBatchedBudgetLedger(db: Database, options: LedgerOptions): LedgerFlush {
  const json = (inputs: unknown[]) => db.json(inputs as Parameters<typeof db.json>[0]);
  const flush = async (entries: LedgerEntry[]): Promise<LedgerAnswer[]> => {
    const ofKind = <K extends LedgerEntry['kind']>(kind: K) =>
      entries.filter((entry): entry is Extract<LedgerEntry, { kind: K }> => entry.kind === kind).map((entry) =>
        entry.input
      );
    const [row] = await db<{ answers: FlushAnswers }[]>`
      select public.flush_ledger(${json(ofKind('reserve'))}, ${json(ofKind('settle'))}, ${json(ofKind('release'))}, ${
      json(ofKind('settleLeased'))
    }, ${json(ofKind('closeLease'))}) as answers`;
    // Answers come back per kind, in input order: hand them out in queue order.
    const next = { reserve: 0, settle: 0, release: 0, settleLeased: 0, closeLease: 0 };
    const byKind: Record<Exclude<LedgerEntry['kind'], 'acquireLease'>, LedgerAnswer[]> = {
      reserve: row.answers.reserved,
      settle: row.answers.settled,
      release: row.answers.released,
      settleLeased: row.answers.leased_settled,
      closeLease: row.answers.lease_closed,
    };
    return entries.map((entry) => byKind[entry.kind as keyof typeof byKind][next[entry.kind as keyof typeof next]++]);
  };
  const acquire = async (requests: LeaseRequest[]): Promise<LeaseAnswer[]> => {
    const [row] = await db<{ answers: LeaseAnswer[] }[]>`
      select public.acquire_budget_leases(${json(requests)}) as answers`;
    return row.answers;
  };
  const queue = new GroupCommitQueue<LedgerEntry, LedgerAnswer>(
    async (entries) => {
      const leases = entries.filter((entry) => entry.kind === 'acquireLease');
      const rest = entries.filter((entry) => entry.kind !== 'acquireLease');
      const [granted, flushed] = await Promise.all([
        leases.length > 0 ? acquire(leases.map((entry) => entry.input as LeaseRequest)) : [],
        rest.length > 0 ? flush(rest) : [],
      ]);
      let lease = 0;
      let other = 0;
      return entries.map((entry) => entry.kind === 'acquireLease' ? granted[lease++] : flushed[other++]);
    },
    options.maxBatch,
    options.maxInFlight,
  );
  return {
    reserve: (input) => queue.submit({ kind: 'reserve', input }) as Promise<ReserveAnswer>,
    settle: (input) => queue.submit({ kind: 'settle', input }) as Promise<SettleAnswer>,
    release: (input) => queue.submit({ kind: 'release', input }) as Promise<ReleaseAnswer>,
    acquireLease: (input) => queue.submit({ kind: 'acquireLease', input }) as Promise<LeaseAnswer>,
    settleLeased: (input) => queue.submit({ kind: 'settleLeased', input }) as Promise<LeasedSettleAnswer>,
    closeLease: (input) => queue.submit({ kind: 'closeLease', input }) as Promise<LeaseCloseAnswer>,
  };
}
