import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { actorOf, jobFunctionError } from '../../_shared/jobs/http.ts';
import { readOptionalJsonBody, readParams } from '../../_shared/validation.ts';
import { visibleJob } from '../job-view.ts';

const jobIdParams = z.object({ id: z.uuid('must be a UUID') });
const cancelJobBody = z.object({ reason: z.string().trim().min(1).max(1000).optional() }).strict();

/**
 * POST /jobs/:id/cancel: cancels a queued or retry_scheduled job (409 for any
 * other status; cancelling a cancelled job answers it as is).
 */
export function cancelJobRoute(deps: AppDependencies) {
  const app = new Hono<AppEnv>();
  app.post('/:id/cancel', async (c) => {
    const { id } = readParams(c, jobIdParams);
    const caller = c.get('caller');
    const body = await readOptionalJsonBody(c, cancelJobBody);
    await visibleJob(deps.db, caller, id, false);
    const reason = `${body.reason ?? 'cancelled through the API'} (by ${actorOf(caller)})`;
    try {
      await deps.db`select public.cancel_job(${id}::uuid, ${reason})`;
    } catch (error) {
      jobFunctionError(error);
    }
    return c.json(await visibleJob(deps.db, caller, id, true));
  });
  return app;
}
