// `npm run worker -- [--interval 5] [--once]`: the project's own maintenance
// where pg_cron is absent, every few seconds: reap_expired_jobs() (jobs whose
// worker stopped heartbeating go to a retry or the DLQ) and, where the
// economics migrations are applied, reap_expired_reservations() (budget
// reservations never settled are released). Retention is not built yet.
// Database: DATABASE_URL, else the running local stack's. Stops on Ctrl-C /
// SIGTERM after the current run.
import postgres from 'postgres';
import { reapExpiredJobs } from '../supabase/functions/_shared/jobs/index.ts';
import { localStackStatus } from './lib/local-status.ts';
import { refreshModelReputation } from './lib/reputation.ts';

const args = process.argv.slice(2);
const intervalIndex = args.indexOf('--interval');
const intervalSeconds = intervalIndex >= 0 ? Number(args[intervalIndex + 1]) : 5;
if (!Number.isFinite(intervalSeconds) || intervalSeconds <= 0 || intervalSeconds > 3600) {
  console.error('worker: --interval must be a number of seconds between 0 and 3600');
  process.exit(2);
}
const once = args.includes('--once');

const databaseUrl = process.env.DATABASE_URL ?? localStackStatus()?.DB_URL;
if (!databaseUrl) {
  console.error('worker: set DATABASE_URL, or start the local stack (`npm start`)');
  process.exit(2);
}

const log = (level: string, event: string, fields: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ level, event, at: new Date().toISOString(), ...fields }));

const sql = postgres(databaseUrl, {
  max: 1,
  onnotice: () => {},
  prepare: new URL(databaseUrl).port !== '6543',
  connection: { application_name: 'switchyard-maintenance-worker' },
});
const stop = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort());

const [found] = await sql<{ pg_cron: boolean; reservations: boolean }[]>`
  select exists (select 1 from pg_extension where extname = 'pg_cron') as pg_cron,
         to_regprocedure('public.reap_expired_reservations(integer)') is not null as reservations`;

/** Each maintenance task: its log event, and one run of it (how many rows it handled). */
const tasks: { name: string; run: () => Promise<number> }[] = [
  { name: 'expired_jobs_reaped', run: () => reapExpiredJobs(sql) },
  { name: 'model_reputation_refreshed', run: () => refreshModelReputation(sql) },
];
if (found.reservations) {
  tasks.push({
    name: 'expired_reservations_released',
    run: async () => {
      const [row] = await sql<{ released: number }[]>`select public.reap_expired_reservations() as released`;
      return row.released;
    },
  });
}
log('info', 'maintenance_worker_started', {
  interval_seconds: intervalSeconds,
  tasks: tasks.map((task) => task.name),
  pg_cron: found.pg_cron
    ? 'installed: the job reaper is also scheduled in the database; running it here too is harmless'
    : 'absent',
});

let failures = 0;
while (!stop.signal.aborted) {
  let failed = false;
  for (const task of tasks) {
    try {
      const count = await task.run();
      if (count > 0 || once) log('info', task.name, { count });
    } catch (error) {
      failed = true;
      log('error', `${task.name}_failed`, { message: error instanceof Error ? error.message : String(error) });
    }
  }
  failures = failed ? failures + 1 : 0;
  if (once) break;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, intervalSeconds * 1000 * Math.min(2 ** failures, 12));
    stop.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
await sql.end({ timeout: 5 });
log('info', 'maintenance_worker_stopped');
process.exit(failures > 0 && once ? 1 : 0);
