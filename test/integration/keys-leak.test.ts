import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../scripts/lib/run.ts';
import {
  addMember,
  call,
  connectDatabase,
  createTenant,
  createUser,
  headersFor,
  serviceHeaders,
  signUserToken,
  stack,
} from '../helpers/stack.ts';
import { inProcessKeysApp, inProcessResolver } from '../helpers/vault.ts';

// The leak test: random secrets go in through every keys endpoint and error
// path, and must then appear nowhere: not in a full dump of the database, not
// in the functions' logs (nor the in-process apps' logs), not in any response.
// The secrets avoid the prefixes the logger redacts (sk-, sy_, …), so the
// test cannot pass because redaction hid a leak.

const sql = connectDatabase();
afterAll(() => sql.end());

const newSecret = () => `Lk7${randomBytes(27).toString('base64url')}`;
const secrets: string[] = [];
const responses: string[] = [];
const requestIds: string[] = [];
const inProcessLogs: string[] = [];
let tenant: string;
let otherTenant: string;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  tenant = await createTenant('Leak tenant');
  otherTenant = await createTenant('Leak other tenant');
  const admin = await createUser(sql, 'leak-admin');
  const member = await createUser(sql, 'leak-member');
  const outsider = await createUser(sql, 'leak-outsider');
  await addMember(sql, tenant, admin, 'admin');
  await addMember(sql, tenant, member, 'member');
  await addMember(sql, otherTenant, outsider, 'admin');
  tokens.admin = await signUserToken(admin);
  tokens.member = await signUserToken(member);
  tokens.outsider = await signUserToken(outsider);
});

/** Every form a secret could leak in: as is, hex, and base64 (standard and URL-safe) at any byte alignment. */
function encodedForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = new Set([secret, bytes.toString('hex'), bytes.toString('hex').toUpperCase()]);
  for (let shift = 0; shift < 3; shift++) {
    const shifted = Buffer.concat([Buffer.alloc(shift), bytes]);
    for (const encoding of ['base64', 'base64url'] as const) {
      const encoded = shifted.toString(encoding).replace(/=+$/, '');
      // Drop the characters that also depend on the bytes before and after.
      forms.add(encoded.slice(shift === 0 ? 0 : 4, -4));
    }
  }
  return [...forms];
}

type Caller = 'service' | 'admin' | 'member' | 'outsider' | 'none' | 'anon';

async function send(
  method: string,
  pathname: string,
  caller: Caller,
  body?: unknown,
  extraHeaders: Record<string, string> = {},
) {
  const requestId = `leak-${crypto.randomUUID()}`;
  requestIds.push(requestId);
  const bearer = caller === 'service'
    ? stack.serviceRoleKey
    : caller === 'anon'
    ? stack.anonKey
    : caller === 'none'
    ? undefined
    : tokens[caller];
  const response = await call(`/keys${pathname}`, {
    method,
    headers: headersFor(bearer, { 'x-request-id': requestId, ...extraHeaders }),
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  // What came back only (the request line may carry the secret the test sent).
  responses.push(`${response.status} ${JSON.stringify([...response.headers])} ${text}`);
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** pg_dump when its major version can dump the server; else every user table as JSON rows. */
async function dumpDatabase(): Promise<{ how: string; text: string }> {
  const [{ server_version_num }] = await sql<{ server_version_num: string }[]>`show server_version_num`;
  const serverMajor = Math.floor(Number(server_version_num) / 10_000);
  const version = await runCommand('pg_dump', ['--version']).catch(() => undefined);
  const dumpMajor = Number(/(\d+)(?:\.\d+)?/.exec(version?.stdout ?? '')?.[1] ?? 0);
  if (version?.code === 0 && dumpMajor >= serverMajor) {
    const dump = await runCommand('pg_dump', ['--no-owner', '--dbname', stack.dbUrl]);
    if (dump.code !== 0) throw new Error(`pg_dump failed: ${dump.stderr}`);
    return { how: `pg_dump ${dumpMajor} (server ${serverMajor})`, text: dump.stdout };
  }
  const tables = await sql<{ name: string }[]>`
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
    order by 1`;
  const lines: string[] = [];
  for (const { name } of tables) {
    const rows = await sql.unsafe<{ row: string }[]>(`select row_to_json(t)::text as row from ${name} t`);
    for (const { row } of rows) lines.push(`${name} ${row}`);
  }
  const why = version?.code === 0 ? `pg_dump ${dumpMajor} cannot dump server ${serverMajor}` : 'no pg_dump';
  return { how: `SQL text dump of ${tables.length} tables (${why})`, text: lines.join('\n') };
}

async function functionsLogUntil(marker: string): Promise<string> {
  // The functions' output reaches the file through a pipe: wait (bounded) for the last request's line.
  for (let attempt = 0; attempt < 150; attempt++) {
    const log = await readFile(stack.functionsLogFile, 'utf8');
    if (log.includes(marker)) return log;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the functions log never showed ${marker}`);
}

describe('no plaintext anywhere', () => {
  it('stores, rotates, disables, decrypts and refuses without the secret leaking into dump, logs or responses', async ({ annotate }) => {
    const first = newSecret();
    const second = newSecret();
    const third = newSecret();
    const refused = newSecret();
    secrets.push(first, second, third, refused);
    const label = `leak-${randomBytes(4).toString('hex')}`;

    // Every endpoint, as every kind of caller.
    const created = await send('POST', '', 'service', { provider: 'openai', label, secret: first, tenant_id: tenant });
    expect(created.status).toBe(201);
    const keyId: string = created.body.id;
    expect((await send('POST', '', 'admin', { provider: 'anthropic', label, secret: second })).status).toBe(201);
    for (const caller of ['service', 'admin', 'member'] as const) {
      expect((await send('GET', '', caller)).status).toBe(200);
      expect((await send('GET', `/${keyId}`, caller)).status).toBe(200);
      expect((await send('GET', `/${keyId}/audit`, caller)).status).toBe(200);
    }
    expect((await send('POST', `/${keyId}/rotate`, 'admin', { secret: third, grace_seconds: 300 })).status).toBe(201);
    expect((await send('POST', `/${keyId}/versions/1/disable`, 'admin', { reason: 'leak test' })).status).toBe(200);

    // Decrypts, in-process as the router does them.
    const { resolver, logLines } = inProcessResolver(sql);
    expect((await resolver.getProviderKey(tenant, 'openai', { label, requestId: 'leak-decrypt' }))?.secret).toBe(third);
    expect((await resolver.getProviderKey(tenant, 'anthropic', { label }))?.secret).toBe(second);
    expect(await resolver.getKeyVersion(keyId, 1)).toBeNull();
    inProcessLogs.push(...logLines);

    // Every error path, each with a secret in the request.
    const refusals: [string, string, Caller, unknown, number][] = [
      ['POST', '', 'service', { provider: 'openai', label, secret: refused, tenant_id: tenant }, 409],
      ['POST', '', 'service', { provider: 'no-such-provider', secret: refused, tenant_id: tenant }, 400],
      ['POST', '', 'service', { provider: 'openai', secret: `${refused} `, tenant_id: tenant }, 400],
      ['POST', '', 'service', { provider: refused, secret: refused, tenant_id: tenant }, 400],
      ['POST', '', 'service', { provider: 'openai', label: refused, secret: refused, tenant_id: tenant }, 400],
      ['POST', '', 'service', { provider: 'openai', secret: refused, tenant_id: refused }, 400],
      ['POST', '', 'service', { provider: 'openai', secret: refused, tenant_id: tenant, note: refused }, 400],
      ['POST', '', 'service', `{"provider":"openai","secret":"${refused}"`, 400],
      ['POST', '', 'service', { provider: 'openai', secret: refused.repeat(3000), tenant_id: tenant }, 413],
      ['POST', '', 'member', { provider: 'gemini', label, secret: refused }, 403],
      ['POST', '', 'outsider', { provider: 'gemini', label, secret: refused, tenant_id: tenant }, 403],
      ['POST', '', 'admin', { provider: 'gemini', label, secret: refused, tenant_id: null }, 403],
      ['POST', '', 'none', { provider: 'openai', secret: refused }, 401],
      ['POST', '', 'anon', { provider: 'openai', secret: refused }, 401],
      ['POST', `/${keyId}/rotate`, 'member', { secret: refused }, 403],
      ['POST', `/${keyId}/rotate`, 'outsider', { secret: refused }, 404],
      ['POST', `/${keyId}/rotate`, 'admin', { secret: refused, grace_seconds: -5 }, 400],
      ['POST', `/${keyId}/rotate`, 'admin', { secret: refused, extra: refused }, 400],
      ['POST', `/${crypto.randomUUID()}/rotate`, 'service', { secret: refused }, 404],
      ['POST', `/not-a-key/rotate`, 'service', { secret: refused }, 400],
      ['POST', `/${keyId}/versions/2/disable`, 'admin', { reason: 'x' }, 409],
      ['POST', `/${keyId}/versions/9/disable`, 'admin', { force: true }, 404],
      ['POST', `/${keyId}/versions/2/disable`, 'member', { force: true, secret: refused }, 400],
      ['POST', `/${keyId}/versions/2/disable`, 'outsider', { force: true }, 404],
      ['GET', `?provider=${encodeURIComponent(refused)}`, 'service', undefined, 400],
      ['GET', `/${keyId}/audit?before=${encodeURIComponent(refused)}`, 'service', undefined, 400],
    ];
    for (const [method, pathname, caller, body, status] of refusals) {
      const answer = await send(method, pathname, caller, body);
      expect(answer.status, `${method} ${pathname} as ${caller}`).toBe(status);
      expect(answer.body.error.code).toEqual(expect.any(String));
    }
    expect((await send('POST', `/${keyId}/versions/2/disable`, 'admin', { force: true })).status).toBe(200);

    // With the KMS missing, in-process: 503, and its logs hold no secret either.
    const broken = inProcessKeysApp({ SWITCHYARD_MASTER_KEYS: 'local-1:not-a-key' });
    try {
      const response = await broken.app.request('/keys', {
        method: 'POST',
        headers: serviceHeaders(),
        body: JSON.stringify({ provider: 'openai', label: 'kms-down', secret: refused, tenant_id: tenant }),
      });
      expect(response.status).toBe(503);
      responses.push(await response.text());
      inProcessLogs.push(...broken.logLines);
    } finally {
      await broken.close();
    }

    const sentinel = `leak-sentinel-${crypto.randomUUID()}`;
    await call('/keys', { headers: headersFor(stack.serviceRoleKey, { 'x-request-id': sentinel }) });
    const functionsLog = await functionsLogUntil(sentinel);
    const dump = await dumpDatabase();
    await annotate(`database dump: ${dump.how}`);
    console.info(`keys leak test: database dump by ${dump.how}`);

    // The searches are over real material: our rows, requests and responses are in it.
    const [row] = await sql<{ ciphertext: Buffer }[]>`
      select ciphertext from public.secure_keys where key_id = ${keyId} and version_int = 2`;
    expect(dump.text).toContain(keyId);
    expect(dump.text.toLowerCase()).toContain(row.ciphertext.toString('hex'));
    for (const requestId of requestIds) expect(functionsLog).toContain(requestId);
    expect(responses.length).toBeGreaterThan(40);

    const places: Record<string, string> = {
      'database dump': dump.text,
      'functions log': functionsLog,
      'in-process logs': inProcessLogs.join('\n'),
      responses: responses.join('\n'),
    };
    const found: string[] = [];
    for (const [index, secret] of secrets.entries()) {
      for (const form of encodedForms(secret)) {
        for (const [place, text] of Object.entries(places)) {
          if (text.includes(form)) {
            found.push(`secret #${index + 1} (as ${form === secret ? 'is' : 'encoded'}) in ${place}`);
          }
        }
      }
    }
    expect(found).toEqual([]);
  });
});
