// `npm run worker -- [--interval 5] [--once] [--task NAME,...]`: runs the
// schedules of public.schedules locally, where pg_cron is absent (the same
// definition pg_cron uses on Supabase). Every few seconds it runs each
// enabled schedule that is due (its interval passed since its last run):
// SQL tasks in the database (public.run_scheduled_task, recorded in
// scheduled_runs), HTTP tasks (provider-health) by posting to the function
// with the service role and X-Job-Token (the endpoint records the run).
// `--once` runs every enabled schedule (or those named by `--task`) once,
// due or not, and exits 1 if one failed.
// Database: DATABASE_URL, else the running local stack's. HTTP tasks:
// FUNCTIONS_URL, SERVICE_ROLE_KEY, JOB_TOKEN (one of the functions'
// JOB_TOKENS), else the local stack's; without them HTTP tasks are skipped
// (logged). Stops on Ctrl-C / SIGTERM after the current run.
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { scheduleStatus } from '../supabase/functions/_shared/schedules/runs.ts';
import { localStackStatus } from './lib/local-status.ts';
import { runMaintenanceWorker } from './lib/maintenance-worker.ts';

let parsed;
try {
  parsed = parseArgs({
    options: { interval: { type: 'string', default: '5' }, once: { type: 'boolean' }, task: { type: 'string' } },
  }).values;
} catch (error) {
  console.error(`worker: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(2);
}
const intervalSeconds = Number(parsed.interval);
if (!Number.isFinite(intervalSeconds) || intervalSeconds <= 0 || intervalSeconds > 3600) {
  console.error('worker: --interval must be a number of seconds between 0 and 3600');
  process.exit(2);
}
const once = parsed.once === true;
const only = parsed.task?.split(',').map((name) => name.trim()).filter(Boolean);
if (parsed.task !== undefined && (!only || only.length === 0)) {
  console.error('worker: --task needs schedule names (comma-separated)');
  process.exit(2);
}

const local = localStackStatus();
const databaseUrl = process.env.DATABASE_URL ?? local?.DB_URL;
if (!databaseUrl) {
  console.error('worker: set DATABASE_URL, or start the local stack (`npm start`)');
  process.exit(2);
}
const http = {
  functionsUrl: process.env.FUNCTIONS_URL ?? local?.FUNCTIONS_URL,
  serviceRoleKey: process.env.SERVICE_ROLE_KEY ?? local?.SERVICE_ROLE_KEY,
  jobToken: process.env.JOB_TOKEN ?? local?.JOB_TOKEN,
};

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

const [found] = await sql<{ pg_cron: boolean }[]>`
  select exists (select 1 from pg_extension where extname = 'pg_cron') as pg_cron`;
const known = await scheduleStatus(sql);
const unknown = (only ?? []).filter((name) => !known.some((schedule) => schedule.name === name));
if (unknown.length > 0) {
  console.error(`worker: no schedule named ${unknown.join(', ')} (known: ${known.map((s) => s.name).join(', ')})`);
  await sql.end({ timeout: 5 });
  process.exit(2);
}
log('info', 'maintenance_worker_started', {
  interval_seconds: intervalSeconds,
  schedules: known.filter((schedule) => schedule.enabled).map((schedule) => schedule.name),
  http_tasks: http.functionsUrl && http.serviceRoleKey && http.jobToken
    ? http.functionsUrl
    : 'skipped (no FUNCTIONS_URL, SERVICE_ROLE_KEY or JOB_TOKEN)',
  pg_cron: found.pg_cron
    ? 'installed: pg_cron runs these schedules too; running them here as well is harmless'
    : 'absent',
});

const { failures } = await runMaintenanceWorker({
  sql,
  http,
  intervalMs: intervalSeconds * 1000,
  once,
  only,
  signal: stop.signal,
  log,
});
await sql.end({ timeout: 5 });
log('info', 'maintenance_worker_stopped');
process.exit(failures > 0 && once ? 1 : 0);
