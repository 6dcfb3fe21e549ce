import type { ConsoleConfig } from './config.ts';

/** A refusal or failure of an endpoint, carrying the endpoint's own message (the error contract). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiClient {
  get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T>;
  send<T>(method: 'POST' | 'DELETE', path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
}

/** `?a=1&b=2` without the undefined and empty entries. */
function queryString(query: Record<string, string | number | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.message) {
      return new ApiError(response.status, body.error.code ?? 'error', body.error.message);
    }
  } catch {
    // Not the error contract (a proxy's page, say): report the status.
  }
  return new ApiError(response.status, 'http_error', `the endpoint answered ${response.status} ${response.statusText}`);
}

/**
 * Calls the project's functions as the signed-in caller: `apikey` is the
 * project key, the bearer the caller's token, so RLS and each endpoint's
 * roles decide what comes back.
 */
export function createApiClient(config: ConsoleConfig, token: () => Promise<string>): ApiClient {
  async function request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    let response: Response;
    try {
      response = await fetch(`${config.functionsUrl}${path}`, {
        method,
        headers: {
          apikey: config.anonKey,
          authorization: `Bearer ${await token()}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(
        0,
        'network_error',
        `cannot reach ${config.functionsUrl}: is the project up, and is this console's origin (${location.origin}) in its ALLOWED_ORIGINS?`,
      );
    }
    if (!response.ok) throw await errorOf(response);
    return (await response.json()) as T;
  }
  return {
    get: (path, query) => request('GET', `${path}${queryString(query)}`),
    send: (method, path, body, headers) => request(method, path, body, headers),
  };
}

/** GET /readiness/ready answers 503 with the same body when not ready: both are a verdict, not an error. */
export async function fetchReadiness(config: ConsoleConfig): Promise<ReadinessReport> {
  let response: Response;
  try {
    response = await fetch(`${config.functionsUrl}/readiness/ready`);
  } catch {
    throw new ApiError(0, 'network_error', `cannot reach ${config.functionsUrl}/readiness/ready`);
  }
  if (response.status !== 200 && response.status !== 503) throw await errorOf(response);
  return (await response.json()) as ReadinessReport;
}

export interface ReadinessCheck {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  detail?: string;
  duration_ms?: number;
  optional?: boolean;
}

export interface ReadinessReport {
  status: 'ready' | 'not_ready';
  checks: ReadinessCheck[];
}
