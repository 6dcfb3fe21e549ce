import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readParams } from '../../_shared/validation.ts';
import { type JobEventView, type JobView, visibleJob } from '../job-view.ts';

const jobIdParams = z.object({ id: z.uuid('must be a UUID') });

export type GetJobResponse = JobView & { events: JobEventView[] };

/** GET /jobs/:id: the job's status and every event of its history, oldest first. */
export function getJobRoute(deps: AppDependencies) {
  const app = new Hono<AppEnv>();
  app.get('/:id', async (c) => {
    const { id } = readParams(c, jobIdParams);
    return c.json(await visibleJob(deps.db, c.get('caller'), id, true));
  });
  return app;
}
