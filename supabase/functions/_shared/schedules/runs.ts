import type { Database } from '../db.ts';

/** A schedule of public.schedules with its latest run (public.schedule_status()). */
export interface ScheduleStatus {
  name: string;
  kind: 'sql' | 'http';
  interval_seconds: number;
  http_path: string | null;
  enabled: boolean;
  last_started_at: Date | null;
  last_outcome: 'ok' | 'failed' | null;
  last_error: string | null;
  last_success_at: Date | null;
  due: boolean;
}

/** What run_scheduled_task answers: the run and the task's outcome. */
export interface ScheduledTaskOutcome {
  run_id: number;
  name: string;
  outcome: 'ok' | 'failed';
  error?: string;
  result?: unknown;
}

export async function scheduleStatus(db: Database): Promise<ScheduleStatus[]> {
  return await db<ScheduleStatus[]>`
    select name, kind, interval_seconds, http_path, enabled, last_started_at, last_outcome, last_error,
           last_success_at, due
    from public.schedule_status()`;
}

/** Runs a SQL schedule in the database; the run is recorded there, a failure returned (not thrown). */
export async function runScheduledSqlTask(db: Database, name: string, runner: string): Promise<ScheduledTaskOutcome> {
  const [row] = await db<{ outcome: ScheduledTaskOutcome }[]>`
    select public.run_scheduled_task(${name}, ${runner}) as outcome`;
  return row.outcome;
}

/**
 * Records a run of an HTTP schedule around `work`: started before, finished
 * ok with its result, or failed with the error's class name and a short
 * message (the error is thrown on).
 */
export async function recordScheduledRun<T>(
  db: Database,
  name: string,
  runner: string,
  work: () => Promise<T>,
  summarize: (result: T) => unknown = () => null,
): Promise<T> {
  const [{ run_id: runId }] = await db<{ run_id: string }[]>`
    select public.start_scheduled_run(${name}, ${runner})::text as run_id`;
  try {
    const result = await work();
    await db`select public.finish_scheduled_run(${runId}::bigint, 'ok', null, ${db.json(summarize(result) as never)})`;
    return result;
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 500) : 'failed';
    await db`select public.finish_scheduled_run(${runId}::bigint, 'failed', ${reason}, null)`;
    throw error;
  }
}
