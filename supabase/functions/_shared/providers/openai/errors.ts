// OpenAI-format error bodies: {error:{message,type,code,param}} (Azure: code may be "429").
import type { UpstreamError } from '../types.ts';
import { isJsonObject } from '../message-content.ts';
import { parseRetryAfterMs } from '../retry-after.ts';
import { classifyUpstreamError, type UpstreamErrorKind } from '../upstream-errors.ts';
import { openAIErrorBodySchema } from './wire.ts';

export function parseOpenAIError(
  provider: string,
  status: number,
  bodyText: string,
  headers: Headers,
  nowMs: number,
): UpstreamError {
  const error = readErrorObject(bodyText);
  return classifyUpstreamError({
    provider,
    status,
    message: error?.message,
    code: error?.code,
    retryAfterMs: parseRetryAfterMs(headers, nowMs),
    kind: kindFromBody(status, error?.code, error?.type),
  });
}

/** An error object sent inside a stream (`data: {"error":{…}}`); undefined for normal chunks. */
export function openAIErrorFromObject(data: unknown, provider: string): UpstreamError | undefined {
  if (!isJsonObject(data) || !('error' in data)) return undefined;
  const parsed = openAIErrorBodySchema.safeParse(data);
  const error = parsed.success ? parsed.data.error : undefined;
  const code = error?.code === null || error?.code === undefined ? undefined : String(error.code);
  const type = error?.type ?? undefined;
  const kind: UpstreamErrorKind = code === 'rate_limit_exceeded' || type === 'rate_limit_error'
    ? 'rate_limit'
    : type === 'invalid_request_error'
    ? 'invalid_request'
    : 'server';
  return classifyUpstreamError({ provider, message: error?.message, code, kind });
}

interface ErrorFields {
  message?: string;
  code?: string;
  type?: string;
}

function readErrorObject(bodyText: string): ErrorFields | undefined {
  let json: unknown;
  try {
    json = JSON.parse(bodyText);
  } catch {
    return undefined; // HTML from a proxy, or empty: the status alone decides
  }
  const parsed = openAIErrorBodySchema.safeParse(json);
  if (!parsed.success) return undefined;
  const { message, code, type } = parsed.data.error;
  return {
    message,
    code: code === null || code === undefined ? undefined : String(code),
    type: type ?? undefined,
  };
}

function kindFromBody(
  status: number,
  code: string | undefined,
  type: string | undefined,
): UpstreamErrorKind | undefined {
  // a 429 for an exhausted billing quota will not clear by retrying
  if (status === 429 && (code === 'insufficient_quota' || type === 'insufficient_quota')) return 'quota';
  return undefined;
}
