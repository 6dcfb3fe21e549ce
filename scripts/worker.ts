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
import {
  runScheduledSqlTask,
  type ScheduleStatus,
  scheduleStatus,
} from '../supabase/functions/_shared/schedules/runs.ts';
import { localStackStatus } from './lib/local-status.ts';

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

/** Runs one schedule; true when it succeeded (or was skipped for want of HTTP credentials). */
async function runSchedule(schedule: ScheduleStatus): Promise<boolean> {
  if (schedule.kind === 'sql') {
    const outcome = await runScheduledSqlTask(sql, schedule.name, 'worker');
    if (outcome.outcome === 'ok') {
      log('info', 'scheduled_task_ran', { name: schedule.name, run_id: outcome.run_id, result: outcome.result });
    } else log('error', 'scheduled_task_failed', { name: schedule.name, run_id: outcome.run_id, error: outcome.error });
    return outcome.outcome === 'ok';
  }
  if (!http.functionsUrl || !http.serviceRoleKey || !http.jobToken) {
    if (once) {
      log('warn', 'scheduled_task_skipped', {
        name: schedule.name,
        reason: 'no FUNCTIONS_URL, SERVICE_ROLE_KEY or JOB_TOKEN',
      });
    }
    return true;
  }
  const response = await fetch(`${http.functionsUrl}${schedule.http_path}`, {
    method: 'POST',
    headers: {
      apikey: http.serviceRoleKey,
      authorization: `Bearer ${http.serviceRoleKey}`,
      'x-job-token': http.jobToken,
      'content-type': 'application/json',
    },
    body: '{}',
    signal: AbortSignal.timeout(30_000),
  });
  const body = await response.text();
  if (response.ok) {
    log('info', 'scheduled_task_ran', { name: schedule.name, status: response.status });
    return true;
  }
  // Error bodies follow the error contract (code and message, never a secret).
  log('error', 'scheduled_task_failed', { name: schedule.name, status: response.status, body: body.slice(0, 500) });
  return false;
}

let failures = 0;
while (!stop.signal.aborted) {
  let failed = false;
  // A lost connection is one failed tick (backing off), not the end of the worker.
  const schedules = await scheduleStatus(sql).catch((error) => {
    failed = true;
    log('error', 'schedule_status_failed', { message: error instanceof Error ? error.message : String(error) });
    return [];
  });
  for (const schedule of schedules) {
    if (stop.signal.aborted) break;
    const selected = only ? only.includes(schedule.name) : schedule.enabled;
    if (!selected || (!once && !schedule.due)) continue;
    try {
      if (!(await runSchedule(schedule))) failed = true;
    } catch (error) {
      failed = true;
      log('error', 'scheduled_task_failed', {
        name: schedule.name,
        message: error instanceof Error ? error.message : String(error),
      });
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
