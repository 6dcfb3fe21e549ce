import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AbortJob,
  claimJobs,
  completeJob,
  enqueueJob,
  enqueueJobs,
  isLeaseLost,
  reapExpiredJobs,
  registerJobKind,
  runWorker,
  SkipJob,
  type WorkerStats,
} from '../../supabase/functions/_shared/jobs/index.ts';
import { connectDatabase, stack } from '../helpers/stack.ts';

// The queue under load, against the real PostgreSQL: 8 workers, each with its
// own connection pool, process 5,000 jobs with random failures, timeouts,
// aborts and skips while a reaper runs beside them. Sized for ~10-20 s on two
// cores (most of it is 1 s timeouts and short backoffs); see docs/reference/jobs.md.
const admin = connectDatabase();
const suffix = crypto.randomUUID().slice(0, 8);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pools: postgres.Sql[] = [];

function workerPool(name: string, max = 2): postgres.Sql {
  const pool = postgres(stack.dbUrl, { max, onnotice: () => {}, connection: { application_name: name } });
  pools.push(pool);
  return pool;
}

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end({ timeout: 2 })));
  await admin.end();
});

interface EventRow {
  job_id: string;
  event: string;
  from_status: string | null;
  to_status: string;
  attempt: number;
  worker: string | null;
  details: { reason?: string };
}

describe('8 workers, 5,000 jobs, random failures and timeouts', () => {
  const kind = `test.load.${suffix}`;
  const jobCount = 5_000;
  const workerCount = 8;
  let ids: string[] = [];
  let stats: WorkerStats[] = [];
  // Held by a handler right now: job id -> worker. A second holder is counted.
  const holders = new Map<string, string>();
  let overlaps = 0;
  let handlerSuccesses = 0;

  beforeAll(async () => {
    await registerJobKind(admin, {
      kind,
      description: 'concurrency test',
      maxAttempts: 3,
      timeoutSeconds: 1,
      backoffBaseSeconds: 0.01,
      backoffCapSeconds: 0.05,
    });
    for (let start = 0; start < jobCount; start += 1_000) {
      const batch = Array.from({ length: Math.min(1_000, jobCount - start) }, (_, i) => ({
        kind,
        payload: { n: start + i },
      }));
      ids = ids.concat(await enqueueJobs(admin, batch));
    }

    const stop = new AbortController();
    const reaper = (async () => {
      while (!stop.signal.aborted) {
        await reapExpiredJobs(admin);
        await sleep(200);
      }
    })();
    const workers = Array.from({ length: workerCount }, (_, index) =>
      runWorker({
        sql: workerPool(`jobs-load-${suffix}-${index}`),
        workerId: `load-${suffix}-${index}`,
        concurrency: 8,
        leaseSeconds: 5,
        pollIntervalMs: 20,
        abortGraceMs: 500,
        signal: stop.signal,
        handlers: {
          [kind]: async (job, context) => {
            if (holders.has(job.id)) overlaps++;
            holders.set(job.id, context.workerId);
            try {
              const roll = Math.random();
              if (roll < 0.01) {
                // Runs past its 1 s timeout; stops when its signal fires.
                await new Promise((_, reject) =>
                  context.signal.addEventListener('abort', () => reject(context.signal.reason), { once: true })
                );
              }
              await sleep(Math.random() * 2);
              if (roll < 0.08) throw new Error('random failure');
              if (roll < 0.09) throw new AbortJob('poison payload');
              if (roll < 0.095) throw new SkipJob('nothing to do');
              handlerSuccesses++;
              return { n: (job.payload as { n: number }).n, attempt: job.attempt };
            } finally {
              holders.delete(job.id);
            }
          },
        },
      }));

    // Until every job reached a final status.
    const deadline = Date.now() + 100_000;
    for (;;) {
      const [row] = await admin<{ open: number }[]>`
        select count(*)::int as open from public.jobs
        where kind = ${kind} and status in ('queued', 'assigned', 'retry_scheduled')`;
      if (row.open === 0 || Date.now() > deadline) break;
      await sleep(100);
    }
    stop.abort();
    stats = await Promise.all(workers);
    await reaper;
  }, 150_000);

  it('loses no job: all 5,000 reached a final status', async () => {
    const rows = await admin<{ status: string; count: number }[]>`
      select status, count(*)::int as count from public.jobs where kind = ${kind} group by status order by status`;
    const byStatus = Object.fromEntries(rows.map((row) => [row.status, row.count]));
    expect(Object.keys(byStatus).sort()).toEqual(expect.arrayContaining(['succeeded']));
    expect(Object.keys(byStatus).every((status) => ['succeeded', 'failed_dlq', 'cancelled'].includes(status))).toBe(
      true,
    );
    expect(rows.reduce((sum, row) => sum + row.count, 0)).toBe(jobCount);
    expect(new Set(ids).size).toBe(jobCount);
    // Some of every fate happened, or the test proved little.
    expect(byStatus.failed_dlq).toBeGreaterThan(0);
    expect(byStatus.cancelled).toBeGreaterThan(0);
  });

  it('never let two workers hold one job at once', () => {
    expect(overlaps).toBe(0);
    expect(stats.reduce((sum, s) => sum + s.leaseLost, 0)).toBe(0);
    expect(stats.reduce((sum, s) => sum + s.abandoned, 0)).toBe(0);
  });

  it('succeeded exactly the jobs whose handler succeeded, and counted every outcome', async () => {
    const [row] = await admin<{ succeeded: number; dlq: number; cancelled: number }[]>`
      select count(*) filter (where status = 'succeeded')::int as succeeded,
             count(*) filter (where status = 'failed_dlq')::int as dlq,
             count(*) filter (where status = 'cancelled')::int as cancelled
      from public.jobs where kind = ${kind}`;
    const total = (key: keyof WorkerStats) => stats.reduce((sum, s) => sum + s[key], 0);
    expect(row.succeeded).toBe(handlerSuccesses);
    expect(total('succeeded')).toBe(row.succeeded);
    expect(total('deadLettered')).toBe(row.dlq);
    expect(total('skipped')).toBe(row.cancelled);
    expect(total('errors')).toBe(0);
    expect(total('claimed')).toBe(total('succeeded') + total('retried') + total('deadLettered') + total('skipped'));
    expect(total('retried')).toBeGreaterThan(0);
  });

  it('recorded one consistent event per transition, attempts included', async () => {
    const events = await admin<EventRow[]>`
      select e.job_id, e.event, e.from_status, e.to_status, e.attempt, e.worker, e.details
      from public.job_events e join public.jobs j on j.id = e.job_id
      where j.kind = ${kind} order by e.job_id, e.id`;
    const jobs = await admin<{ id: string; status: string; attempts: number }[]>`
      select id, status, attempts from public.jobs where kind = ${kind}`;
    const byJob = new Map<string, EventRow[]>();
    for (const event of events) byJob.set(event.job_id, [...(byJob.get(event.job_id) ?? []), event]);

    const problems: string[] = [];
    for (const job of jobs) {
      const history = byJob.get(job.id) ?? [];
      if (history[0]?.event !== 'queued' || history[0]?.from_status !== null) {
        problems.push(`${job.id}: does not start queued`);
      }
      for (let i = 1; i < history.length; i++) {
        if (history[i].from_status !== history[i - 1].to_status) {
          problems.push(`${job.id}: event ${i} breaks the chain`);
        }
      }
      if (history.at(-1)?.to_status !== job.status) problems.push(`${job.id}: last event is not the job's status`);
      const assigned = history.filter((event) => event.event === 'assigned');
      if (assigned.length !== job.attempts) {
        problems.push(`${job.id}: ${assigned.length} claims for ${job.attempts} attempts`);
      }
      if (assigned.some((event, index) => event.attempt !== index + 1)) {
        problems.push(`${job.id}: attempts out of order`);
      }
      if (history.some((event) => event.details.reason === 'lease_expired')) {
        problems.push(`${job.id}: reaped while alive`);
      }
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect(events.length).toBeGreaterThan(jobCount * 3);
  });

  it('gave every failed_dlq job a dead-letter row, and no other job one', async () => {
    const [row] = await admin<{ missing: number; extra: number }[]>`
      select
        (select count(*)::int from public.jobs j where j.kind = ${kind} and j.status = 'failed_dlq'
           and not exists (select 1 from public.job_dead_letters d where d.job_id = j.id and d.requeued_at is null)) as missing,
        (select count(*)::int from public.job_dead_letters d join public.jobs j on j.id = d.job_id
           where j.kind = ${kind} and j.status <> 'failed_dlq') as extra`;
    expect(row).toEqual({ missing: 0, extra: 0 });
  });
});

describe('a worker whose connection is killed mid-job', () => {
  const kind = `test.kill.${suffix}`;

  beforeAll(async () => {
    await registerJobKind(admin, {
      kind,
      maxAttempts: 3,
      timeoutSeconds: 30,
      backoffBaseSeconds: 0.01,
      backoffCapSeconds: 0.01,
    });
  });

  async function backendPid(pool: postgres.Sql): Promise<number> {
    const [row] = await pool<{ pid: number }[]>`select pg_backend_pid() as pid`;
    return row.pid;
  }

  async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  it('is reaped once its lease runs out, and its late complete_job is refused', async () => {
    const doomed = workerPool(`jobs-kill-${suffix}`, 1);
    const id = await enqueueJob(admin, kind, { step: 'kill' });
    const [job] = await claimJobs(doomed, { worker: `doomed-${suffix}`, kinds: [kind], batchSize: 1, leaseSeconds: 1 });
    expect(job.id).toBe(id);

    // Mid-job, the worker's connection dies; it sends no heartbeat.
    const [{ terminated }] = await admin<{ terminated: boolean }[]>`
      select pg_terminate_backend(${await backendPid(doomed)}) as terminated`;
    expect(terminated).toBe(true);

    await waitFor(async () => {
      const [row] = await admin<{ expired: boolean }[]>`
        select lease_expires_at < now() as expired from public.jobs where id = ${id}`;
      return row.expired;
    }, 'the lease to run out');
    // Test files run in parallel and reap too: whoever reaps it, it is reaped.
    await reapExpiredJobs(admin);
    const [reaped] = await admin<{ status: string; last_error: string; lease_token: string | null }[]>`
      select status, last_error, lease_token from public.jobs where id = ${id}`;
    expect(reaped.status).toBe('retry_scheduled');
    expect(reaped.last_error).toMatch(/^lease expired at .* worker doomed-/);
    expect(reaped.lease_token).toBeNull();

    // The old worker comes back (the pool reconnects) and reports success: refused, nothing changes.
    const late = await completeJob(doomed, id, job.leaseToken, { late: true }).then(() => undefined, (error) => error);
    expect(isLeaseLost(late)).toBe(true);
    expect(String(late)).toMatch(/its lease is no longer held \(the job is retry_scheduled/);
    const [after] = await admin<
      { status: string; result: unknown }[]
    >`select status, result from public.jobs where id = ${id}`;
    expect(after).toEqual({ status: 'retry_scheduled', result: null });

    // Another worker takes the retry and finishes it.
    const rescuer = workerPool(`jobs-rescue-${suffix}`, 1);
    let retry: Awaited<ReturnType<typeof claimJobs>>[number] | undefined;
    await waitFor(async () => {
      [retry] = await claimJobs(rescuer, {
        worker: `rescuer-${suffix}`,
        kinds: [kind],
        batchSize: 1,
        leaseSeconds: 30,
      });
      return retry !== undefined;
    }, 'the retry to be due');
    expect(retry?.attempt).toBe(2);
    await completeJob(rescuer, id, retry!.leaseToken, { by: 'rescuer' });

    const history = await admin<EventRow[]>`
      select event, from_status, to_status, attempt, worker, details from public.job_events where job_id = ${id} order by id`;
    expect(history.map((event) => [event.event, event.attempt, event.worker])).toEqual([
      ['queued', 0, null],
      ['assigned', 1, `doomed-${suffix}`],
      ['retry_scheduled', 1, `doomed-${suffix}`],
      ['assigned', 2, `rescuer-${suffix}`],
      ['succeeded', 2, `rescuer-${suffix}`],
    ]);
    expect(history[2].details.reason).toBe('lease_expired');
  });

  it('keeps its job when it reconnects and heartbeats: the reaper leaves a live worker alone', async () => {
    const survivor = workerPool(`jobs-survivor-${suffix}`, 1);
    const id = await enqueueJob(admin, kind, { step: 'survive' });
    const stop = new AbortController();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = runWorker({
      sql: survivor,
      workerId: `survivor-${suffix}`,
      kinds: [kind],
      leaseSeconds: 1,
      heartbeatIntervalMs: 200,
      pollIntervalMs: 20,
      signal: stop.signal,
      handlers: {
        [kind]: async () => {
          started();
          await released;
          return { survived: true };
        },
      },
    });
    await running;
    await admin`select pg_terminate_backend(${await backendPid(survivor)})`;
    // Well past the first lease: the reaper runs, the worker heartbeats on a new connection.
    for (let i = 0; i < 6; i++) {
      await sleep(300);
      await reapExpiredJobs(admin);
    }
    release();
    await waitFor(async () => {
      const [row] = await admin<{ status: string }[]>`select status from public.jobs where id = ${id}`;
      return row.status === 'succeeded';
    }, 'the job to succeed');
    stop.abort();
    const stats = await worker;
    expect(stats).toMatchObject({ succeeded: 1, leaseLost: 0 });
    const events = await admin<
      { event: string }[]
    >`select event from public.job_events where job_id = ${id} order by id`;
    expect(events.map((event) => event.event)).toEqual(['queued', 'assigned', 'succeeded']);
  });
});
