import { readFile } from 'node:fs/promises';
import { createClient, FunctionsFetchError, FunctionsHttpError, type SupabaseClient } from '@supabase/supabase-js';
import { importJWK, importPKCS8, type JWK, SignJWT } from 'jose';
import OpenAI from 'openai';
import postgres from 'postgres';
import type { SmokeTarget } from './target.ts';

/** A failed expectation inside a check: its message is the FAIL line's reason. */
export class CheckFailure extends Error {}
/** A capability that is not deployed: the check answers SKIP with this reason. */
export class CheckSkip extends Error {}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

/** The error code of our error contract or OpenAI's shape, if the body has one. */
export function errorCode(body: unknown): string | undefined {
  const error = (body as { error?: { code?: unknown } } | null)?.error;
  return typeof error?.code === 'string' ? error.code : undefined;
}

/** What a smoke run shares between checks: clients, the run's own tenant, memoized probes. */
export class SmokeContext {
  readonly runId = `smoke-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 6)}`;
  readonly supabase: SupabaseClient;
  #memo = new Map<string, Promise<unknown>>();
  #sql: ReturnType<typeof postgres> | undefined;

  constructor(readonly target: SmokeTarget, readonly timeoutMs: number) {
    this.supabase = createClient(target.apiUrl, target.anonKey ?? 'missing-anon-key', {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    });
  }

  /** Runs `work` once per run and shares its promise (a tenant, a key, a probe). */
  once<T>(key: string, work: () => Promise<T>): Promise<T> {
    let promise = this.#memo.get(key) as Promise<T> | undefined;
    if (!promise) {
      promise = work();
      this.#memo.set(key, promise);
    }
    return promise;
  }

  requireAnonKey(): string {
    if (!this.target.anonKey) throw new CheckFailure('no anon key: pass --anon-key or set ANON_KEY');
    return this.target.anonKey;
  }

  requireServiceKey(): string {
    if (!this.target.serviceRoleKey) {
      throw new CheckFailure('no service role key: pass --service-key or set SERVICE_ROLE_KEY');
    }
    return this.target.serviceRoleKey;
  }

  /** A call through supabase-js `functions.invoke`, the client apps' way; never throws on an HTTP status. */
  async invoke(
    path: string,
    options: { method?: 'GET' | 'POST' | 'DELETE'; body?: unknown; bearer?: string; apikey?: string } = {},
  ): Promise<HttpAnswer> {
    // supabase-js adds the anon key as apikey when none is given; rawFetch sends none.
    const headers: Record<string, string> = { apikey: options.apikey ?? this.requireAnonKey() };
    // supabase-js sends the anon key as bearer unless told otherwise; an empty value sends none.
    headers.Authorization = options.bearer ? `Bearer ${options.bearer}` : '';
    const { data, response, error } = await this.supabase.functions.invoke(path, {
      method: options.method ?? 'GET',
      body: options.body as Record<string, unknown> | undefined,
      headers,
      timeout: this.timeoutMs,
    });
    if (error instanceof FunctionsFetchError || !response) {
      const cause = (error as { context?: { cause?: { code?: string; message?: string }; message?: string } } | null)
        ?.context;
      const reason = cause?.cause?.code ?? cause?.cause?.message ?? cause?.message ?? error?.message ?? 'no response';
      throw new CheckFailure(`cannot reach ${this.target.functionsUrl}/${path}: ${reason}`);
    }
    if (error instanceof FunctionsHttpError) {
      // On an error status supabase-js leaves the body unread, on the Response in error.context.
      const source = error.context as Response;
      const text = await source.text().catch(() => '');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: kept as text.
      }
      return { status: source.status, headers: source.headers, body, text };
    }
    // On success supabase-js has parsed the body already (JSON or text).
    return {
      status: response.status,
      headers: response.headers,
      body: data,
      text: typeof data === 'string' ? data : JSON.stringify(data),
    };
  }

  /** A plain fetch with exactly the given headers (supabase-js would add an apikey). */
  async rawFetch(path: string, headers: Record<string, string>): Promise<HttpAnswer> {
    let response: Response;
    try {
      response = await fetch(`${this.target.functionsUrl}/${path}`, {
        headers,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const code = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new CheckFailure(`cannot reach ${this.target.functionsUrl}/${path}: ${code}`);
    }
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: kept as text.
    }
    return { status: response.status, headers: response.headers, body, text };
  }

  /** Asserts an HTTP status, with the error code in the reason when it differs. */
  expectStatus(answer: HttpAnswer, expected: number, what: string): void {
    if (answer.status !== expected) {
      const code = errorCode(answer.body);
      throw new CheckFailure(`${what}: expected ${expected}, got ${answer.status}${code ? ` ${code}` : ''}`);
    }
  }

  /**
   * Whether a function is deployed: a missing one answers 404 without our
   * `route_not_found` (locally `function_not_found`, on Supabase `NOT_FOUND`).
   */
  deployed(functionName: string): Promise<boolean> {
    return this.once(`deployed:${functionName}`, async () => {
      const answer = await this.invoke(functionName);
      return !(answer.status === 404 && errorCode(answer.body) !== 'route_not_found');
    });
  }

  async requireDeployed(functionName: string, issue: string): Promise<void> {
    if (!(await this.deployed(functionName))) {
      throw new CheckSkip(`function ${functionName} is not deployed (${issue})`);
    }
  }

  /** The run's own tenant, created through the ops API as the service role. */
  tenant(label = 'main'): Promise<string> {
    return this.once(`tenant:${label}`, async () => {
      const answer = await this.invoke('ops/tenants', {
        method: 'POST',
        bearer: this.requireServiceKey(),
        body: { name: `${this.runId} ${label}` },
      });
      this.expectStatus(answer, 201, 'creating the smoke tenant');
      return (answer.body as { id: string }).id;
    });
  }

  /** A tenant API key (`sy_…`) for the run's tenant; shown once by the ops API, kept in memory only. */
  apiKey(label = 'main'): Promise<{ id: string; key: string; tenantId: string }> {
    return this.once(`api-key:${label}`, async () => {
      const tenantId = await this.tenant(label);
      const answer = await this.invoke(`ops/tenants/${tenantId}/api-keys`, {
        method: 'POST',
        bearer: this.requireServiceKey(),
        body: { name: `${this.runId} ${label}` },
      });
      this.expectStatus(answer, 201, 'creating a tenant API key');
      const body = answer.body as { id: string; key: string };
      return { id: body.id, key: body.key, tenantId };
    });
  }

  /** The official OpenAI SDK pointed at the router, as client apps use it. */
  openai(apiKey: string): OpenAI {
    return new OpenAI({
      apiKey,
      baseURL: `${this.target.functionsUrl}/llm-router/v1`,
      defaultHeaders: { apikey: this.requireAnonKey() },
      maxRetries: 0,
      timeout: this.timeoutMs,
    });
  }

  /** A user access token: HS256 with the JWT secret, or ES256/RS256 with the test key and its kid. */
  async userToken(userId: string, via: 'secret' | 'test-key', secret?: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const builder = new SignJWT({ role: 'authenticated' })
      .setSubject(userId)
      .setAudience('authenticated')
      .setIssuedAt(now - 5)
      .setExpirationTime(now + 300);
    if (via === 'secret') {
      const key = secret ?? this.target.jwtSecret;
      if (!key) throw new CheckSkip('no JWT secret (--jwt-secret or JWT_SECRET) to sign an HS256 user token');
      return await builder.setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(key));
    }
    const file = this.target.testKeyFile;
    if (!file) {
      throw new CheckSkip('no --test-key (a private JWK whose kid is in the project JWKS) to sign an ES256 token');
    }
    const text = await readFile(file, 'utf8').catch(() => {
      throw new CheckFailure(`cannot read --test-key ${file}`);
    });
    const jwk = JSON.parse(text) as JWK;
    if (!jwk.kid || !jwk.alg) throw new CheckFailure('--test-key must be a JWK with kid and alg');
    const key = text.includes('BEGIN PRIVATE KEY') ? await importPKCS8(text, jwk.alg) : await importJWK(jwk, jwk.alg);
    return await builder.setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, typ: 'JWT' }).sign(key);
  }

  /** Direct SQL, only where the target's database URL is known. */
  sql(): ReturnType<typeof postgres> {
    if (!this.target.databaseUrl) {
      throw new CheckSkip('needs direct database access (--db-url); not given for this target');
    }
    this.#sql ??= postgres(this.target.databaseUrl, { max: 2, onnotice: () => {}, connect_timeout: 5 });
    return this.#sql;
  }

  async close(): Promise<void> {
    await this.#sql?.end({ timeout: 2 });
  }
}
