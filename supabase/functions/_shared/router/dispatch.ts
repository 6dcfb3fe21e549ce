import { HttpError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { UpstreamFailureError } from '../providers/errors.ts';
import type { UpstreamError } from '../providers/types.ts';
import type { ProviderHealthTracker } from './health.ts';
import type { RouteCandidate, RoutePlan } from './plan.ts';
import { type QualitySignalSink, signalOf } from './quality-signals.ts';
import type { ProviderKeySource } from './provider-keys.ts';
import { ClientAbortedError } from './upstream.ts';

export interface RetryPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
  /** A Retry-After longer than this moves on to the next candidate instead of waiting. */
  maxRetryAfterMs: number;
}

export interface DispatchDependencies {
  keys: ProviderKeySource;
  health: ProviderHealthTracker;
  /** Automatic quality signals: failed attempts are reported here (successes by the route, which sees the answer). */
  signals?: QualitySignalSink;
  logger: Logger;
  retry: RetryPolicy;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  random(): number;
  now(): number;
}

export interface AttemptInput {
  candidate: RouteCandidate;
  apiKey: string;
}

export interface DispatchResult<T> {
  value: T;
  candidate: RouteCandidate;
  /** Upstream calls made, retries and fallbacks included. */
  attempts: number;
}

/** Exponential backoff with full jitter, or the upstream's Retry-After when it is sooner than the cap. */
export function retryDelayMs(attempt: number, error: UpstreamError, policy: RetryPolicy, random: () => number): number {
  if (error.retryAfterMs !== undefined) return Math.min(error.retryAfterMs, policy.maxRetryAfterMs);
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export function sleepWithSignal(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new ClientAbortedError());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ClientAbortedError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function toClientError(error: UpstreamError, attempts: number): HttpError {
  const code = error.status === 504 ? 'upstream_timeout' : 'upstream_error';
  return new HttpError(code, error.message, {
    openaiType: error.status === 504 ? 'timeout_error' : 'upstream_error',
    details: { upstream_code: error.code, attempts },
    headers: { 'x-switchyard-attempts': String(attempts) },
  });
}

/**
 * Runs `attempt` over the plan's candidates: retries a candidate on retryable
 * failures (429, 5xx, timeouts) with backoff, honouring Retry-After up to a
 * cap, then falls back to the next candidate. A non-retryable 4xx from the
 * upstream is the caller's fault and is answered as is, without fallback.
 * Candidates whose provider has no key are skipped.
 */
export async function dispatch<T>(
  plan: RoutePlan,
  tenantId: string,
  requestId: string,
  clientSignal: AbortSignal,
  deps: DispatchDependencies,
  attempt: (input: AttemptInput) => Promise<T>,
): Promise<DispatchResult<T>> {
  let attempts = 0;
  let lastError: UpstreamError | undefined;
  let keyless = 0;
  for (const candidate of plan.candidates) {
    const key = await deps.keys.getProviderKey(tenantId, candidate.provider.keyName, { requestId });
    if (!key) {
      keyless += 1;
      continue;
    }
    for (let retry = 0; retry <= candidate.provider.maxRetries; retry++) {
      if (clientSignal.aborted) throw new ClientAbortedError();
      attempts += 1;
      const started = deps.now();
      try {
        const value = await attempt({ candidate, apiKey: key.secret });
        deps.health.recordSuccess(candidate.provider.id, candidate.model.upstreamModel, deps.now() - started);
        return { value, candidate, attempts };
      } catch (error) {
        if (error instanceof ClientAbortedError || clientSignal.aborted) throw new ClientAbortedError();
        if (!(error instanceof UpstreamFailureError)) throw error;
        const upstream = error.upstream;
        lastError = upstream;
        deps.logger.info('upstream_attempt_failed', {
          request_id: requestId,
          provider: candidate.provider.slug,
          model: candidate.model.upstreamModel,
          status: upstream.status,
          code: upstream.code,
          retryable: upstream.retryable,
        });
        if (upstream.status === 400) {
          // The upstream understood and refused the request itself: the caller's to fix.
          throw new HttpError('validation_failed', upstream.message, { openaiType: upstream.type, param: null });
        }
        deps.health.recordFailure(
          candidate.provider.id,
          candidate.model.upstreamModel,
          deps.now() - started,
          upstream.code,
        );
        deps.signals?.record(signalOf(tenantId, plan, candidate, upstream.status === 504 ? 'timeout' : 'error'));
        if (!upstream.retryable || retry === candidate.provider.maxRetries) break;
        if (upstream.retryAfterMs !== undefined && upstream.retryAfterMs > deps.retry.maxRetryAfterMs) break;
        await deps.sleep(retryDelayMs(retry, upstream, deps.retry, deps.random), clientSignal);
      }
    }
  }
  if (!lastError) {
    throw new HttpError(
      'provider_unavailable',
      keyless > 0
        ? 'no provider serving this model has an API key configured'
        : 'no provider is available for this model',
    );
  }
  throw toClientError(lastError, attempts);
}
