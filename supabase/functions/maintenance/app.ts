import { Hono } from 'hono';
import { z } from 'zod';
import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { HttpError } from '../_shared/errors.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import type { AppEnv } from '../_shared/hono-env.ts';
import { requireJobToken } from '../_shared/middleware/job-token.ts';
import { runScheduledSqlTask, scheduleStatus } from '../_shared/schedules/runs.ts';
import { readParams } from '../_shared/validation.ts';

const taskParams = z.object({ name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be a schedule name') });

/**
 * Scheduled maintenance over HTTP: `POST /maintenance/run/:name` runs a SQL
 * schedule of public.schedules (the reaper, the reservation reaper, the
 * usage rollup, the retention purge) and records the run; a scheduler calls
 * it with the service role and an X-Job-Token. `GET /maintenance/schedules`
 * shows every schedule with its latest run (service role).
 */
export function createMaintenanceApp(deps: AppDependencies) {
  const app = createFunctionApp('maintenance', deps);
  app.use('*', authenticate(deps, { allow: ['service_role'] }));

  app.get('/schedules', async (c) => c.json({ schedules: await scheduleStatus(deps.db) }));

  const run = new Hono<AppEnv>();
  run.use('*', requireJobToken(deps.config.jobTokens));
  run.post('/:name', async (c) => {
    const { name } = readParams(c, taskParams);
    const schedules = await scheduleStatus(deps.db);
    const schedule = schedules.find((candidate) => candidate.name === name);
    if (!schedule) throw new HttpError('not_found', `no schedule named ${name}`);
    if (schedule.kind !== 'sql') {
      throw new HttpError('validation_failed', `${name} is an HTTP schedule: POST ${schedule.http_path}`, {
        details: { http_path: schedule.http_path },
      });
    }
    const outcome = await runScheduledSqlTask(deps.db, name, 'http');
    if (outcome.outcome === 'failed') {
      deps.logger.warn('scheduled_task_failed', { request_id: c.get('requestId'), name, run_id: outcome.run_id });
      throw new HttpError(
        'internal_error',
        `scheduled task ${name} failed; see run ${outcome.run_id} in scheduled_runs`,
        {
          details: { run_id: outcome.run_id },
        },
      );
    }
    return c.json(outcome);
  });
  app.route('/run', run);
  return app;
}
