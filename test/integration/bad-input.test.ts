import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { createDlqListApp } from '../../supabase/functions/dlq-list/app.ts';
import { createDlqRetryApp } from '../../supabase/functions/dlq-retry/app.ts';
import { createJobsApp } from '../../supabase/functions/jobs/app.ts';
import { createKeysApp } from '../../supabase/functions/keys/app.ts';
import { createLlmRouterApp } from '../../supabase/functions/llm-router/app.ts';
import { createMaintenanceApp } from '../../supabase/functions/maintenance/app.ts';
import { createMetricsApp } from '../../supabase/functions/metrics/app.ts';
import { createOpsApp } from '../../supabase/functions/ops/app.ts';
import { createProviderHealthApp } from '../../supabase/functions/provider-health/app.ts';
import { createReadinessApp } from '../../supabase/functions/readiness/app.ts';
import { fixedKeySource } from '../helpers/in-process-router.ts';
import {
  call,
  connectDatabase,
  countTenantsNamed,
  createTenant,
  headersFor,
  serviceHeaders,
  stack,
} from '../helpers/stack.ts';

// Bad bytes are 400s, by one rule for every route (issue 21): text PostgreSQL
// cannot store (NUL, a lone surrogate), nesting past the bound, a body that is
// not JSON (415). The routes are read from the function apps themselves, so a
// new route is covered without touching this file; the requests go to the
// real functions under Deno.
const sql = connectDatabase();
afterAll(async () => {
  await sql.end();
  await deps.db.end({ timeout: 1 });
});

// Built only to list their routes (nothing is served from here).
const deps = createRuntimeDependencies({
  SUPABASE_DB_URL: stack.dbUrl,
  SUPABASE_JWT_SECRET: stack.jwtSecret,
  SUPABASE_ANON_KEY: stack.anonKey,
  LOG_LEVEL: 'error',
});
const apps = [
  createDlqListApp(deps),
  createDlqRetryApp(deps),
  createJobsApp(deps),
  createKeysApp(deps),
  createLlmRouterApp(deps, { keys: fixedKeySource }),
  createMaintenanceApp(deps),
  createMetricsApp(deps, { environment: {} }),
  createOpsApp(deps),
  createProviderHealthApp(deps, { keys: fixedKeySource }),
  createReadinessApp(deps, { environment: {} }),
];

/** Every concrete route, its parameters filled with values of a plausible shape. */
const routes = apps.flatMap((app) =>
  app.routes
    .filter((route) => route.method !== 'ALL' && !route.path.includes('*'))
    .map((route) => ({
      method: route.method,
      path: route.path.replace(/:version\b/g, '1').replace(/:[a-z_]+/gi, crypto.randomUUID()),
    }))
).filter((route, index, all) => all.findIndex((r) => r.method === route.method && r.path === route.path) === index);
const bodyMethods = ['POST', 'PUT', 'PATCH', 'DELETE'];

interface ErrorAnswer {
  status: number;
  code: string | undefined;
  message: string | undefined;
  param: string | null | undefined;
}

let tenantId: string;
let tenantApiKey: string;
beforeAll(async () => {
  tenantId = await createTenant('Bad input');
  const created = await call(`/ops/tenants/${tenantId}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"bad input"}',
  });
  tenantApiKey = ((await created.json()) as { key: string }).key;
});

/**
 * Credentials each route accepts: a tenant API key for the LLM endpoints, else
 * the service role acting for a tenant, with the job token.
 */
const callerHeaders = (path: string, extra: Record<string, string> = {}) =>
  path.startsWith('/llm-router/')
    ? headersFor(tenantApiKey, extra)
    : serviceHeaders({ 'x-tenant-id': tenantId, 'x-job-token': stack.jobToken, ...extra });

async function send(
  method: string,
  path: string,
  body?: string,
  contentType = 'application/json',
): Promise<ErrorAnswer> {
  const response = await call(path, { method, headers: callerHeaders(path, { 'content-type': contentType }), body });
  // A route may answer with no body at all (HEAD /llm-router, served as GET, for Anthropic clients' probe).
  const text = await response.text();
  const answer = (text === '' ? {} : JSON.parse(text)) as {
    error?: { code?: string; type?: string; message?: string; param?: string | null };
  };
  return {
    status: response.status,
    // Anthropic's error shape (the /v1/messages routes) has a type where the others have a code.
    code: answer.error?.code ?? (answer.error?.type === 'invalid_request_error' ? 'validation_failed' : undefined),
    message: answer.error?.message,
    param: answer.error?.param,
  };
}

/**
 * Body-method routes that take no body (each with what it does instead): not
 * sent bad bodies, since they never read one. A new route lands here only on
 * purpose; every other one must read its body through validation.ts.
 */
const takesNoBody = new Set([
  'POST /maintenance/run/:id', // runs the schedule its path names
  'POST /provider-health/run', // probes every provider
  'DELETE /ops/api-keys/:id', // revokes the key its path names
  'DELETE /llm-router/v1/responses/:id', // deletes the stored response its path names
]);
const routeName = (route: { method: string; path: string }) =>
  `${route.method} ${route.path.replace(/[0-9a-f-]{36}/g, ':id')}`;
const bodyRoutes = routes.filter((route) => bodyMethods.includes(route.method) && !takesNoBody.has(routeName(route)));
/**
 * Where a route's answer to a bad body or query differs from a 400 naming
 * `field` (or its declared early refusal): one line per such route, so a run
 * lists them all.
 */
function mismatch(route: { method: string; path: string }, answer: ErrorAnswer, field: string | RegExp): string[] {
  const name = routeName(route);
  const pattern = typeof field === 'string' ? new RegExp(`^${field.replaceAll('.', '\\.')}: `) : field;
  if (answer.status === 400 && answer.code === 'validation_failed' && pattern.test(answer.message ?? '')) return [];
  return [`${name}: ${answer.status} ${answer.code} ${answer.message}`];
}

describe('text PostgreSQL cannot store, on every route', () => {
  it('lists the routes of every function', () => {
    expect(bodyRoutes.length).toBeGreaterThanOrEqual(14);
    expect(routes.map(routeName)).toEqual(expect.arrayContaining([...takesNoBody]));
    expect(bodyRoutes.map((route) => route.path)).toContain('/ops/tenants');
    expect(bodyRoutes.map((route) => route.path)).toContain('/llm-router/v1/chat/completions');
  });

  const cases: [string, string, string][] = [
    ['a NUL character in a string', JSON.stringify({ note: 'a\u0000b' }), 'note'],
    ['a lone UTF-16 surrogate', '{"note":"x\\ud800y"}', 'note'],
    ['a NUL character in a key', JSON.stringify({ note: { 'k\u0000': 1 } }), 'note'],
    ['a NUL character deep in an array', JSON.stringify({ note: [{ deeper: ['ok', 'a\u0000'] }] }), 'note.0.deeper.1'],
  ];
  for (const [name, body, field] of cases) {
    it(`refuses ${name} with a 400 naming the field`, async () => {
      const wrong: string[] = [];
      for (const route of bodyRoutes) wrong.push(...mismatch(route, await send(route.method, route.path, body), field));
      expect(wrong).toEqual([]);
    });
  }

  it('refuses nesting 2,000 levels deep with a 400, without overflowing a stack', async () => {
    const deep = `{"note":${'['.repeat(2000)}${']'.repeat(2000)}}`;
    const wrong: string[] = [];
    for (const route of bodyRoutes) {
      wrong.push(...mismatch(route, await send(route.method, route.path, deep), /must not nest deeper than 64 levels/));
    }
    expect(wrong).toEqual([]);
  });

  it('refuses a NUL character in a query value on every GET route that reads its query, and ignores it elsewhere', async () => {
    const refused: string[] = [];
    for (const route of routes.filter((r) => r.method === 'GET')) {
      const answer = await send('GET', `${route.path}?probe=a%00b`);
      // A route that reads its query (readQuery) refuses the value; one that reads none answers as usual.
      expect(answer.status, `GET ${route.path}`).toBeLessThan(500);
      if (answer.status === 400) {
        expect(answer.message, `GET ${route.path}`).toMatch(/^probe: must not contain the NUL character/);
        refused.push(route.path);
      }
    }
    expect(refused).toEqual(expect.arrayContaining(['/dlq-list', '/ops/usage', '/ops/budgets']));
  });
});

describe('a body that is not JSON', () => {
  const kinds: [string, string | undefined, string][] = [
    ['text/plain', 'text/plain', '{"name":"plain"}'],
    ['a form', 'application/x-www-form-urlencoded', 'name=form'],
    [
      'multipart',
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nm\r\n--x--',
    ],
    ['no Content-Type', undefined, '{"name":"none"}'],
  ];
  it('is refused with 415 on every route that takes a body, and nothing is written', async () => {
    const before = await countTenantsNamed(sql, 'plain');
    const wrong: string[] = [];
    for (const [kind, contentType, body] of kinds) {
      for (const route of bodyRoutes) {
        const headers = callerHeaders(route.path);
        if (contentType) headers['content-type'] = contentType;
        else delete headers['content-type'];
        const response = await call(route.path, { method: route.method, headers, body });
        const answer = (await response.json()) as { error: { code: string; message: string } };
        if (response.status !== 415) {
          wrong.push(`${routeName(route)} (${kind}): ${response.status} ${answer.error.code}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(await countTenantsNamed(sql, 'plain')).toBe(before);
  });

  it('accepts any +json media type and a charset', async () => {
    const name = `merge-${crypto.randomUUID()}`;
    const created = await call('/ops/tenants', {
      method: 'POST',
      headers: serviceHeaders({ 'content-type': 'application/merge-patch+json; charset=utf-8' }),
      body: JSON.stringify({ name }),
    });
    expect(created.status).toBe(201);
  });
});

describe('the cases the adversarial run found, end to end', () => {
  it('refuses a tenant name with NUL, writing nothing', async () => {
    const name = `nul-${crypto.randomUUID()}`;
    const answer = await send('POST', '/ops/tenants', JSON.stringify({ name: `${name}\u0000` }));
    expect(answer).toMatchObject({ status: 400, code: 'validation_failed' });
    expect(answer.message).toMatch(/^name: must not contain the NUL character/);
    const [written] = await sql<
      { n: number }[]
    >`select count(*)::int as n from public.tenants where name like ${`${name}%`}`;
    expect(written.n).toBe(0);
  });

  it('refuses a job run_at outside years 1970 to 9999 with a 400 naming it', async () => {
    for (const runAt of ['0000-01-01T00:00:00Z', '1969-12-31T23:59:59Z', '+010000-01-01T00:00:00Z']) {
      const response = await call('/jobs', {
        method: 'POST',
        headers: serviceHeaders({ 'x-tenant-id': tenantId }),
        body: JSON.stringify({ kind: 'noop', run_at: runAt }),
      });
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect({ runAt, status: response.status, code: body.error.code }).toEqual({
        runAt,
        status: 400,
        code: 'validation_failed',
      });
      expect(body.error.message).toMatch(/^run_at: /);
    }
  });

  it('refuses an ops usage range outside years 1970 to 9999', async () => {
    const answer = await send('GET', `/ops/usage?tenant_id=${tenantId}&from=0000-01-01T00:00:00Z`);
    expect(answer).toMatchObject({ status: 400, code: 'validation_failed' });
    expect(answer.message).toMatch(/^from: /);
  });
});
