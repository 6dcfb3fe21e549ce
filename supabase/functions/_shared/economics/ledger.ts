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

export interface Settlement {
  request_id: string;
  prompt_tokens: number;
  completion_tokens: number;
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
export class GroupCommitQueue<Input, Answer> {
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

/** The production ledger: reserve_budgets / settle_budgets / release_budgets through group commit. */
export function createBatchedBudgetLedger(db: Database, options: LedgerOptions): BudgetLedger {
  const call = <Input, Answer>(fn: 'reserve_budgets' | 'settle_budgets' | 'release_budgets') =>
    new GroupCommitQueue<Input, Answer>(
      async (inputs) => {
        const payload = db.json(inputs as unknown as Parameters<typeof db.json>[0]);
        const rows = fn === 'reserve_budgets'
          ? await db<{ answers: Answer[] }[]>`select public.reserve_budgets(${payload}) as answers`
          : fn === 'settle_budgets'
          ? await db<{ answers: Answer[] }[]>`select public.settle_budgets(${payload}) as answers`
          : await db<{ answers: Answer[] }[]>`select public.release_budgets(${payload}) as answers`;
        return rows[0].answers;
      },
      options.maxBatch,
      options.maxInFlight,
    );
  const reserves = call<ReserveRequest, ReserveAnswer>('reserve_budgets');
  const settles = call<Settlement, SettleAnswer>('settle_budgets');
  const releases = call<Release, ReleaseAnswer>('release_budgets');
  return {
    reserve: (request) => reserves.submit(request),
    settle: (settlement) => settles.submit(settlement),
    release: (release) => releases.submit(release),
  };
}
