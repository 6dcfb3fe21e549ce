// The loop of `npm run worker` (and of `npm start`, which runs it): every
// interval, each enabled schedule of public.schedules that is due. It runs for
// days, so nothing may accumulate per tick: in particular the stop signal
// lives as long as the process, and a listener added to it per tick must go
// when its tick ends.
import type postgres from 'postgres';
import {
  runScheduledSqlTask,
  type ScheduleStatus,
  scheduleStatus,
} from '../../supabase/functions/_shared/schedules/runs.ts';

export type WorkerLog = (level: string, event: string, fields?: Record<string, unknown>) => void;

export interface MaintenanceWorkerOptions {
  sql: postgres.Sql;
  /** HTTP tasks (provider-health); without all three they are skipped. */
  http: { functionsUrl?: string; serviceRoleKey?: string; jobToken?: string };
  intervalMs: number;
  /** Run every selected schedule once, due or not, and return. */
  once: boolean;
  /** Only these schedules (default: every enabled one). */
  only?: readonly string[];
  /** Stops the loop after the current tick. */
  signal: AbortSignal;
  log: WorkerLog;
  /** Called after each tick (the soak test samples the process there). */
  onTick?: (tick: number) => void;
}

/**
 * Waits `ms`, or less when `signal` fires; either way the listener it adds to
 * `signal` is gone when it resolves.
 */
function waitUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const timer = setTimeout(finish, ms);
    signal.addEventListener('abort', finish, { once: true });
  });
}

/** Runs schedules until `signal` fires (or once); resolves with the count of failed ticks in a row at the end. */
export async function runMaintenanceWorker(options: MaintenanceWorkerOptions): Promise<{ failures: number }> {
  const { sql, http, once, only, signal, log } = options;

  /** Runs one schedule; true when it succeeded (or was skipped for want of HTTP credentials). */
  async function runSchedule(schedule: ScheduleStatus): Promise<boolean> {
    if (schedule.kind === 'sql') {
      const outcome = await runScheduledSqlTask(sql, schedule.name, 'worker');
      if (outcome.outcome === 'ok') {
        log('info', 'scheduled_task_ran', { name: schedule.name, run_id: outcome.run_id, result: outcome.result });
      } else {log('error', 'scheduled_task_failed', {
          name: schedule.name,
          run_id: outcome.run_id,
          error: outcome.error,
        });}
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
      // Its own timer, not the stop signal: a listener per call on that would accumulate.
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
  for (let tick = 1; !signal.aborted; tick++) {
    let failed = false;
    // A lost connection is one failed tick (backing off), not the end of the worker.
    const schedules = await scheduleStatus(sql).catch((error) => {
      failed = true;
      log('error', 'schedule_status_failed', { message: error instanceof Error ? error.message : String(error) });
      return [];
    });
    for (const schedule of schedules) {
      if (signal.aborted) break;
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
    options.onTick?.(tick);
    if (once) break;
    await waitUnlessAborted(options.intervalMs * Math.min(2 ** failures, 12), signal);
  }
  return { failures };
}
