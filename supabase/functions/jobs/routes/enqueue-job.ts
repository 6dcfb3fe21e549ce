import { Hono } from 'hono';
import { z } from 'zod';
import { resolveTenant } from '../../_shared/auth/tenant.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { idempotencyKeyOf, jobFunctionError, jobKindName } from '../../_shared/jobs/http.ts';
import { isoDateTime, readJsonBody } from '../../_shared/validation.ts';
import { jobById, type JobView } from '../job-view.ts';

const enqueueJobBody = z.object({
  kind: jobKindName,
  payload: z.json().default({}),
  run_at: isoDateTime.optional(),
  priority: z.number().int('must be a whole number').min(-32768).max(32767).optional(),
  max_attempts: z.number().int('must be a whole number').min(1).max(100).optional(),
  timeout_seconds: z.number().int('must be a whole number').min(1).max(86400).optional(),
}).strict();

export type EnqueueJobBody = z.infer<typeof enqueueJobBody>;
export type EnqueueJobResponse = JobView;

/**
 * POST /jobs: enqueue a job for the caller's tenant. With an Idempotency-Key
 * the same key returns the job it created first (200, Idempotent-Replayed)
 * instead of a second one (201).
 */
export function enqueueJobRoute(deps: AppDependencies) {
  const app = new Hono<AppEnv>();
  app.post('/', async (c) => {
    const caller = c.get('caller');
    const idempotencyKey = idempotencyKeyOf(c);
    const body = await readJsonBody(c, enqueueJobBody);
    const tenant = await resolveTenant(deps.db, caller, c.req.header('x-tenant-id'));
    let created: boolean;
    let id: string;
    try {
      ({ id, created } = await deps.db.begin(async (tx) => {
        const [row] = await tx<{ id: string }[]>`
          select public.enqueue_job(${body.kind}, ${
          JSON.stringify(body.payload)
        }::text::jsonb, ${tenant.tenantId}::uuid,
            ${body.run_at ?? null}::timestamptz, ${body.priority ?? 0}::integer, ${body.max_attempts ?? null}::integer,
            ${idempotencyKey ?? null}::text, ${body.timeout_seconds ?? null}::integer) as id`;
        // A job created by this transaction carries its start time.
        const [job] = await tx<{ created: boolean }[]>`
          select created_at = now() as created from public.jobs where id = ${row.id}`;
        return { id: row.id, created: job.created };
      }));
    } catch (error) {
      jobFunctionError(error);
    }
    const job = await jobById(deps.db, id);
    if (!created) c.header('idempotent-replayed', 'true');
    return c.json(job, created ? 201 : 200);
  });
  return app;
}
