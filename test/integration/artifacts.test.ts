import { ApiKeyCache } from '../../supabase/functions/_shared/auth/api-key-cache.ts';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../supabase/functions/_shared/clock.ts';
import { loadConfig } from '../../supabase/functions/_shared/config.ts';
import { createDatabase } from '../../supabase/functions/_shared/db.ts';
import type { AppDependencies } from '../../supabase/functions/_shared/dependencies.ts';
import {
  type ArtifactSettings,
  type JobHandler,
  registerJobKind,
  runWorker,
  type WorkerEvent,
} from '../../supabase/functions/_shared/jobs/index.ts';
import { createUnavailableKms } from '../../supabase/functions/_shared/kms/unavailable-kms.ts';
import { createJsonLogger } from '../../supabase/functions/_shared/logger.ts';
import { storageRoundTrip } from '../../supabase/functions/_shared/readiness/storage.ts';
import { createStorage } from '../../supabase/functions/_shared/storage/create-storage.ts';
import { createJobsApp } from '../../supabase/functions/jobs/app.ts';
import { createReadinessApp } from '../../supabase/functions/readiness/app.ts';
import { type FakeStorage, startFakeStorage } from '../fakes/fake-storage.ts';
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

// Job artifacts: outputs up to the worker's inlineMaxBytes inline, larger ones
// in Supabase Storage (here a fake Storage server on loopback speaking the
// real upload and sign calls) behind short-lived signed URLs, or inline and
// marked so where Storage is not configured (the local stack). GET
// /jobs/:id/artifacts follows GET /jobs/:id's tenant rules; only it answers
// 503 storage_unavailable when an artifact is in Storage and Storage is not
// configured here.
const admin = connectDatabase();
const pool = postgres(stack.dbUrl, { max: 4, onnotice: () => {}, connection: { application_name: 'artifacts-test' } });
const kind = `test.artifacts.${crypto.randomUUID().slice(0, 8)}`;
let storage: FakeStorage;
let tenantA: string;
let tenantB: string;
let memberA: string;
let memberB: string;
let apiKeyB: string;

beforeAll(async () => {
  storage = await startFakeStorage();
  await registerJobKind(admin, { kind, description: 'artifacts test', maxAttempts: 1, timeoutSeconds: 30 });
  tenantA = await createTenant('Artifacts A');
  tenantB = await createTenant('Artifacts B');
  const userA = await createUser(admin, 'artifacts-a');
  const userB = await createUser(admin, 'artifacts-b');
  await addMember(admin, tenantA, userA, 'member');
  await addMember(admin, tenantB, userB, 'member');
  memberA = await signUserToken(userA);
  memberB = await signUserToken(userB);
  const response = await call(`/ops/tenants/${tenantB}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"artifacts"}',
  });
  apiKeyB = ((await response.json()) as { key: string }).key;
});
afterAll(async () => {
  await pool.end({ timeout: 2 });
  await admin.end();
  await storage.close();
});

/** The jobs app in-process on the test database, Storage as the given environment configures it. */
function inProcessJobs(environment: Record<string, string>) {
  const config = loadConfig({
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_JWT_SECRET: stack.jwtSecret,
    SUPABASE_ANON_KEY: stack.anonKey,
    DB_POOL_MAX: '2',
    ...environment,
  });
  const db = createDatabase(config);
  const deps: AppDependencies = {
    config,
    db,
    clock: systemClock,
    fetch,
    logger: createJsonLogger({ level: 'error', write: () => {} }),
    kms: createUnavailableKms(['not needed here']),
    storage: createStorage(config.storage, fetch).storage,
    apiKeys: new ApiKeyCache(config.authCacheTtlMs, systemClock),
  };
  return { deps, app: createJobsApp(deps), close: () => db.end({ timeout: 1 }) };
}

const fakeStorageEnvironment = () => ({
  STORAGE_ENABLED: 'true',
  STORAGE_URL: storage.url,
  SUPABASE_SERVICE_ROLE_KEY: storage.serviceKey,
  ARTIFACT_URL_TTL_SECONDS: '120',
});

/** Enqueues a job for `tenantId` through the stack and runs it with `handler` in a worker here; returns its id. */
async function runJob(tenantId: string, bearer: string, handler: JobHandler, artifacts?: ArtifactSettings) {
  const created = await call('/jobs', {
    method: 'POST',
    headers: headersFor(bearer, { 'x-tenant-id': tenantId }),
    body: JSON.stringify({ kind, payload: { tenant: tenantId } }),
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const stop = new AbortController();
  let finish!: (event: WorkerEvent) => void;
  const finished = new Promise<WorkerEvent>((resolve) => (finish = resolve));
  const worker = runWorker({
    sql: pool,
    handlers: { [kind]: (job, context) => (job.id === id ? handler(job, context) : null) },
    pollIntervalMs: 20,
    signal: stop.signal,
    artifacts,
    onEvent: (event) => {
      if ('job' in event && event.job?.id === id && event.type !== 'claimed') finish(event);
    },
  });
  const outcome = await finished;
  stop.abort();
  await worker;
  expect(outcome.type, JSON.stringify(outcome)).toBe('succeeded');
  return id;
}

async function getJson(
  app: { request: (path: string, init: RequestInit) => Response | Promise<Response> },
  path: string,
  bearer: string,
) {
  const response = await app.request(path, { headers: headersFor(bearer) });
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  // deno-lint-ignore no-explicit-any -- bodies are asserted field by field
  return { status: response.status, body: (await response.json()) as any };
}
const stackApp = { request: (path: string, init: RequestInit) => call(path, init) };

const bigRows = (count: number) => Array.from({ length: count }, (_, i) => `row-${i},${'x'.repeat(40)}`).join('\n');

describe('artifacts without Storage (the local stack)', () => {
  let jobId: string;
  const big = { rows: bigRows(2_000).split('\n') }; // about 100 KB of JSON, above the 64 KiB default

  beforeAll(async () => {
    jobId = await runJob(tenantA, memberA, async (_job, context) => {
      await context.addArtifact({ name: 'summary', content: { lines: 3 } });
      await context.addArtifact({ name: 'table', content: big });
      return big;
    });
  });

  it('keeps every output inline, marks those above the limit, and says Storage is not configured', async () => {
    const { status, body } = await getJson(stackApp, `/jobs/${jobId}/artifacts`, memberA);
    expect(status).toBe(200);
    expect(body.job_id).toBe(jobId);
    expect(body.storage).toBe('not_configured');
    const byName = Object.fromEntries(body.artifacts.map((artifact: { name: string }) => [artifact.name, artifact]));
    expect(Object.keys(byName).sort()).toEqual(['result', 'summary', 'table']);
    expect(byName.summary).toMatchObject({
      location: 'inline',
      content: { lines: 3 },
      content_type: 'application/json',
      size_bytes: JSON.stringify({ lines: 3 }).length,
    });
    expect(byName.summary.inline_reason).toBeUndefined();
    for (const name of ['table', 'result']) {
      expect(byName[name]).toMatchObject({
        location: 'inline',
        content: big,
        inline_reason: 'storage_not_configured',
        size_bytes: JSON.stringify(big).length,
      });
      expect(byName[name].url).toBeUndefined();
    }
  });

  it("puts a result above the limit beside the job: the job's result points to it", async () => {
    const { status, body } = await getJson(stackApp, `/jobs/${jobId}`, memberA);
    expect(status).toBe(200);
    expect(body.status).toBe('succeeded');
    expect(body.result).toEqual({
      artifact: {
        id: expect.any(String),
        name: 'result',
        location: 'inline',
        size_bytes: JSON.stringify(big).length,
        content_type: 'application/json',
        inline_reason: 'storage_not_configured',
      },
    });
    const [row] = await admin<
      { id: string }[]
    >`select id from public.artifacts where job_id = ${jobId} and name = 'result'`;
    expect(body.result.artifact.id).toBe(row.id);
  });

  it("is 404 for another tenant's member or API key, and the same for a job that does not exist", async () => {
    const expected = { error: { code: 'not_found', message: `job ${jobId} not found`, details: null } };
    for (const bearer of [memberB, apiKeyB]) {
      const { status, body } = await getJson(stackApp, `/jobs/${jobId}/artifacts`, bearer);
      expect(status).toBe(404);
      expect(body).toEqual(expected);
    }
    const missing = crypto.randomUUID();
    const { status, body } = await getJson(stackApp, `/jobs/${missing}/artifacts`, memberA);
    expect(status).toBe(404);
    expect(body.error.code).toBe('not_found');
  });

  it('answers a job id that is not a UUID with 400 naming it, and no credentials with 401', async () => {
    const { status, body } = await getJson(stackApp, '/jobs/not-a-uuid/artifacts', memberA);
    expect(status).toBe(400);
    expect(body.error.code).toBe('validation_failed');
    expect(body.error.message).toBe('id: must be a UUID');
    const anonymous = await getJson(stackApp, `/jobs/${jobId}/artifacts`, '');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe('unauthorized');
  });
});

describe('artifacts in Storage (a fake Storage server on loopback)', () => {
  let jobId: string;
  const csv = bigRows(100); // about 5 KB of text, above the 1 KiB limit below

  beforeAll(async () => {
    const { deps, close } = inProcessJobs(fakeStorageEnvironment());
    try {
      jobId = await runJob(tenantA, memberA, async (_job, context) => {
        await context.addArtifact({ name: 'report.csv', content: csv, contentType: 'text/csv' });
        await context.addArtifact({ name: 'summary', content: { rows: 100 } });
        return { done: true };
      }, { storage: deps.storage, inlineMaxBytes: 1024 });
    } finally {
      await close();
    }
  });

  it('uploads an output above the limit under <tenant>/<job>/ with the service key, and records its path', async () => {
    const [row] = await admin<
      { storage_path: string; content: unknown; size_bytes: string; content_type: string; inline_reason: null }[]
    >`
      select storage_path, content, size_bytes, content_type, inline_reason from public.artifacts
      where job_id = ${jobId} and name = 'report.csv'`;
    expect(row.content).toBeNull();
    expect(row.storage_path).toMatch(new RegExp(`^${tenantA}/${jobId}/[0-9a-f-]{36}-report\\.csv$`));
    expect(Number(row.size_bytes)).toBe(new TextEncoder().encode(csv).length);
    expect(row.content_type).toBe('text/csv');
    const uploads = storage.calls.filter((c) => c.operation === 'upload' && c.path === row.storage_path);
    expect(uploads).toEqual([{
      method: 'POST',
      operation: 'upload',
      bucket: 'artifacts',
      path: row.storage_path,
      authorized: true,
    }]);
    const stored = storage.objects.get('artifacts')?.get(row.storage_path);
    expect(stored?.bytes.toString()).toBe(csv);
    expect(stored?.contentType).toBe('text/csv');
  });

  it('lists Storage artifacts with a signed URL that downloads the output until it expires, inline ones with content', async () => {
    const { app, close } = inProcessJobs(fakeStorageEnvironment());
    try {
      const before = Date.now();
      const { status, body } = await getJson(app, `/jobs/${jobId}/artifacts`, memberA);
      const after = Date.now();
      expect(status).toBe(200);
      expect(body.storage).toBe('configured');
      const byName = Object.fromEntries(body.artifacts.map((artifact: { name: string }) => [artifact.name, artifact]));
      expect(byName.summary).toMatchObject({ location: 'inline', content: { rows: 100 } });
      const report = byName['report.csv'];
      expect(report).toMatchObject({ location: 'storage', content_type: 'text/csv', size_bytes: csv.length });
      expect(report.content).toBeUndefined();
      expect(report.url).toMatch(
        new RegExp(`^${storage.url}/storage/v1/object/sign/artifacts/${tenantA}/${jobId}/.+\\?token=`),
      );
      const expiresAt = Date.parse(report.url_expires_at);
      expect(expiresAt).toBeGreaterThanOrEqual(before + 120_000 - 1_000);
      expect(expiresAt).toBeLessThanOrEqual(after + 120_000 + 1_000);
      const signs = storage.calls.filter((c) => c.operation === 'sign' && report.url.includes(encodeURI(c.path ?? '')));
      expect(signs.length).toBeGreaterThan(0);
      expect(signs.every((c) => c.authorized)).toBe(true);
      // The URL is all a client needs: no key.
      const download = await fetch(report.url);
      expect(download.status).toBe(200);
      expect(await download.text()).toBe(csv);
      expect(JSON.stringify(body)).not.toContain(storage.serviceKey);
    } finally {
      await close();
    }
  });

  it("is 404 for another tenant's member through the in-process app too", async () => {
    const { app, close } = inProcessJobs(fakeStorageEnvironment());
    try {
      const signsBefore = storage.calls.filter((c) => c.operation === 'sign').length;
      const { status, body } = await getJson(app, `/jobs/${jobId}/artifacts`, memberB);
      expect(status).toBe(404);
      expect(body).toEqual({ error: { code: 'not_found', message: `job ${jobId} not found`, details: null } });
      expect(storage.calls.filter((c) => c.operation === 'sign').length).toBe(signsBefore);
    } finally {
      await close();
    }
  });

  it('answers 503 storage_unavailable where Storage is not configured (the stack), while the other job endpoints work', async () => {
    const { status, body } = await getJson(stackApp, `/jobs/${jobId}/artifacts`, memberA);
    expect(status).toBe(503);
    expect(body.error.code).toBe('storage_unavailable');
    expect(body.error.message).toBe(
      `1 artifact(s) of job ${jobId} are in Storage, which is not configured here`,
    );
    const job = await getJson(stackApp, `/jobs/${jobId}`, memberA);
    expect(job.status).toBe(200);
    expect(job.body.result).toEqual({ done: true });
    const enqueued = await call('/jobs', {
      method: 'POST',
      headers: headersFor(memberA, { 'x-tenant-id': tenantA }),
      body: JSON.stringify({ kind, payload: {} }),
    });
    expect(enqueued.status).toBe(201);
    const cancelled = await call(`/jobs/${((await enqueued.json()) as { id: string }).id}/cancel`, {
      method: 'POST',
      headers: headersFor(memberA),
    });
    expect(cancelled.status).toBe(200);
  });

  it('answers 503 storage_unavailable when Storage refuses the key, naming no key', async () => {
    const { app, close } = inProcessJobs({ ...fakeStorageEnvironment(), SUPABASE_SERVICE_ROLE_KEY: 'wrong-key' });
    try {
      const { status, body } = await getJson(app, `/jobs/${jobId}/artifacts`, memberA);
      expect(status).toBe(503);
      expect(body.error).toEqual({
        code: 'storage_unavailable',
        message: 'Storage refused the service key on sign',
        details: null,
      });
      expect(JSON.stringify(body)).not.toContain(storage.serviceKey);
    } finally {
      await close();
    }
  });

  it("uploads a result above the limit as the artifact result, and the job's result points to it", async () => {
    const { deps, close } = inProcessJobs(fakeStorageEnvironment());
    const result = { rows: csv.split('\n') };
    try {
      const id = await runJob(tenantA, memberA, () => result, { storage: deps.storage, inlineMaxBytes: 1024 });
      const [row] = await admin<{ id: string; storage_path: string; result: { artifact: Record<string, unknown> } }[]>`
        select a.id, a.storage_path, j.result from public.artifacts a join public.jobs j on j.id = a.job_id
        where a.job_id = ${id} and a.name = 'result'`;
      expect(row.result).toEqual({
        artifact: {
          id: row.id,
          name: 'result',
          location: 'storage',
          size_bytes: JSON.stringify(result).length,
          content_type: 'application/json',
        },
      });
      expect(row.storage_path).toMatch(new RegExp(`^${tenantA}/${id}/[0-9a-f-]{36}-result$`));
      expect(JSON.parse(storage.objects.get('artifacts')?.get(row.storage_path)?.bytes.toString() ?? 'null')).toEqual(
        result,
      );
    } finally {
      await close();
    }
  });

  it('fails an upload the Storage refuses, and stores no row for it', async () => {
    const { deps: wrongKey, close } = inProcessJobs({
      ...fakeStorageEnvironment(),
      SUPABASE_SERVICE_ROLE_KEY: 'wrong-key',
    });
    let added: unknown;
    try {
      const id = await runJob(tenantA, memberA, async (_job, context) => {
        added = await context.addArtifact({ name: 'big', content: csv, contentType: 'text/csv' }).catch((e: Error) =>
          e
        );
        return null;
      }, { storage: wrongKey.storage, inlineMaxBytes: 1024 });
      expect(added).toMatchObject({
        code: 'storage_unavailable',
        message: 'Storage refused the service key on upload',
      });
      const rows = await admin`select 1 from public.artifacts where job_id = ${id}`;
      expect(rows.length).toBe(0);
    } finally {
      await close();
    }
  });
});

describe('readiness: storage', () => {
  async function storageCheck(environment: Record<string, string>, readinessEnvironment: Record<string, string> = {}) {
    const { deps, close } = inProcessJobs(environment);
    try {
      const app = createReadinessApp(deps, { checks: [storageRoundTrip], environment: readinessEnvironment });
      const response = await app.request('/readiness/ready');
      const body = (await response.json()) as {
        checks: { name: string; status: string; detail: string; optional?: boolean }[];
      };
      return { httpStatus: response.status, ...body.checks[0] };
    } finally {
      await close();
    }
  }

  it('skips when Storage is not configured, and fails when READINESS_STORAGE_REQUIRED is true', async () => {
    const skipped = await storageCheck({});
    // Optional by config: the go/no-go report does not count this skip against GO.
    expect(skipped).toMatchObject({ httpStatus: 200, name: 'storage', status: 'skip', optional: true });
    expect(skipped.detail).toMatch(/STORAGE_ENABLED is not true/);
    const required = await storageCheck({}, { READINESS_STORAGE_REQUIRED: 'true' });
    expect(required).toMatchObject({ httpStatus: 503, status: 'fail' });
    expect(required.optional).toBeUndefined();
    expect(required.detail).toMatch(/READINESS_STORAGE_REQUIRED is true/);
  });

  it('passes when a sign round trip works: the probe is uploaded once, signed and downloaded', async () => {
    const first = await storageCheck(fakeStorageEnvironment());
    expect(first, first.detail).toMatchObject({ httpStatus: 200, status: 'pass' });
    const uploads = () =>
      storage.calls.filter((c) => c.operation === 'upload' && c.path?.startsWith('_switchyard/')).length;
    const uploadsAfterFirst = uploads();
    expect(uploadsAfterFirst).toBe(1);
    expect((await storageCheck(fakeStorageEnvironment())).status).toBe('pass');
    expect(uploads()).toBe(uploadsAfterFirst);
  });

  it('fails when Storage is configured but the bucket is missing, the key is refused or a piece is missing', async () => {
    const noBucket = await startFakeStorage({ buckets: [] });
    try {
      const missing = await storageCheck({
        STORAGE_ENABLED: 'true',
        STORAGE_URL: noBucket.url,
        SUPABASE_SERVICE_ROLE_KEY: noBucket.serviceKey,
      });
      expect(missing).toMatchObject({ httpStatus: 503, status: 'fail' });
      expect(missing.detail).toMatch(/no bucket or object/);
    } finally {
      await noBucket.close();
    }
    const refused = await storageCheck({ ...fakeStorageEnvironment(), SUPABASE_SERVICE_ROLE_KEY: 'wrong-key' });
    expect(refused).toMatchObject({
      status: 'fail',
      detail: 'storage_unavailable: Storage refused the service key on sign',
    });
    const noUrl = await storageCheck({ STORAGE_ENABLED: 'true', SUPABASE_SERVICE_ROLE_KEY: 'k' });
    expect(noUrl.status).toBe('fail');
    expect(noUrl.detail).toContain('STORAGE_ENABLED=true needs STORAGE_URL or SUPABASE_URL');
  });
});
