// Anthropic error bodies: {type:'error', error:{type, message}}; the type says more than
// the status (529 overloaded_error), and also classifies `event: error` inside a stream.
import type { UpstreamError } from '../types.ts';
import { parseRetryAfterMs } from '../retry-after.ts';
import { classifyUpstreamError, type UpstreamErrorKind } from '../upstream-errors.ts';
import { ANTHROPIC_PROVIDER_NAME } from './api.ts';
import { anthropicErrorBodySchema } from './wire.ts';

const KIND_BY_TYPE: Readonly<Record<string, UpstreamErrorKind>> = {
  invalid_request_error: 'invalid_request',
  request_too_large: 'invalid_request',
  authentication_error: 'auth',
  permission_error: 'auth',
  not_found_error: 'not_found',
  rate_limit_error: 'rate_limit',
  overloaded_error: 'overloaded',
  api_error: 'server',
  timeout_error: 'timeout',
};

export function parseAnthropicError(status: number, bodyText: string, headers: Headers, nowMs: number): UpstreamError {
  const error = readError(safeJson(bodyText));
  return classifyUpstreamError({
    provider: ANTHROPIC_PROVIDER_NAME,
    status,
    message: error?.message,
    retryAfterMs: parseRetryAfterMs(headers, nowMs),
    kind: error === undefined ? undefined : KIND_BY_TYPE[error.type],
  });
}

/** `event: error` data inside a 200 stream. */
export function anthropicErrorFromObject(data: unknown): UpstreamError {
  const error = readError(data);
  return classifyUpstreamError({
    provider: ANTHROPIC_PROVIDER_NAME,
    message: error?.message,
    kind: (error === undefined ? undefined : KIND_BY_TYPE[error.type]) ?? 'server',
  });
}

function readError(data: unknown): { type: string; message?: string } | undefined {
  const parsed = anthropicErrorBodySchema.safeParse(data);
  return parsed.success ? parsed.data.error : undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
