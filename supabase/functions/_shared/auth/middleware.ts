import { createMiddleware } from 'hono/factory';
import type { Config } from '../config.ts';
import type { AppDependencies } from '../dependencies.ts';
import { HttpError } from '../errors.ts';
import { isUuid } from '../validation.ts';
import type { AppEnv } from '../hono-env.ts';
import { constantTimeEqual, looksLikeTenantApiKey, sha256Hex } from './api-keys.ts';
import type { Caller } from './caller.ts';
import { createJwtVerifier, type JwtVerifier } from './jwt.ts';

export interface AuthenticateOptions {
  /** Caller kinds this route accepts; others get 403. Default: all. */
  allow?: readonly Caller['kind'][];
  /**
   * A tenant API key (`sy_…`, as `Authorization: Bearer` or `x-api-key`)
   * authenticates without the `apikey` project header. Safe: the project key
   * is public (it ships in every client), so it proves nothing; the tenant key
   * is the secret, and it is checked against the database either way. User
   * JWTs and service keys still need `apikey`. Default: off.
   */
  tenantKeyAlone?: boolean;
}

/** True when `apikey` is one of this project's keys (legacy JWT keys or the new sb_ keys). */
function isProjectKey(apikey: string, keys: Config['projectKeys']): boolean {
  const candidates = [keys.anonKey, keys.serviceRoleKey, ...keys.publishableKeys, ...keys.secretKeys];
  let match = false;
  for (const candidate of candidates) {
    if (candidate && constantTimeEqual(apikey, candidate)) match = true;
  }
  return match;
}

function bearerToken(header: string | undefined): string {
  if (!header) throw new HttpError('unauthorized', 'missing Authorization header');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new HttpError('unauthorized', 'Authorization header must be "Bearer <token>"');
  return match[1];
}

/**
 * The caller's token: `Authorization: Bearer`, or else `x-api-key` (what
 * Anthropic clients send) when it carries a tenant API key. Only tenant keys
 * are read from `x-api-key`: JWTs and service keys keep one way in.
 */
function credential(authorization: string | undefined, xApiKey: string | undefined): string {
  if (authorization === undefined && xApiKey !== undefined) {
    const key = xApiKey.trim();
    if (!looksLikeTenantApiKey(key)) throw new HttpError('unauthorized', 'x-api-key must be a tenant API key (sy_…)');
    return key;
  }
  return bearerToken(authorization);
}

/** Resolves a bearer token to a caller, or throws a 401 HttpError. */
async function resolveCaller(
  token: string,
  deps: Pick<AppDependencies, 'db' | 'config' | 'apiKeys'>,
  verifier: JwtVerifier,
): Promise<Caller> {
  if (looksLikeTenantApiKey(token)) {
    const cached = deps.apiKeys.get(token);
    if (cached) return cached;
    const keyHash = await sha256Hex(token);
    const [row] = await deps.db<{ api_key_id: string; tenant_id: string }[]>`
      select api_key_id, tenant_id from private.resolve_tenant_api_key(${keyHash})`;
    if (!row) throw new HttpError('unauthorized', 'API key is unknown or revoked');
    const caller = { kind: 'api_key' as const, tenantId: row.tenant_id, apiKeyId: row.api_key_id };
    deps.apiKeys.set(token, caller);
    return caller;
  }
  if (token.startsWith('sb_secret_')) {
    if (!deps.config.projectKeys.secretKeys.some((key) => constantTimeEqual(token, key))) {
      throw new HttpError('unauthorized', 'secret key is not a key of this project');
    }
    return { kind: 'service_role', via: 'secret_key' };
  }
  if (token.startsWith('sb_publishable_')) {
    throw new HttpError(
      'unauthorized',
      'a publishable key identifies the project, not a caller: send a user JWT or an API key',
    );
  }

  const claims = await verifier.verify(token);
  const role = claims.role;
  if (role === 'service_role') return { kind: 'service_role', via: 'jwt' };
  if (role === 'authenticated') {
    const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audience.includes('authenticated')) throw new HttpError('unauthorized', 'JWT claim "aud" is invalid');
    if (deps.config.jwt.issuer && claims.iss !== deps.config.jwt.issuer) {
      throw new HttpError('unauthorized', 'JWT claim "iss" is invalid');
    }
    if (!isUuid(claims.sub)) {
      throw new HttpError('unauthorized', 'JWT claim "sub" is invalid');
    }
    return { kind: 'user', userId: claims.sub, claims: { ...claims } };
  }
  if (role === 'anon') {
    throw new HttpError('unauthorized', 'the anon key cannot call this endpoint: send a user JWT or an API key');
  }
  throw new HttpError('unauthorized', 'JWT has no accepted role');
}

/**
 * Requires the `apikey` header to be a key of this project and
 * `Authorization: Bearer` to carry a user JWT, a tenant API key or a service
 * key (with `tenantKeyAlone`: a tenant key, there or in `x-api-key`, needs no
 * `apikey`); sets `c.var.caller`.
 */
export function authenticate(
  deps: Pick<AppDependencies, 'db' | 'config' | 'fetch' | 'apiKeys'>,
  options: AuthenticateOptions = {},
) {
  const verifier = createJwtVerifier(deps.config.jwt, deps.fetch);
  return createMiddleware<AppEnv>(async function authenticateCaller(c, next) {
    const apikey = c.req.header('apikey');
    if (!apikey && !options.tenantKeyAlone) throw new HttpError('unauthorized', 'missing apikey header');
    // A project key that is sent must be this project's, even where a tenant key alone would do.
    if (apikey && !isProjectKey(apikey, deps.config.projectKeys)) {
      throw new HttpError('unauthorized', 'apikey is not a key of this project');
    }
    const xApiKey = options.tenantKeyAlone ? c.req.header('x-api-key') : undefined;
    const token = credential(c.req.header('authorization'), xApiKey);
    if (!apikey && !looksLikeTenantApiKey(token)) {
      throw new HttpError('unauthorized', 'missing apikey header (only a tenant API key works without it)');
    }
    const caller = await resolveCaller(token, deps, verifier);
    if (options.allow && !options.allow.includes(caller.kind)) {
      throw new HttpError('forbidden', `this endpoint does not accept ${caller.kind.replace('_', ' ')} callers`);
    }
    c.set('caller', caller);
    await next();
  });
}
