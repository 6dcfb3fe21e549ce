import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import {
  enqueueJob,
  JobLeaseLostError,
  reapExpiredJobs,
  registerJobKind,
  RetryJob,
  runWorker,
  type RunWorkerOptions,
  type WorkerEvent,
} from '../../supabase/functions/_shared/jobs/index.ts';
import { bin, repoRoot } from '../../scripts/lib/paths.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectDatabase, createTenant, stack } from '../helpers/stack.ts';

// The worker library's edges, each against the real database: drain on
// shutdown, the drain time limit, a handler that ignores its signal, a lease
// lost while the handler runs, a retry delay chosen by the handler,
// artifacts, and configuration mistakes.
const admin = connectDatabase();
const pool = postgres(stack.dbUrl, {
  max: 4,
  onnotice: () => {},
  connection: { application_name: 'jobs-worker-test' },
});
afterAll(async () => {
  await pool.end({ timeout: 2 });
  await admin.end();
});

/** A kind of its own per test; retries wait a minute unless a test says otherwise. */
async function freshKind(
  name: string,
  options: { timeoutSeconds?: number; maxAttempts?: number } = {},
): Promise<string> {
  const kind = `test.worker.${name}.${crypto.randomUUID().slice(0, 8)}`;
  await registerJobKind(admin, {
    kind,
    maxAttempts: options.maxAttempts ?? 3,
    timeoutSeconds: options.timeoutSeconds ?? 30,
    backoffBaseSeconds: 60,
    backoffCapSeconds: 60,
  });
  return kind;
}

async function job(id: string) {
  const [row] = await admin<
    { status: string; last_error: string | null; result: unknown; run_at: Date; attempts: number }[]
  >`
    select status, last_error, result, run_at, attempts from public.jobs where id = ${id}`;
  return row;
}

/** Starts a worker; `started` resolves when its first handler begins. */
function startWorker(options: Omit<RunWorkerOptions, 'sql' | 'signal'>) {
  const stop = new AbortController();
  const events: WorkerEvent[] = [];
  const done = runWorker({
    sql: pool,
    pollIntervalMs: 20,
    ...options,
    signal: stop.signal,
    onEvent: (event) => events.push(event),
  });
  return { stop, done, events };
}

describe('runWorker', () => {
  it('drains on shutdown: stops claiming, lets the running job finish, then resolves', async () => {
    const kind = await freshKind('drain');
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const first = await enqueueJob(admin, kind, {});
    const worker = startWorker({
      handlers: {
        [kind]: async () => {
          started();
          // Still running when the stop comes and the second job is queued.
          await released;
          return { finished: true };
        },
      },
      concurrency: 1,
    });
    await running;
    worker.stop.abort();
    const second = await enqueueJob(admin, kind, {});
    release();
    const stats = await worker.done;
    expect(stats).toMatchObject({ claimed: 1, succeeded: 1 });
    expect(await job(first)).toMatchObject({ status: 'succeeded', result: { finished: true } });
    expect((await job(second)).status).toBe('queued');
  });

  it('fires the signal of jobs still running when the drain time is up, and fails them for a retry', async () => {
    const kind = await freshKind('shutdown');
    const id = await enqueueJob(admin, kind, {});
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = startWorker({
      drainTimeoutMs: 100,
      handlers: {
        [kind]: (_job, { signal }) =>
          new Promise((_, reject) => {
            started();
            signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          }),
      },
    });
    await running;
    worker.stop.abort();
    expect(await worker.done).toMatchObject({ retried: 1 });
    expect(await job(id)).toMatchObject({
      status: 'retry_scheduled',
      last_error: 'worker shut down before the job finished',
    });
  });

  it('abandons a handler that ignores its timeout, and fails the attempt', async () => {
    const kind = await freshKind('abandon', { timeoutSeconds: 1, maxAttempts: 1 });
    const id = await enqueueJob(admin, kind, {});
    const worker = startWorker({
      abortGraceMs: 100,
      handlers: { [kind]: () => new Promise(() => {}) },
    });
    await eventually(() => job(id), (row) => row.status === 'failed_dlq');
    worker.stop.abort();
    const stats = await worker.done;
    expect(stats).toMatchObject({ abandoned: 1, deadLettered: 1 });
    expect((await job(id)).last_error).toBe(
      'JobTimeoutError: job timed out after 1s; the handler did not stop within 100 ms',
    );
  });

  it('aborts a handler whose lease was lost, and reports nothing for it', async () => {
    const kind = await freshKind('lease');
    const id = await enqueueJob(admin, kind, {});
    let reason: unknown;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = startWorker({
      heartbeatIntervalMs: 50,
      handlers: {
        [kind]: (_job, { signal }) =>
          new Promise((_, reject) => {
            started();
            signal.addEventListener('abort', () => {
              reason = signal.reason;
              reject(signal.reason);
            }, { once: true });
          }),
      },
    });
    await running;
    // As if the worker had stalled past its lease: the reaper takes the job.
    // In one transaction, so a heartbeat (every 50 ms) cannot renew the lease between the two.
    await admin.begin(async (tx) => {
      await tx`update public.jobs set lease_expires_at = now() - interval '1 second' where id = ${id}`;
      // Other test files reap in parallel: whoever reaps it, the job is taken from this worker.
      await tx`select public.reap_expired_jobs()`;
    });
    await eventually(() => Promise.resolve(reason), (value) => value !== undefined, { timeoutMs: 10_000 });
    worker.stop.abort();
    const stats = await worker.done;
    expect(reason).toBeInstanceOf(JobLeaseLostError);
    expect(stats).toMatchObject({ leaseLost: 1, retried: 0, succeeded: 0 });
    expect(worker.events.some((event) => event.type === 'lease_lost' && event.during === 'heartbeat')).toBe(true);
    const after = await job(id);
    expect(after.status).toBe('retry_scheduled');
    expect(after.last_error).toMatch(/^lease expired/);
  });

  it('does not complete a job whose lease was taken while its handler finished', async () => {
    const kind = await freshKind('late');
    const id = await enqueueJob(admin, kind, {});
    const worker = startWorker({
      handlers: {
        [kind]: async () => {
          // The handler is done, but too late: the reaper took the job meanwhile.
          await admin`update public.jobs set lease_expires_at = now() - interval '1 second' where id = ${id}`;
          await reapExpiredJobs(admin);
          return { late: true };
        },
      },
    });
    await eventually(() => Promise.resolve(worker.events.some((event) => event.type === 'lease_lost')), Boolean);
    worker.stop.abort();
    expect(await worker.done).toMatchObject({ leaseLost: 1, succeeded: 0 });
    expect(worker.events).toContainEqual(expect.objectContaining({ type: 'lease_lost', during: 'finish' }));
    expect(await job(id)).toMatchObject({ status: 'retry_scheduled', result: null });
  });

  it('sends a result that cannot be stored as JSON to the DLQ, saying why', async () => {
    const kind = await freshKind('bigint');
    const id = await enqueueJob(admin, kind, {});
    const worker = startWorker({ handlers: { [kind]: () => ({ total: 10n }) } });
    await eventually(() => job(id), (row) => row.status === 'failed_dlq');
    worker.stop.abort();
    expect(await worker.done).toMatchObject({ deadLettered: 1, succeeded: 0 });
    expect((await job(id)).last_error).toMatch(/^the handler's result cannot be stored as JSON: TypeError: /);
  });

  it('retries after the delay the handler asks for', async () => {
    const kind = await freshKind('retry');
    const id = await enqueueJob(admin, kind, {});
    const worker = startWorker({
      concurrency: 1,
      handlers: {
        [kind]: () => {
          throw new RetryJob('upstream asked us to wait', { retryInSeconds: 120 });
        },
      },
    });
    await eventually(() => job(id), (row) => row.status === 'retry_scheduled');
    worker.stop.abort();
    await worker.done;
    const after = await job(id);
    expect(after).toMatchObject({ status: 'retry_scheduled', last_error: 'upstream asked us to wait', attempts: 1 });
    const [{ delay }] = await admin<{ delay: number }[]>`
      select extract(epoch from run_at - updated_at)::int as delay from public.jobs where id = ${id}`;
    expect(delay).toBe(120);
  });

  it("stores what a handler returns, and the artifacts it adds, under the job's tenant", async () => {
    const kind = await freshKind('artifact');
    const tenantId = await createTenant('Worker artifacts');
    const id = await enqueueJob(admin, kind, { name: 'report' }, { tenantId });
    const worker = startWorker({
      handlers: {
        [kind]: async (claimed, context) => {
          await context.addArtifact({ name: 'summary', content: { lines: 3 } });
          await context.addArtifact({ storagePath: `${tenantId}/${claimed.id}/report.pdf` });
          return { pages: 2 };
        },
      },
    });
    await eventually(() => job(id), (row) => row.status === 'succeeded');
    worker.stop.abort();
    await worker.done;
    expect((await job(id)).result).toEqual({ pages: 2 });
    const artifacts = await admin<{ tenant_id: string; name: string; storage_path: string | null; content: unknown }[]>`
      select tenant_id, name, storage_path, content from public.artifacts where job_id = ${id} order by created_at, name`;
    expect(artifacts).toEqual(expect.arrayContaining([
      { tenant_id: tenantId, name: 'summary', storage_path: null, content: { lines: 3 } },
      { tenant_id: tenantId, name: 'output', storage_path: `${tenantId}/${id}/report.pdf`, content: null },
    ]));
  });

  it('refuses a kind without a handler, or a bad setting, before claiming anything', async () => {
    await expect(runWorker({ sql: pool, handlers: {}, kinds: ['test.nobody'] })).rejects.toThrow(
      'runWorker: no handler for kind(s) test.nobody',
    );
    await expect(runWorker({ sql: pool, handlers: { a: () => null }, concurrency: 0 })).rejects.toThrow(
      'runWorker: concurrency must be a positive number',
    );
  });
});

describe('npm run worker', () => {
  it('reaps a job whose worker vanished, as a recorded run of the reap_expired_jobs schedule, in JSON lines', async () => {
    const kind = await freshKind('maintenance', { maxAttempts: 1 });
    const id = await enqueueJob(admin, kind, {});
    await admin`select * from public.claim_jobs('vanished-worker', ${[kind]}::text[], 1, 30)`;
    await admin`update public.jobs set lease_expires_at = now() - interval '1 second' where id = ${id}`;
    const { stdout } = await promisify(execFile)(bin('tsx'), [
      'scripts/worker.ts',
      '--once',
      '--task',
      'reap_expired_jobs',
    ], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: stack.dbUrl },
    });
    const lines = stdout.trim().split('\n').map((line) =>
      JSON.parse(line) as { event: string; name?: string; run_id?: number; result?: unknown; schedules?: string[] }
    );
    expect(lines[0]).toMatchObject({
      event: 'maintenance_worker_started',
      schedules: expect.arrayContaining(['reap_expired_jobs', 'reap_expired_reservations', 'provider_health']),
    });
    const ran = lines.filter((line) => line.event === 'scheduled_task_ran');
    expect(ran.map((line) => line.name)).toEqual(['reap_expired_jobs']);
    // Its count may be 0 when a reaper of a test file running in parallel was first.
    expect(ran[0].result).toBeTypeOf('number');
    expect(lines.at(-1)?.event).toBe('maintenance_worker_stopped');
    expect(await job(id)).toMatchObject({ status: 'failed_dlq' });
    expect((await job(id)).last_error).toMatch(/^lease expired at .* worker vanished-worker/);
    const [run] = await admin<{ name: string; runner: string; outcome: string; result: unknown }[]>`
      select name, runner, outcome, result from public.scheduled_runs where id = ${ran[0].run_id!}`;
    expect(run).toEqual({ name: 'reap_expired_jobs', runner: 'worker', outcome: 'ok', result: ran[0].result });
  });
});
