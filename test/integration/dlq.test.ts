import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimJobs, enqueueJob, failJob, registerJobKind } from '../../supabase/functions/_shared/jobs/index.ts';
import { bin, repoRoot } from '../../scripts/lib/paths.ts';
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

// dlq-list and dlq-retry through the real stack, per actor: the service role,
// a tenant's operator (its tenant only; another tenant's dead letter is 404),
// a plain member (403). Requeue keeps job ids, is audited, and happens once
// however often it is asked for. The CLI drives the same endpoints.
const sql = connectDatabase();
const suffix = crypto.randomUUID().slice(0, 8);
const kind = `test.dlq.${suffix}`;
const otherKind = `test.dlq-other.${suffix}`;
let tenantA: string;
let tenantB: string;
const tokens: Record<string, string> = {};
let operatorA: string;

// Each fixture job outranks every earlier one (lower priority runs first), so
// the claim below takes it and not a job requeued by an earlier test.
let nextPriority = -32_000;

/** A job of `tenantId` that failed for good with `error`: it is waiting in the DLQ. */
async function deadLetter(tenantId: string, error: string, jobKind = kind): Promise<string> {
  const id = await enqueueJob(sql, jobKind, { error }, { tenantId, priority: nextPriority-- });
  const [job] = await claimJobs(sql, { worker: `dlq-test-${suffix}`, kinds: [jobKind], batchSize: 1 });
  expect(job.id).toBe(id);
  expect(await failJob(sql, id, job.leaseToken, error, { retryable: false })).toBe('failed_dlq');
  return id;
}

beforeAll(async () => {
  await registerJobKind(sql, { kind, description: 'dlq test', maxAttempts: 1 });
  await registerJobKind(sql, { kind: otherKind, description: 'dlq test, other kind', maxAttempts: 1 });
  tenantA = await createTenant('DLQ A');
  tenantB = await createTenant('DLQ B');
  operatorA = await createUser(sql, 'dlq-operator-a');
  const adminB = await createUser(sql, 'dlq-admin-b');
  const memberA = await createUser(sql, 'dlq-member-a');
  await addMember(sql, tenantA, operatorA, 'operator');
  await addMember(sql, tenantB, adminB, 'admin');
  await addMember(sql, tenantA, memberA, 'member');
  tokens.operatorA = await signUserToken(operatorA);
  tokens.adminB = await signUserToken(adminB);
  tokens.memberA = await signUserToken(memberA);
});
afterAll(() => sql.end());

async function send(
  method: string,
  pathname: string,
  bearer: string,
  body?: unknown,
  extra: Record<string, string> = {},
) {
  const response = await call(pathname, {
    method,
    headers: bearer === 'service' ? serviceHeaders(extra) : headersFor(bearer, extra),
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  // deno-lint-ignore no-explicit-any -- response bodies are asserted field by field
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

async function jobState(id: string) {
  const [job] = await sql<
    { status: string; attempts: number }[]
  >`select status, attempts from public.jobs where id = ${id}`;
  const [counts] = await sql<{ requeued: number; events: number; waiting: number }[]>`
    select (select count(*)::int from public.job_events where job_id = ${id} and event = 'requeued') as requeued,
           (select count(*)::int from public.job_events where job_id = ${id}) as events,
           (select count(*)::int from public.job_dead_letters where job_id = ${id} and requeued_at is null) as waiting`;
  return { ...job, ...counts };
}

describe('GET /dlq-list', () => {
  let a1: string;
  let a2: string;
  let a3: string;
  let b1: string;

  beforeAll(async () => {
    a1 = await deadLetter(tenantA, 'upstream 502 bad gateway');
    a2 = await deadLetter(tenantA, 'invalid payload: missing "to"');
    a3 = await deadLetter(tenantA, 'upstream 503 unavailable', otherKind);
    b1 = await deadLetter(tenantB, 'upstream 502 from B');
  });

  it('lists dead letters newest first for the service role, with filters', async () => {
    const all = await send('GET', `/dlq-list?kind=${kind}`, 'service');
    expect(all.status).toBe(200);
    expect(all.body.items.map((item: { job_id: string }) => item.job_id)).toEqual([b1, a2, a1]);
    expect(all.body.items[0]).toMatchObject({
      kind,
      tenant_id: tenantB,
      attempts: 1,
      job_status: 'failed_dlq',
      requeued_at: null,
    });
    expect(all.body.next_cursor).toBeNull();

    const byTenant = await send('GET', `/dlq-list?kind=${kind}&tenant_id=${tenantA}`, 'service');
    expect(byTenant.body.items.map((item: { job_id: string }) => item.job_id)).toEqual([a2, a1]);
    const byError = await send(
      'GET',
      `/dlq-list?tenant_id=${tenantA}&error=${encodeURIComponent('UPSTREAM 50')}`,
      'service',
    );
    expect(byError.body.items.map((item: { job_id: string }) => item.job_id)).toEqual([a3, a1]);
    const literal = await send('GET', `/dlq-list?tenant_id=${tenantA}&error=${encodeURIComponent('50_')}`, 'service');
    expect(literal.body.items).toEqual([]);
    const future = await send(
      'GET',
      `/dlq-list?kind=${kind}&since=${encodeURIComponent('2999-01-01T00:00:00Z')}`,
      'service',
    );
    expect(future.body.items).toEqual([]);
  });

  it('pages with a keyset cursor: every item once, in order', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { job_id: string }[]; next_cursor: string | null } } = await send(
        'GET',
        `/dlq-list?tenant_id=${tenantA}&limit=1${cursor ? `&cursor=${cursor}` : ''}`,
        'service',
      );
      seen.push(...page.body.items.map((item) => item.job_id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([a3, a2, a1]);
  });

  it('shows an operator its own tenant only, and refuses members and other tenants', async () => {
    const own = await send('GET', `/dlq-list?kind=${kind}`, tokens.operatorA);
    expect(own.status).toBe(200);
    expect(own.body.items.map((item: { job_id: string }) => item.job_id)).toEqual([a2, a1]);
    const other = await send('GET', `/dlq-list?tenant_id=${tenantB}`, tokens.operatorA);
    expect(other.status).toBe(403);
    expect((await send('GET', '/dlq-list', tokens.memberA)).status).toBe(403);
    const adminB = await send('GET', `/dlq-list?kind=${kind}`, tokens.adminB);
    expect(adminB.body.items.map((item: { job_id: string }) => item.job_id)).toEqual([b1]);
  });

  it('answers bad input with 400 naming the parameter', async () => {
    const cases: [string, RegExp][] = [
      ['kind=no.such.kind', /^kind: unknown job kind "no\.such\.kind"$/],
      ['kind=NOPE', /^kind: must be a job kind name/],
      ['cursor=not-a-cursor!', /^cursor: malformed/],
      [`cursor=${Buffer.from('["yesterday","x"]').toString('base64url')}`, /^cursor: malformed/],
      ['limit=0', /^limit: must be at least 1/],
      ['limit=500', /^limit: must be at most 200/],
      ['limit=ten', /^limit: must be a whole number/],
      ['since=last-week', /^since: must be an ISO 8601 date-time/],
      ['tenant_id=abc', /^tenant_id: must be a UUID/],
      ['colour=red', /colour/],
    ];
    for (const [query, message] of cases) {
      const response = await send('GET', `/dlq-list?${query}`, 'service');
      expect(response.status, query).toBe(400);
      expect(response.body.error.message, query).toMatch(message);
    }
  });
});

describe('POST /dlq-retry', () => {
  it('requeues by ids once: same job ids, audited; a second run (same or new key) changes nothing', async () => {
    const ids = [await deadLetter(tenantA, 'boom 1'), await deadLetter(tenantA, 'boom 2')];
    const key = `retry-${crypto.randomUUID()}`;

    const dryRun = await send('POST', '/dlq-retry', 'service', { ids, reason: 'fixed the bug', dry_run: true });
    expect(dryRun.body).toEqual({ requeued: ids, skipped: [], dry_run: true });
    expect((await jobState(ids[0])).status).toBe('failed_dlq');

    const first = await send('POST', '/dlq-retry', 'service', { ids, reason: 'fixed the bug' }, {
      'idempotency-key': key,
    });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ requeued: ids, skipped: [], dry_run: false });

    const replay = await send('POST', '/dlq-retry', 'service', { ids, reason: 'fixed the bug' }, {
      'idempotency-key': key,
    });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual({ ...first.body, replayed: true });

    const again = await send('POST', '/dlq-retry', 'service', { ids, reason: 'fixed the bug' });
    expect(again.body).toEqual({
      requeued: [],
      skipped: ids.map((id) => ({ id, reason: 'already_requeued' })),
      dry_run: false,
    });

    for (const id of ids) {
      expect(await jobState(id)).toEqual({ status: 'queued', attempts: 0, requeued: 1, events: 4, waiting: 0 });
    }
    const [audit] = await sql<{ requeued_by: string; requeue_reason: string; requeue_request_key: string }[]>`
      select requeued_by, requeue_reason, requeue_request_key from public.job_dead_letters where job_id = ${ids[0]}`;
    expect(audit).toEqual({ requeued_by: 'service_role', requeue_reason: 'fixed the bug', requeue_request_key: key });
    const [event] = await sql<{ details: Record<string, unknown> }[]>`
      select details from public.job_events where job_id = ${ids[0]} and event = 'requeued'`;
    expect(event.details).toMatchObject({
      actor: 'service_role',
      reason: 'fixed the bug',
      request_key: key,
      previous_attempts: 1,
    });

    const conflict = await send('POST', '/dlq-retry', 'service', { ids, reason: 'another reason' }, {
      'idempotency-key': key,
    });
    expect(conflict.status).toBe(409);
  });

  it('lets an operator requeue by filter within its tenant only', async () => {
    const mine = await deadLetter(tenantA, `quota exceeded ${suffix}`);
    const theirs = await deadLetter(tenantB, `quota exceeded ${suffix}`);
    const response = await send('POST', '/dlq-retry', tokens.operatorA, {
      filter: { kind, error: `quota exceeded ${suffix}` },
      reason: 'quota raised',
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ requeued: [mine], skipped: [], dry_run: false });
    expect((await jobState(theirs)).status).toBe('failed_dlq');
    const [audit] = await sql<
      { requeued_by: string }[]
    >`select requeued_by from public.job_dead_letters where job_id = ${mine}`;
    expect(audit.requeued_by).toBe(`user:${operatorA}`);
  });

  it("answers another tenant's dead letter with 404 and changes nothing", async () => {
    const mine = await deadLetter(tenantA, 'mine');
    const theirs = await deadLetter(tenantB, 'theirs');
    const response = await send('POST', '/dlq-retry', tokens.operatorA, { ids: [mine, theirs], reason: 'both please' });
    expect(response.status).toBe(404);
    expect(response.body.error.message).toBe(`dead letter not found: ${theirs}`);
    expect((await jobState(mine)).status).toBe('failed_dlq');
    expect((await jobState(theirs)).status).toBe('failed_dlq');
  });

  it("refuses an operator who names another tenant, and leaves that tenant's dead letter alone", async () => {
    const theirs = await deadLetter(tenantB, 'not yours');
    const response = await send(
      'POST',
      '/dlq-retry',
      tokens.operatorA,
      { ids: [theirs], reason: 'let me' },
      { 'x-tenant-id': tenantB },
    );
    expect(response.status).toBe(403);
    expect(response.body.error).toMatchObject({
      code: 'forbidden',
      message: 'you are not an operator or admin of this tenant',
    });
    expect((await jobState(theirs)).status).toBe('failed_dlq');
  });

  it('refuses members and API keys', async () => {
    const id = await deadLetter(tenantA, 'member tries');
    expect((await send('POST', '/dlq-retry', tokens.memberA, { ids: [id], reason: 'x' })).status).toBe(403);
    expect((await jobState(id)).status).toBe('failed_dlq');
  });

  it('answers bad input with 400 naming the field, and changes nothing', async () => {
    const id = await deadLetter(tenantA, 'bad input');
    const cases: [unknown, Record<string, string>, RegExp][] = [
      [{ ids: [id] }, {}, /^reason: required/],
      [{ ids: [id], reason: '   ' }, {}, /^reason: required/],
      [{ ids: ['not-a-uuid'], reason: 'x' }, {}, /^ids\.0: must be a UUID/],
      [{ ids: [id], reason: 'x', max: 1001 }, {}, /^max: must be at most 1000/],
      [{ ids: [id, id], reason: 'x', max: 1 }, {}, /^ids: more ids \(2\) than max \(1\)/],
      [{ filter: { kind: 'no.such.kind' }, reason: 'x' }, {}, /^filter\.kind: unknown job kind "no\.such\.kind"$/],
      [{ filter: { colour: 'red' }, reason: 'x' }, {}, /colour/],
      [{ filter: { since: 'yesterday' }, reason: 'x' }, {}, /^filter\.since: must be an ISO 8601 date-time/],
      [{ ids: [id], filter: {}, reason: 'x' }, {}, /^ids: give either ids or filter/],
      [{ reason: 'x' }, {}, /^ids: give either ids or filter/],
      [{ ids: [id], reason: 'x' }, { 'idempotency-key': '' }, /^Idempotency-Key: /],
    ];
    for (const [body, extra, message] of cases) {
      const response = await send('POST', '/dlq-retry', 'service', body, extra);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.message, JSON.stringify(body)).toMatch(message);
    }
    expect(await jobState(id)).toMatchObject({ status: 'failed_dlq', requeued: 0, waiting: 1 });
  });
});

describe('npm run dlq', () => {
  const run = promisify(execFile);
  const env = {
    ...process.env,
    FUNCTIONS_URL: stack.functionsUrl,
    SERVICE_ROLE_KEY: stack.serviceRoleKey,
    ANON_KEY: stack.anonKey,
  };
  const dlq = (...args: string[]) => run(bin('tsx'), ['scripts/dlq.ts', ...args], { cwd: repoRoot, env });

  // Five CLI runs (a tsx start each): bounded generously, a loaded machine takes its time.
  it('lists as a table and as JSON, and retries once', { timeout: 120_000 }, async () => {
    const cliKind = `test.dlq-cli.${suffix}`;
    await registerJobKind(sql, { kind: cliKind, maxAttempts: 1 });
    const id = await deadLetter(tenantA, 'cli failure', cliKind);

    const table = await dlq('list', '--kind', cliKind);
    expect(table.stdout).toMatch(/^failed_at\s+job_id\s+tenant\s+kind\s+attempts\s+requeued\s+last_error/);
    expect(table.stdout).toContain(id);
    expect(table.stdout).toContain('cli failure');

    const listed = JSON.parse((await dlq('list', '--kind', cliKind, '--json')).stdout);
    expect(listed.items.map((item: { job_id: string }) => item.job_id)).toEqual([id]);

    const retried = JSON.parse((await dlq('retry', '--ids', id, '--reason', 'cli retry', '--json')).stdout);
    expect(retried).toEqual({ requeued: [id], skipped: [], dry_run: false });
    const again = await dlq('retry', '--ids', id, '--reason', 'cli retry');
    expect(again.stdout).toMatch(/^requeued 0 job\(s\)/);
    expect(again.stdout).toMatch(new RegExp(`${id}\\s+already_requeued`));
    expect((await jobState(id)).requeued).toBe(1);

    const refused = await dlq('retry', '--ids', id).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toMatch(/400 validation_failed: reason: required/);
  });
});
