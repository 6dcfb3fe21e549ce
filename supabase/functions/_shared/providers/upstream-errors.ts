// One status-to-error table for every provider. 401/403 become 502: the gateway's provider
// credentials are wrong, not the caller's, so the client must not see a 401.
import type { UpstreamError } from './types.ts';
import { sanitizeUpstreamMessage } from './sanitize.ts';

export type UpstreamErrorKind =
  | 'invalid_request'
  | 'auth'
  | 'not_found'
  | 'timeout'
  | 'rate_limit'
  | 'quota'
  | 'overloaded'
  | 'server'
  | 'other';

export interface UpstreamErrorDetails {
  provider: string; // human name used in messages: 'OpenAI', 'Anthropic'…
  /** Undefined for errors reported inside a 200 stream; `kind` then decides (default server). */
  status?: number;
  /** The upstream's own error message (raw; sanitized here). */
  message?: string;
  /** The upstream's own error code, forwarded for 400s when it is a plain identifier. */
  code?: string;
  retryAfterMs?: number;
  /** Set when the body says more than the status (Gemini's 400 API_KEY_INVALID, OpenAI's insufficient_quota). */
  kind?: UpstreamErrorKind;
}

function kindFromStatus(status: number): UpstreamErrorKind {
  if (status === 401 || status === 403) return 'auth';
  if (status === 404) return 'not_found';
  if (status === 408) return 'timeout';
  if (status === 429) return 'rate_limit';
  if (status === 529) return 'overloaded';
  if (status === 400 || status === 413 || status === 422) return 'invalid_request';
  if (status === 409 || status >= 500) return 'server';
  return 'other';
}

export function classifyUpstreamError(details: UpstreamErrorDetails): UpstreamError {
  const kind = details.kind ?? (details.status === undefined ? 'server' : kindFromStatus(details.status));
  const excerpt = details.message === undefined ? '' : sanitizeUpstreamMessage(details.message);
  const httpNote = details.status === undefined ? ' (in stream)' : ` (HTTP ${details.status})`;
  const described = (summary: string): string =>
    excerpt === '' ? `${summary}${httpNote}` : `${summary}${httpNote}: ${excerpt}`;
  const { provider } = details;
  switch (kind) {
    case 'invalid_request':
      return {
        status: 400,
        type: 'invalid_request_error',
        code: safeCode(details.code) ?? 'invalid_request',
        message: described(`${provider} rejected the request`),
        retryable: false,
      };
    case 'auth':
      // the upstream's text is dropped on purpose: auth errors tend to quote the key
      return upstream502('upstream_auth_failed', `${provider} rejected the gateway's credentials${httpNote}`, false);
    case 'not_found':
      return upstream502('upstream_model_not_found', described(`${provider} does not know this model or route`), false);
    case 'timeout':
      return {
        status: 504,
        type: 'timeout_error',
        code: 'upstream_timeout',
        message: described(`${provider} timed out`),
        retryable: true,
      };
    case 'rate_limit':
      return {
        status: 429,
        type: 'rate_limit_error',
        code: 'upstream_rate_limited',
        message: described(`${provider} is rate limiting the gateway`),
        retryable: true,
        ...(details.retryAfterMs === undefined ? {} : { retryAfterMs: details.retryAfterMs }),
      };
    case 'quota':
      return upstream502(
        'upstream_quota_exhausted',
        described(`${provider} quota for the gateway is exhausted`),
        false,
      );
    case 'overloaded':
      return withRetryAfter(upstream502('upstream_overloaded', described(`${provider} is overloaded`), true), details);
    case 'server':
      return withRetryAfter(upstream502('upstream_unavailable', described(`${provider} failed`), true), details);
    case 'other':
      return upstream502('upstream_error', described(`${provider} returned an unexpected error`), false);
  }
}

function upstream502(code: string, message: string, retryable: boolean): UpstreamError {
  return { status: 502, type: 'upstream_error', code, message, retryable };
}

function withRetryAfter(error: UpstreamError, details: UpstreamErrorDetails): UpstreamError {
  return details.retryAfterMs === undefined ? error : { ...error, retryAfterMs: details.retryAfterMs };
}

function safeCode(code: string | undefined): string | undefined {
  return code !== undefined && /^[a-z][a-z0-9_]{0,63}$/.test(code) ? code : undefined;
}

/** fetch threw: an AbortSignal.timeout fired (504) or the connection failed (502). */
export function upstreamErrorFromFetchFailure(error: unknown, provider = 'The upstream provider'): UpstreamError {
  const name = error instanceof Error || error instanceof DOMException ? error.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return {
      status: 504,
      type: 'timeout_error',
      code: 'upstream_timeout',
      message: `${provider} did not answer in time`,
      retryable: true,
    };
  }
  return upstream502('upstream_unreachable', `${provider} could not be reached`, true);
}

/** The upstream stream ended before its end marker (socket cut, truncated body). */
export function streamInterruptedError(provider: string): UpstreamError {
  return upstream502('upstream_stream_interrupted', `${provider} ended the stream before it was complete`, true);
}

/** A 2xx body that is not the provider's documented shape. */
export function malformedResponseError(provider: string, detail: string): UpstreamError {
  return upstream502(
    'upstream_bad_response',
    `${provider} returned an unexpected response: ${sanitizeUpstreamMessage(detail)}`,
    false,
  );
}
