import type { ReadinessCheck } from './checks.ts';

interface ScheduleLateness {
  name: string;
  interval_seconds: number;
  last_success_at: Date | null;
  /** Seconds since the last success, else since the scheduler's first recorded run. */
  age_seconds: number;
  runs_recorded: boolean;
}

/**
 * Every enabled schedule of public.schedules succeeded within
 * READINESS_SCHEDULE_LATE_FACTOR times its interval. A schedule that never
 * succeeded counts from the first run any scheduler recorded. No run ever
 * recorded (no pg_cron, no `npm run worker`): skip, or fail with
 * READINESS_SCHEDULES_REQUIRED=true.
 */
export const schedulesOnTime: ReadinessCheck = {
  name: 'schedules_on_time',
  async run({ deps, settings }) {
    const [table] = await deps.db<{ exists: boolean }[]>`
      select to_regprocedure('public.schedule_status()') is not null as exists`;
    if (!table.exists) {
      return { status: 'skip', detail: 'function public.schedule_status() does not exist yet (operations issue)' };
    }
    const factor = settings.scheduleLateFactor ?? 3;
    const rows = await deps.db<ScheduleLateness[]>`
      with first_run as (select min(started_at) as at from public.scheduled_runs)
      select s.name, s.interval_seconds, s.last_success_at,
             extract(epoch from now() - coalesce(s.last_success_at, f.at))::float8 as age_seconds,
             f.at is not null as runs_recorded
      from public.schedule_status() s cross join first_run f
      where s.enabled
      order by s.name`;
    if (rows.length === 0) return { status: 'pass', detail: 'no schedule is enabled' };
    if (!rows[0].runs_recorded) {
      const detail = 'no scheduled run recorded yet (pg_cron, or `npm run worker`)';
      return settings.schedulesRequired
        ? { status: 'fail', detail: `${detail}; READINESS_SCHEDULES_REQUIRED is true` }
        : { status: 'skip', detail };
    }
    const late = rows.filter((row) => row.age_seconds > factor * row.interval_seconds);
    if (late.length > 0) {
      const names = late.map((row) =>
        `${row.name} (${
          row.last_success_at ? `last success ${Math.round(row.age_seconds)} s ago` : 'never succeeded'
        }, every ${row.interval_seconds} s)`
      );
      return { status: 'fail', detail: `late (over ${factor}x the interval): ${names.join(', ')}` };
    }
    return { status: 'pass', detail: `${rows.length} schedules ran within ${factor}x their interval` };
  },
};
