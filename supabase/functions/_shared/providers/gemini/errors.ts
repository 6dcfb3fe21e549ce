// Gemini (Google RPC) error bodies: {error:{code,message,status,details}}. A bad key is a
// 400 INVALID_ARGUMENT with reason API_KEY_INVALID, so the body decides, not the status.
import type { UpstreamError } from '../types.ts';
import { isJsonObject } from '../message-content.ts';
import { parseDurationMs, parseRetryAfterMs } from '../retry-after.ts';
import { classifyUpstreamError, type UpstreamErrorKind } from '../upstream-errors.ts';
import { GEMINI_PROVIDER_NAME } from './api.ts';
import { geminiErrorBodySchema } from './wire.ts';

interface GeminiErrorFields {
  message?: string;
  status?: string;
  details: Array<Record<string, unknown>>;
}

export function parseGeminiError(status: number, bodyText: string, headers: Headers, nowMs: number): UpstreamError {
  const error = readError(safeJson(bodyText));
  return classifyUpstreamError({
    provider: GEMINI_PROVIDER_NAME,
    status,
    message: error?.message,
    retryAfterMs: parseRetryAfterMs(headers, nowMs) ?? (error ? retryDelayMs(error) : undefined),
    kind: error ? kindFromBody(error) : undefined,
  });
}

/** `data: {"error":{…}}` inside a stream. */
export function geminiErrorFromObject(data: unknown): UpstreamError {
  const error = readError(data);
  return classifyUpstreamError({
    provider: GEMINI_PROVIDER_NAME,
    message: error?.message,
    kind: (error ? kindFromBody(error) : undefined) ?? 'server',
  });
}

const KIND_BY_STATUS: Readonly<Record<string, UpstreamErrorKind>> = {
  INVALID_ARGUMENT: 'invalid_request',
  UNAUTHENTICATED: 'auth',
  PERMISSION_DENIED: 'auth',
  NOT_FOUND: 'not_found',
  RESOURCE_EXHAUSTED: 'rate_limit',
  DEADLINE_EXCEEDED: 'timeout',
  INTERNAL: 'server',
  UNAVAILABLE: 'server',
  // billing or region not enabled for the gateway's project: not the caller's fault
  FAILED_PRECONDITION: 'other',
};

function kindFromBody(error: GeminiErrorFields): UpstreamErrorKind | undefined {
  const reasons = error.details.map((d) => d.reason).filter((r): r is string => typeof r === 'string');
  if (reasons.includes('API_KEY_INVALID') || /api key not valid/i.test(error.message ?? '')) return 'auth';
  if (error.status === 'RESOURCE_EXHAUSTED' && dailyQuotaExceeded(error)) return 'quota';
  return error.status === undefined ? undefined : KIND_BY_STATUS[error.status];
}

/** A per-day quota will not clear within any retry window. */
function dailyQuotaExceeded(error: GeminiErrorFields): boolean {
  return error.details.some((detail) => {
    const violations = detail.violations;
    return Array.isArray(violations) &&
      violations.some((v) => isJsonObject(v) && typeof v.quotaId === 'string' && /PerDay/i.test(v.quotaId));
  });
}

/** google.rpc.RetryInfo carries the wait as a duration string ("34s"). */
function retryDelayMs(error: GeminiErrorFields): number | undefined {
  for (const detail of error.details) {
    if (typeof detail.retryDelay === 'string') return parseDurationMs(detail.retryDelay);
  }
  return undefined;
}

function readError(data: unknown): GeminiErrorFields | undefined {
  const parsed = geminiErrorBodySchema.safeParse(data);
  if (!parsed.success) return undefined;
  const { message, status, details } = parsed.data.error;
  return { message, status, details: details ?? [] };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
