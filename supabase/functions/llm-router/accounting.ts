import type { Context } from 'hono';
import type { TenantContext } from '../_shared/auth/tenant.ts';
import { actualCost, affordableOutputTokens, estimateCost } from '../_shared/economics/pricing.ts';
import type { RateLimitStatus, ReserveAnswer } from '../_shared/economics/ledger.ts';
import { HttpError } from '../_shared/errors.ts';
import { requestIdAlreadyUsed } from '../_shared/request-id.ts';
import type { AppEnv } from '../_shared/hono-env.ts';
import type { ModelRecord } from '../_shared/router/catalog.ts';
import { bucketKey, controlBucket, type RoutePlan, type RouteRequest } from '../_shared/router/plan.ts';
import type { CatalogSnapshot } from '../_shared/router/catalog.ts';
import { markBucketSpent, planRequest, type RouterServices } from './services.ts';

/** OpenAI's reset format: "1s", "6m0s". */
function resetDuration(seconds: number): string {
  return seconds >= 60 ? `${Math.floor(seconds / 60)}m${seconds % 60}s` : `${seconds}s`;
}

/** x-ratelimit-* headers as OpenAI sends them, for whichever limits the caller has. */
export function rateLimitHeaders(status: RateLimitStatus): Record<string, string> {
  const headers: Record<string, string> = {};
  if (status.limit_requests !== null) {
    headers['x-ratelimit-limit-requests'] = String(status.limit_requests);
    headers['x-ratelimit-remaining-requests'] = String(Math.max(0, status.remaining_requests ?? 0));
    headers['x-ratelimit-reset-requests'] = resetDuration(status.reset_seconds);
  }
  if (status.limit_tokens !== null) {
    headers['x-ratelimit-limit-tokens'] = String(status.limit_tokens);
    headers['x-ratelimit-remaining-tokens'] = String(Math.max(0, status.remaining_tokens ?? 0));
    headers['x-ratelimit-reset-tokens'] = resetDuration(status.reset_seconds);
  }
  return headers;
}

export interface ReservationInput {
  tenant: TenantContext;
  requestId: string;
  /** The caller sent this id: it takes a reservation of its own, which refuses the id's reuse. */
  chosenByCaller: boolean;
  alias: string;
  plan: RoutePlan;
  promptTokens: number;
  /** max_tokens the caller asked for, if any. */
  requestedMaxTokens?: number;
}

export interface Reservation {
  requestId: string;
  /** The output-token limit the request must run with (lower than asked when the token guard capped it). */
  maxOutputTokens: number;
  capped: boolean;
}

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
 * Reserves the request's estimate (reserve_budget, through group commit).
 * Over budget: 402 naming the budget, unless that budget's policy is `cap`,
 * in which case max_tokens is lowered to what fits and reserved again. Over
 * rate: 429 with Retry-After and x-ratelimit-* headers.
 */
export async function reserveForRequest(
  c: Context<AppEnv>,
  services: RouterServices,
  input: ReservationInput,
): Promise<Reservation> {
  let maxTokens = input.requestedMaxTokens;
  let capped = false;
  for (let attempt = 0; attempt < 2; attempt++) {
    const estimate = dearestEstimate(input.plan, input.promptTokens, maxTokens);
    const answer: ReserveAnswer = await services.ledger.reserve({
      request_id: input.requestId,
      tenant_id: input.tenant.tenantId,
      api_key_id: input.tenant.apiKeyId ?? null,
      user_id: input.tenant.userId ?? null,
      model_alias: input.alias,
      usd_micros: estimate.usd,
      tokens: estimate.tokens,
      ttl_seconds: services.reservationTtlSeconds,
      policy_id: input.plan.policy?.id ?? null,
      bucket: input.plan.bucket ?? null,
      domain: input.plan.domain === '' ? null : input.plan.domain,
      // An id the caller chose must stay idempotent: its own reservation refuses a retry as a duplicate.
      own_reservation: input.chosenByCaller,
    });
    switch (answer.status) {
      case 'reserved':
        if (answer.rate_limit) {
          for (const [name, value] of Object.entries(rateLimitHeaders(answer.rate_limit))) c.header(name, value);
        }
        if (capped) c.header('x-switchyard-max-tokens-capped', String(estimate.output));
        return { requestId: input.requestId, maxOutputTokens: estimate.output, capped };
      case 'duplicate':
        throw requestIdAlreadyUsed();
      case 'rate_limited':
        throw new HttpError('rate_limited', 'Rate limit reached for requests; try again later.', {
          openaiType: 'rate_limit_error',
          headers: { 'retry-after': String(answer.reset_seconds), ...rateLimitHeaders(answer) },
          details: { rate_limit_id: answer.rate_limit_id },
        });
      case 'refused': {
        const policy = input.plan.policy;
        if (answer.scope === 'bucket' && policy && input.plan.bucket && input.plan.bucket !== controlBucket(policy)) {
          throw new BucketCapSpentError(policy.id, input.plan.bucket);
        }
        if (answer.over_limit === 'cap' && attempt === 0) {
          const model = dearestModel(input.plan);
          const fits = answer.unit === 'usd_micros'
            ? affordableOutputTokens(model, input.promptTokens, answer.remaining)
            : answer.remaining - input.promptTokens;
          if (fits >= 1) {
            maxTokens = Math.min(fits, estimate.output);
            capped = true;
            continue;
          }
        }
        throw new HttpError(
          'budget_exceeded',
          `Budget exceeded: the ${answer.period} ${answer.scope} budget (${answer.unit}) has ${answer.remaining} of ${answer.limit} left and this request needs up to ${answer.requested}.`,
          {
            openaiType: 'insufficient_quota',
            details: {
              budget_id: answer.budget_id,
              scope: answer.scope,
              unit: answer.unit,
              remaining: answer.remaining,
            },
          },
        );
      }
    }
  }
  throw new HttpError('budget_exceeded', 'Budget exceeded: even a capped max_tokens does not fit', {
    openaiType: 'insufficient_quota',
  });
}

/** The request's A/B bucket has no room left under its cap: route it to the control instead. */
export class BucketCapSpentError extends Error {
  constructor(readonly policyId: string, readonly bucket: string) {
    super(`the budget cap of bucket ${bucket} is spent`);
    this.name = 'BucketCapSpentError';
  }
}

/**
 * Reserves for a planned route. When the chosen A/B bucket's cap is
 * spent (the SQL refuses with scope 'bucket'), the bucket is remembered as
 * spent and the request is planned again, which puts it in the control bucket.
 */
export async function planAndReserve(
  c: Context<AppEnv>,
  services: RouterServices,
  snapshot: CatalogSnapshot,
  route: RouteRequest,
  firstPlan: RoutePlan,
  input: Omit<ReservationInput, 'plan'>,
): Promise<{ plan: RoutePlan; reservation: Reservation }> {
  let plan = firstPlan;
  for (let attempt = 0;; attempt++) {
    try {
      return { plan, reservation: await reserveForRequest(c, services, { ...input, plan }) };
    } catch (error) {
      // One fallback is enough: the replanned request is in the control bucket, which never throws this.
      if (!(error instanceof BucketCapSpentError) || attempt > 0) throw error;
      markBucketSpent(services, error.policyId, error.bucket);
      plan = planRequest(services, snapshot, route, [bucketKey(error.policyId, error.bucket)]);
    }
  }
}

export interface UsageOutcome {
  model: ModelRecord;
  provider: string;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
  status: 'succeeded' | 'cancelled';
}

/** Settles at the actual usage; awaited, so every answer the caller receives has its usage record. */
export async function settleRequest(services: RouterServices, requestId: string, outcome: UsageOutcome): Promise<void> {
  const answer = await services.ledger.settle({
    request_id: requestId,
    prompt_tokens: outcome.promptTokens,
    completion_tokens: outcome.completionTokens,
    cost_usd_micros: actualCost(outcome.model, outcome.promptTokens, outcome.completionTokens),
    provider: outcome.provider,
    upstream_model: outcome.model.upstreamModel,
    latency_ms: Math.round(outcome.latencyMs),
    status: outcome.status,
  });
  if (answer.status !== 'settled') {
    services.deps.logger.error('settle_not_applied', { request_id: requestId, status: answer.status });
  }
}

/** Gives the reservation back (no answer was produced); never throws over the original error. */
export async function releaseRequest(services: RouterServices, requestId: string, reason: string): Promise<void> {
  try {
    await services.ledger.release({ request_id: requestId, reason });
  } catch (error) {
    // The reaper releases it after the reservation's TTL.
    services.deps.logger.error('release_failed', {
      request_id: requestId,
      message: error instanceof Error ? error.message : String(error),
    });
  }
}
