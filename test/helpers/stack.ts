import { importJWK, type JWTPayload, SignJWT } from 'jose';
import postgres from 'postgres';
import { inject } from 'vitest';
import type { SigningKey } from '../fakes/jwks-server.ts';

export const stack = inject('stack');

/** Calls a function of the running stack: `call('/ops/tenants', {...})`. */
export function call(pathname: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${stack.functionsUrl}${pathname}`, init);
}

/** Headers a client sends: the project key in `apikey`, the caller's credential as bearer. */
export function headersFor(bearer: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return {
    apikey: stack.anonKey,
    'content-type': 'application/json',
    ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    ...extra,
  };
}

export const serviceHeaders = (extra: Record<string, string> = {}) => headersFor(stack.serviceRoleKey, extra);

export interface UserTokenOptions {
  algorithm?: 'HS256' | 'ES256' | 'RS256';
  signingKey?: SigningKey;
  expiresInSeconds?: number;
  notBeforeSeconds?: number;
  audience?: string;
  claims?: JWTPayload;
  secret?: string;
}

/** A Supabase user access token for `userId`, HS256 by default or ES256/RS256 from the fake JWKS. */
export async function signUserToken(userId: string, options: UserTokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const builder = new SignJWT({ role: 'authenticated', ...options.claims })
    .setSubject(userId)
    .setAudience(options.audience ?? 'authenticated')
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (options.expiresInSeconds ?? 600));
  if (options.notBeforeSeconds !== undefined) builder.setNotBefore(now + options.notBeforeSeconds);
  const algorithm = options.algorithm ?? 'HS256';
  if (algorithm === 'HS256') {
    return await builder.setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(options.secret ?? stack.jwtSecret));
  }
  const key = options.signingKey ?? stack.jwksSigningKeys.find((candidate) => candidate.alg === algorithm);
  if (!key) throw new Error(`no ${algorithm} key in the fake JWKS`);
  return await builder.setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .sign(await importJWK(key.privateJwk, key.alg));
}

/** A direct connection to the stack's database, for fixtures and row counts. */
export function connectDatabase() {
  return postgres(stack.dbUrl, { max: 2, onnotice: () => {} });
}
export type TestDatabase = ReturnType<typeof connectDatabase>;

export async function createUser(sql: TestDatabase, label = 'user'): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into auth.users (email) values (${`${label}.${crypto.randomUUID()}@example.test`}) returning id`;
  return row.id;
}

/** Creates a tenant through the ops API as the service role; returns its id. */
export async function createTenant(name = 'Test tenant'): Promise<string> {
  const response = await call('/ops/tenants', {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ name }),
  });
  if (response.status !== 201) {
    throw new Error(`creating a tenant answered ${response.status}: ${await response.text()}`);
  }
  return ((await response.json()) as { id: string }).id;
}

export async function addMember(
  sql: TestDatabase,
  tenantId: string,
  userId: string,
  role: 'member' | 'admin' | 'operator',
) {
  await sql`insert into public.memberships (tenant_id, user_id, role) values (${tenantId}, ${userId}, ${role})`;
}

/**
 * Row counts of tenant-scoped tables for the given tenants, to show a refused
 * request changed nothing. Scoped, because other test files write in parallel.
 */
export async function countTenantRows(
  sql: TestDatabase,
  tables: readonly string[],
  tenantIds: readonly string[],
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const column = table === 'public.tenants' ? 'id' : 'tenant_id';
    const [row] = await sql.unsafe<{ count: number }[]>(
      `select count(*)::int as count from ${table} where ${column} = any($1::uuid[])`,
      [tenantIds as string[]],
    );
    counts[table] = row.count;
  }
  return counts;
}

/** Number of tenants with this exact name (names in tests carry a random suffix). */
export async function countTenantsNamed(sql: TestDatabase, name: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`select count(*)::int as count from public.tenants where name = ${name}`;
  return row.count;
}
