// `npm run bench:jobs -- [--json] [--jobs N] [--workers W] [--batch B] [--sweep]`
// The job queue at full speed, with the event log on (every transition writes
// its job_events row, as always): enqueue N jobs (enqueue_jobs, B per call,
// W connections), then W workers on separate connections claim B at a time
// (claim_jobs, FOR UPDATE SKIP LOCKED) and complete them (complete_jobs, or
// complete_job when B = 1) until the queue is empty. Prints jobs/s for both
// phases and p50/p99 of a claim call, checks every job succeeded with exactly
// three events, and writes bench/results/jobs-<date>.{json,md}.
// --sweep adds claim+complete runs at B = 1, 10, 50, 100, 200.
// DATABASE_URL: the server to use (a fresh database switchyard_bench_jobs is
// created on it); otherwise an embedded PostgreSQL 17 is started for the run.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import {
  claimJobs,
  completeJob,
  completeJobs,
  enqueueJobs,
  registerJobKind,
} from '../supabase/functions/_shared/jobs/index.ts';
import {
  exitOnSetupError,
  freePort,
  prepareDatabase,
  recreateDatabase,
  startEmbeddedPostgres,
} from './lib/database.ts';
import { repoRoot } from './lib/paths.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const option = (name: string, fallback: number, max: number) => {
  const index = args.indexOf(`--${name}`);
  const value = index >= 0 ? Number(args[index + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0 || value > max) {
    console.error(`bench:jobs: --${name} must be a whole number from 1 to ${max}`);
    process.exit(2);
  }
  return value;
};
const asJson = flag('json');
const jobCount = option('jobs', 20_000, 1_000_000);
const workerCount = option('workers', 4, 64);
const batchSize = option('batch', 100, 1000);
const sweep = flag('sweep');
const log = (line: string) => {
  if (!asJson) console.error(`[bench:jobs] ${line}`);
};

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

interface PhaseResult {
  phase: 'enqueue' | 'claim+complete';
  jobs: number;
  workers: number;
  batch: number;
  seconds: number;
  jobs_per_second: number;
  /** Per claim_jobs call (claim+complete only). */
  claim_latency_ms?: { p50: number; p99: number; calls: number };
}

function connect(url: string, name: string) {
  return postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: name } });
}

async function enqueuePhase(url: string, kind: string, count: number): Promise<PhaseResult> {
  const pools = Array.from({ length: workerCount }, (_, index) => connect(url, `bench-enqueue-${index}`));
  let next = 0;
  const started = performance.now();
  await Promise.all(pools.map(async (sql) => {
    while (next < count) {
      const size = Math.min(batchSize, count - next);
      const first = next;
      next += size;
      await enqueueJobs(sql, Array.from({ length: size }, (_, i) => ({ kind, payload: { n: first + i } })));
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(pools.map((sql) => sql.end()));
  return {
    phase: 'enqueue',
    jobs: count,
    workers: workerCount,
    batch: batchSize,
    seconds: round(seconds, 3),
    jobs_per_second: Math.round(count / seconds),
  };
}

async function claimCompletePhase(url: string, kind: string, batch: number): Promise<PhaseResult> {
  const pools = Array.from({ length: workerCount }, (_, index) => connect(url, `bench-worker-${index}`));
  // Open the connections before the clock starts.
  await Promise.all(pools.map((sql) => sql`select 1`));
  const latencies: number[] = [];
  let done = 0;
  const started = performance.now();
  await Promise.all(pools.map(async (sql, index) => {
    for (;;) {
      const claimStarted = performance.now();
      const jobs = await claimJobs(sql, {
        worker: `bench-${index}`,
        kinds: [kind],
        batchSize: batch,
        leaseSeconds: 60,
      });
      latencies.push(performance.now() - claimStarted);
      if (jobs.length === 0) return;
      if (batch === 1) await completeJob(sql, jobs[0].id, jobs[0].leaseToken, null);
      else {
        const outcomes = await completeJobs(sql, jobs.map((job) => ({ id: job.id, leaseToken: job.leaseToken })));
        if (outcomes.some((outcome) => outcome.status !== 'succeeded')) {
          throw new Error('a benchmark job lost its lease');
        }
      }
      done += jobs.length;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(pools.map((sql) => sql.end()));
  return {
    phase: 'claim+complete',
    jobs: done,
    workers: workerCount,
    batch,
    seconds: round(seconds, 3),
    jobs_per_second: Math.round(done / seconds),
    claim_latency_ms: {
      p50: round(percentile(latencies, 0.5)),
      p99: round(percentile(latencies, 0.99)),
      calls: latencies.length,
    },
  };
}

const tempDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-bench-jobs-'));
let stopDatabase: (() => Promise<void>) | undefined;
try {
  let serverUrl = process.env.DATABASE_URL;
  let server = 'DATABASE_URL';
  if (!serverUrl) {
    log('starting an embedded PostgreSQL 17');
    const embedded = await startEmbeddedPostgres({
      dataDir: path.join(tempDir, 'pgdata'),
      port: await freePort(),
      persistent: false,
    }).catch(exitOnSetupError);
    stopDatabase = embedded.stop;
    serverUrl = embedded.url;
    server = 'embedded PostgreSQL';
  }
  const url = await recreateDatabase(serverUrl, 'switchyard_bench_jobs');
  log('applying the migrations');
  await prepareDatabase(url, { seed: false });
  const admin = connect(url, 'bench-admin');
  const [info] = await admin<{ version: string; synchronous_commit: string; shared_buffers: string }[]>`
    select current_setting('server_version') as version, current_setting('synchronous_commit') as synchronous_commit,
           current_setting('shared_buffers') as shared_buffers`;

  const runs: { kind: string; batch: number }[] = [{ kind: 'bench.noop', batch: batchSize }];
  if (sweep) { for (const batch of [1, 10, 50, 100, 200]) runs.push({ kind: `bench.sweep-${batch}`, batch }); }
  const results: PhaseResult[] = [];
  const checks: { kind: string; jobs: number; succeeded: number; events: number; ok: boolean }[] = [];
  for (const run of runs) {
    await registerJobKind(admin, { kind: run.kind, description: 'benchmark', maxAttempts: 1, timeoutSeconds: 60 });
    // Batch 1 moves one job per round trip: fewer jobs keep the run short.
    const count = run.batch === 1 ? Math.min(jobCount, 5_000) : jobCount;
    log(`${run.kind}: enqueueing ${count} jobs (${workerCount} connections, ${batchSize} per call)`);
    const enqueued = await enqueuePhase(url, run.kind, count);
    if (run.kind === 'bench.noop') results.push(enqueued);
    await admin`vacuum analyze public.jobs`;
    log(`${run.kind}: claim+complete with ${workerCount} workers, batch ${run.batch}`);
    results.push(await claimCompletePhase(url, run.kind, run.batch));
    const [check] = await admin<{ succeeded: number; events: number }[]>`
      select count(*) filter (where j.status = 'succeeded')::int as succeeded,
             (select count(*)::int from public.job_events e join public.jobs k on k.id = e.job_id where k.kind = ${run.kind}) as events
      from public.jobs j where j.kind = ${run.kind}`;
    checks.push({ kind: run.kind, jobs: count, ...check, ok: check.succeeded === count && check.events === 3 * count });
  }
  await admin.end();

  const report = {
    benchmark: 'jobs',
    at: new Date().toISOString(),
    machine: {
      cores: os.cpus().length,
      cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
      postgres: info.version,
      server,
      synchronous_commit: info.synchronous_commit,
      shared_buffers: info.shared_buffers,
      node: process.version,
    },
    parameters: { jobs: jobCount, workers: workerCount, batch: batchSize, event_log: true },
    results,
    checks,
  };

  const markdown = [
    `# Switchyard job queue benchmark, ${report.at}`,
    '',
    `${report.machine.cores} cores (${report.machine.cpu}), PostgreSQL ${info.version} (${server}), synchronous_commit=${info.synchronous_commit}, ` +
    `shared_buffers=${info.shared_buffers}; event log on (one job_events row per transition).`,
    '',
    '| phase | jobs | workers | batch | seconds | jobs/s | claim p50 ms | claim p99 ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.map((result) =>
      `| ${result.phase} | ${result.jobs} | ${result.workers} | ${result.batch} | ${result.seconds} | **${result.jobs_per_second}** | ` +
      `${result.claim_latency_ms?.p50 ?? '-'} | ${result.claim_latency_ms?.p99 ?? '-'} |`
    ),
    '',
    ...checks.map((check) =>
      `${check.kind}: ${check.succeeded}/${check.jobs} succeeded, ${check.events} events (${
        check.ok ? 'one per transition: OK' : 'MISMATCH'
      })`
    ),
    '',
  ].join('\n');

  const resultsDir = path.join(repoRoot, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const stamp = `jobs-${report.at.replace(/[:.]/g, '-')}`;
  await writeFile(path.join(resultsDir, `${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(resultsDir, `${stamp}.md`), markdown);
  if (asJson) console.log(JSON.stringify(report, null, 2));
  else {
    console.log(markdown);
    console.log(`written: bench/results/${stamp}.{json,md}`);
  }
  if (checks.some((check) => !check.ok)) process.exitCode = 1;
} finally {
  await stopDatabase?.();
  await rm(tempDir, { recursive: true, force: true });
}
