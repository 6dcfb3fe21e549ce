// The budget saga of one metered request: admit (a reservation or a lease's
// slice) -> settle the actual usage, or release. Answers are the ledger's, in
// its own terms; the router maps them to HTTP (llm-router/ledger-answers.ts).
import type { Logger } from '../logger.ts';
import type { ModelRecord } from '../router/catalog.ts';
import { controlBucket, type RoutePlan } from '../router/plan.ts';
import type { BudgetLedger, DialectName, RateLimitStatus, ReserveAnswer } from './ledger.ts';
import { actualCost, affordableOutputTokens, estimateCost, type PricedUsage } from './pricing.ts';

export interface AdmissionRequest {
  requestId: string;
  tenantId: string;
  apiKeyId: string | null;
  userId: string | null;
  /** The caller sent this id: it takes a reservation of its own, which refuses the id's reuse. */
  chosenByCaller: boolean;
  alias: string;
  plan: RoutePlan;
  promptTokens: number;
  /** max_tokens the caller asked for, if any. */
  requestedMaxTokens?: number;
  ttlSeconds: number;
}

type Refusal = Extract<ReserveAnswer, { status: 'refused' }>;

export type Admission =
  | {
    status: 'admitted';
    /** The output-token limit the request must run with (lower than asked when the token guard capped it). */
    maxOutputTokens: number;
    capped: boolean;
    rateLimit: RateLimitStatus | null;
  }
  | { status: 'duplicate' }
  | { status: 'rate_limited'; rateLimitId: string; rateLimit: RateLimitStatus }
  /** The plan's A/B bucket has no room left under its cap: plan again without it. */
  | { status: 'bucket_spent'; policyId: string; bucket: string }
  | { status: 'over_budget'; refusal?: Refusal };

/** The dearest candidate decides the estimate: whichever serves, the reservation covers it. */
function dearestEstimate(plan: RoutePlan, promptTokens: number, maxTokens: number | undefined) {
  let usd = 0;
  let output = 0;
  for (const { model } of plan.candidates) {
    const modelOutput = Math.min(maxTokens ?? model.maxOutputTokens, model.maxOutputTokens);
    usd = Math.max(usd, estimateCost(model, promptTokens, modelOutput));
    output = Math.max(output, modelOutput);
  }
  return { usd, tokens: promptTokens + output, output };
}

function dearestModel(plan: RoutePlan): ModelRecord {
  return plan.candidates.reduce(
    (dearest, { model }) => model.outputCostPerMillion > dearest.outputCostPerMillion ? model : dearest,
    plan.candidates[0].model,
  );
}

/**
 * Reserves the request's estimate. Over a budget whose policy is `cap`,
 * max_tokens is lowered to what fits and reserved again (once).
 */
export async function admitRequest(ledger: BudgetLedger, input: AdmissionRequest): Promise<Admission> {
  let maxTokens = input.requestedMaxTokens;
  for (let attempt = 0; attempt < 2; attempt++) {
    const estimate = dearestEstimate(input.plan, input.promptTokens, maxTokens);
    const answer = await ledger.reserve({
      request_id: input.requestId,
      tenant_id: input.tenantId,
      api_key_id: input.apiKeyId,
      user_id: input.userId,
      model_alias: input.alias,
      usd_micros: estimate.usd,
      tokens: estimate.tokens,
      ttl_seconds: input.ttlSeconds,
      policy_id: input.plan.policy?.id ?? null,
      bucket: input.plan.bucket ?? null,
      domain: input.plan.domain === '' ? null : input.plan.domain,
      // An id the caller chose must stay idempotent: its own reservation refuses a retry as a duplicate.
      own_reservation: input.chosenByCaller,
    });
    switch (answer.status) {
      case 'reserved':
        return {
          status: 'admitted',
          maxOutputTokens: estimate.output,
          capped: attempt > 0,
          rateLimit: answer.rate_limit,
        };
      case 'duplicate':
        return { status: 'duplicate' };
      case 'rate_limited':
        return { status: 'rate_limited', rateLimitId: answer.rate_limit_id, rateLimit: answer };
      case 'refused': {
        const { policy, bucket } = input.plan;
        if (answer.scope === 'bucket' && policy && bucket && bucket !== controlBucket(policy)) {
          return { status: 'bucket_spent', policyId: policy.id, bucket };
        }
        if (answer.over_limit === 'cap' && attempt === 0) {
          const fits = answer.unit === 'usd_micros'
            ? affordableOutputTokens(dearestModel(input.plan), input.promptTokens, answer.remaining)
            : answer.remaining - input.promptTokens;
          if (fits >= 1) {
            maxTokens = Math.min(fits, estimate.output);
            continue;
          }
        }
        return { status: 'over_budget', refusal: answer };
      }
    }
  }
  return { status: 'over_budget' };
}

export interface UsageOutcome extends PricedUsage {
  model: ModelRecord;
  provider: string;
  dialect: DialectName;
  latencyMs: number;
  status: 'succeeded' | 'cancelled';
}

/** Settles at the actual usage; awaited, so every answer the caller receives has its usage record. */
export async function settleRequest(
  ledger: BudgetLedger,
  logger: Logger,
  requestId: string,
  outcome: UsageOutcome,
): Promise<void> {
  // Cache writes and reads are part of the prompt (an estimated prompt may count fewer).
  const usage = {
    ...outcome,
    promptTokens: Math.max(outcome.promptTokens, outcome.cacheWriteTokens + outcome.cacheReadTokens),
  };
  const answer = await ledger.settle({
    request_id: requestId,
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    cache_write_tokens: usage.cacheWriteTokens,
    cache_read_tokens: usage.cacheReadTokens,
    dialect: outcome.dialect,
    cost_usd_micros: actualCost(outcome.model, usage),
    provider: outcome.provider,
    upstream_model: outcome.model.upstreamModel,
    latency_ms: Math.round(outcome.latencyMs),
    status: outcome.status,
  });
  if (answer.status !== 'settled') logger.error('settle_not_applied', { request_id: requestId, status: answer.status });
}

/** Gives the reservation back (no answer was produced); never throws over the original error. */
export async function releaseRequest(
  ledger: BudgetLedger,
  logger: Logger,
  requestId: string,
  reason: string,
): Promise<void> {
  try {
    await ledger.release({ request_id: requestId, reason });
  } catch (error) {
    // The reaper releases it after the reservation's TTL.
    logger.error('release_failed', {
      request_id: requestId,
      message: error instanceof Error ? error.message : String(error),
    });
  }
}
