import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from './logger.ts';

/**
 * The closed list of error codes the API answers with, and the HTTP status of
 * each. Adding a code means adding its status here; nothing else renders
 * errors.
 */
export const errorStatus = {
  invalid_json: 400,
  validation_failed: 400,
  context_length_exceeded: 400,
  unsupported_parameter: 400,
  // The client disconnected; nginx's 499 is not a standard status, and no one reads this answer.
  client_closed_request: 400,
  unauthorized: 401,
  budget_exceeded: 402,
  forbidden: 403,
  origin_not_allowed: 403,
  address_not_allowed: 403,
  not_found: 404,
  route_not_found: 404,
  model_not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  upstream_error: 502,
  service_unavailable: 503,
  provider_unavailable: 503,
  kms_unavailable: 503,
  storage_unavailable: 503,
  database_unavailable: 503,
  upstream_timeout: 504,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;

export interface HttpErrorOptions {
  details?: unknown;
  /** OpenAI error `param`: the request field at fault. */
  param?: string | null;
  /** OpenAI error `type`, when it differs from the default for the status. */
  openaiType?: string;
  headers?: Record<string, string>;
  cause?: unknown;
}

/** An error that is safe to show the caller: code, message and details are public. */
export class HttpError extends Error {
  readonly code: ErrorCode;
  readonly status: ContentfulStatusCode;
  readonly details?: unknown;
  readonly param: string | null;
  readonly openaiType?: string;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, options: HttpErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'HttpError';
    this.code = code;
    this.status = errorStatus[code];
    this.details = options.details;
    this.param = options.param ?? null;
    this.openaiType = options.openaiType;
    this.headers = options.headers ?? {};
  }
}

export type ErrorFormat = 'standard' | 'openai' | 'anthropic';

/** OpenAI's `type` for a status, as its API sends them. */
function openaiTypeFor(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 402) return 'insufficient_quota';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'api_error';
  return 'invalid_request_error';
}

/** Anthropic's `error.type` for a status, as its API sends them (402 is its billing_error). */
export function anthropicTypeFor(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** The JSON body for an error in the given format. */
export function errorBody(error: HttpError, format: ErrorFormat): Record<string, unknown> {
  if (format === 'anthropic') {
    return { type: 'error', error: { type: anthropicTypeFor(error.status), message: error.message } };
  }
  if (format === 'openai') {
    return {
      error: {
        message: error.message,
        type: error.openaiType ?? openaiTypeFor(error.status),
        param: error.param,
        code: error.code,
      },
    };
  }
  return { error: { code: error.code, message: error.message, details: error.details ?? null } };
}

/**
 * The one error handler every function installs: renders HttpError as is,
 * and anything else as a logged 500 whose message says nothing of the cause.
 */
export function createErrorHandler(logger: Logger, format: ErrorFormat) {
  return function handleError(error: Error, c: Context): Response {
    const known = toHttpError(error);
    if (!known) {
      logger.error('unhandled_error', {
        request_id: c.get('requestId'),
        error_name: error.name,
        error_message: error.message,
        stack: error.stack,
      });
    } else if (known.status >= 500) {
      logger.warn('request_failed', { request_id: c.get('requestId'), code: known.code, message: known.message });
    }
    const httpError = known ?? new HttpError('internal_error', 'internal server error');
    for (const [name, value] of Object.entries(httpError.headers)) c.header(name, value);
    // A route that speaks another dialect (Anthropic Messages) says so with answerErrorsAs().
    const routeFormat = c.get('errorFormat') as ErrorFormat | undefined;
    return c.json(errorBody(httpError, routeFormat ?? format), httpError.status);
  };
}

/** Maps errors raised by the platform or the database to the contract, or undefined. */
function toHttpError(error: unknown): HttpError | undefined {
  if (error instanceof HttpError) return error;
  if (isDatabaseUnavailable(error)) {
    return new HttpError('database_unavailable', 'the database is unavailable; try again shortly', {
      cause: error,
      headers: { 'retry-after': '1' },
    });
  }
  return undefined;
}

/** Socket errors (Node and Deno names) and the postgres client's own connection codes. */
const connectionErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);
const connectionErrorNames = new Set(['ConnectionRefused', 'ConnectionReset', 'ConnectionAborted', 'BrokenPipe']);
/**
 * SQLSTATEs that say the server, not the statement, is the problem: class 08
 * (connection exception), 57P01-57P03 (terminated by an administrator, crash
 * shutdown, cannot connect now), 53300 (too many connections).
 */
const unavailableSqlStates = /^(08...|57P0[123]|53300)$/;

/**
 * Whether an error means the database could not be reached or dropped the
 * connection (answered as 503 database_unavailable with Retry-After), as
 * opposed to a statement that failed. Follows `cause` chains.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (connectionErrorCodes.has(code) || unavailableSqlStates.test(code))) return true;
    if (connectionErrorNames.has(current.name)) return true;
    current = current.cause;
  }
  return false;
}
