// The ledger's answers in HTTP: OpenAI's x-ratelimit-* headers, 429 with
// Retry-After, 402 naming the budget, 409 for a reused request id.
import type { Admission } from '../_shared/economics/saga.ts';
import type { RateLimitStatus } from '../_shared/economics/ledger.ts';
import { HttpError } from '../_shared/errors.ts';
import { requestIdAlreadyUsed } from '../_shared/request-id.ts';

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

/** A dialect's rate-limit headers (OpenAI's x-ratelimit-* by default). */
/** `now` is the clock's, for formats that send the reset as a time. */
export type RateLimitHeaders = (status: RateLimitStatus, now: Date) => Record<string, string>;

/** The headers of an admitted request: its rate limits, and the lowered max_tokens when the guard capped it. */
export function admittedHeaders(
  admission: Extract<Admission, { status: 'admitted' }>,
  headersOf: RateLimitHeaders,
  now: Date,
): Record<string, string> {
  const headers = admission.rateLimit ? headersOf(admission.rateLimit, now) : {};
  if (admission.capped) headers['x-switchyard-max-tokens-capped'] = String(admission.maxOutputTokens);
  return headers;
}

/** A refused admission as the caller's error. */
export function refusalError(
  admission: Exclude<Admission, { status: 'admitted' | 'bucket_spent' }>,
  headersOf: RateLimitHeaders,
  now: Date,
): HttpError {
  switch (admission.status) {
    case 'duplicate':
      return requestIdAlreadyUsed();
    case 'rate_limited':
      return new HttpError('rate_limited', 'Rate limit reached for requests; try again later.', {
        openaiType: 'rate_limit_error',
        headers: {
          'retry-after': String(admission.rateLimit.reset_seconds),
          ...headersOf(admission.rateLimit, now),
        },
        details: { rate_limit_id: admission.rateLimitId },
      });
    case 'over_budget': {
      const refusal = admission.refusal;
      if (!refusal) {
        return new HttpError('budget_exceeded', 'Budget exceeded: even a capped max_tokens does not fit', {
          openaiType: 'insufficient_quota',
        });
      }
      return new HttpError(
        'budget_exceeded',
        `Budget exceeded: the ${refusal.period} ${refusal.scope} budget (${refusal.unit}) has ${refusal.remaining} of ${refusal.limit} left and this request needs up to ${refusal.requested}.`,
        {
          openaiType: 'insufficient_quota',
          details: {
            budget_id: refusal.budget_id,
            scope: refusal.scope,
            unit: refusal.unit,
            remaining: refusal.remaining,
          },
        },
      );
    }
  }
}
