import { Hono } from 'hono';
import { z } from 'zod';
import { databaseIdentityOf } from '../../_shared/auth/caller.ts';
import { resolveTenant } from '../../_shared/auth/tenant.ts';
import { withIdentity } from '../../_shared/db.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { actorOf, idempotencyKeyOf, jobFunctionError, jobKindName } from '../../_shared/jobs/http.ts';
import { deadLetterRoles, requireDeadLetterOperator } from '../../_shared/jobs/operator-tenants.ts';
import { isoDateTime, readJsonBody } from '../../_shared/validation.ts';

/** At most this many dead letters per request, whatever `max` says. */
const maxRequeueCap = 1000;

const retryFilter = z.object({
  kind: jobKindName.optional(),
  since: isoDateTime.optional(),
  until: isoDateTime.optional(),
  error: z.string().min(1).max(200, 'at most 200 characters').optional(),
  tenant_id: z.uuid('must be a UUID').optional(),
}).strict().refine((filter) => !filter.since || !filter.until || filter.since <= filter.until, {
  path: ['since'],
  message: 'must not be after until',
});

const retryBody = z.object({
  ids: z.array(z.uuid('must be a UUID')).min(1, 'give at least one id').max(
    maxRequeueCap,
    `at most ${maxRequeueCap} ids`,
  )
    .optional(),
  filter: retryFilter.optional(),
  reason: z.string({ error: 'required: say why these jobs are requeued' }).trim().min(
    1,
    'required: say why these jobs are requeued',
  )
    .max(1000, 'at most 1000 characters'),
  dry_run: z.boolean().default(false),
  max: z.number().int('must be a whole number').min(1, 'must be at least 1')
    .max(maxRequeueCap, `must be at most ${maxRequeueCap}`).default(100),
}).strict().superRefine((body, ctx) => {
  if ((body.ids === undefined) === (body.filter === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['ids'], message: 'give either ids or filter (not both)' });
  }
  if (body.ids && body.ids.length > body.max) {
    ctx.addIssue({ code: 'custom', path: ['ids'], message: `more ids (${body.ids.length}) than max (${body.max})` });
  }
});

export type RetryDeadLettersBody = z.infer<typeof retryBody>;

export interface RetryDeadLettersResponse {
  requeued: string[];
  skipped: { id: string; reason: string }[];
  dry_run: boolean;
  replayed?: boolean;
}

/**
 * POST /dlq-retry {ids | filter, reason, dry_run?, max?} (+ Idempotency-Key).
 * Requeued jobs keep their ids; a dead letter already requeued is skipped,
 * so the same request twice requeues once. A retried request with the same
 * Idempotency-Key gets the first answer back (Idempotent-Replayed: true).
 */
export function retryDeadLettersRoute(deps: AppDependencies) {
  const app = new Hono<AppEnv>();
  app.post('/', async (c) => {
    const caller = c.get('caller');
    requireDeadLetterOperator(caller);
    const idempotencyKey = idempotencyKeyOf(c);
    const body = await readJsonBody(c, retryBody);
    const headerTenant = c.req.header('x-tenant-id');
    if (headerTenant && body.filter?.tenant_id && headerTenant !== body.filter.tenant_id) {
      throw new HttpError('validation_failed', 'filter.tenant_id: differs from x-tenant-id', {
        param: 'filter.tenant_id',
      });
    }
    // A user acts on one tenant they operate; the service role on one it names, or on all.
    // Under the caller's identity, so the database decides: requeue_dead_letters checks a
    // user operates the tenant, and records them as the actor.
    const requested = headerTenant ?? body.filter?.tenant_id;
    const response = await withIdentity(deps.db, databaseIdentityOf(caller), async (tx) => {
      const tenantId = caller.kind === 'user' || requested !== undefined
        ? (await resolveTenant(tx, caller, requested, { roles: deadLetterRoles })).tenantId
        : null;
      try {
        const [row] = await tx<{ response: RetryDeadLettersResponse }[]>`
          select public.requeue_dead_letters(${body.ids ?? null}::uuid[],
            ${body.filter ? JSON.stringify(body.filter) : null}::text::jsonb, ${actorOf(caller)}, ${body.reason},
            ${idempotencyKey ?? null}::text, ${body.dry_run}, ${body.max}::integer, ${tenantId}::uuid) as response`;
        return row.response;
      } catch (error) {
        jobFunctionError(error, 'filter.kind');
      }
    });
    if (response.replayed) c.header('idempotent-replayed', 'true');
    return c.json(response);
  });
  return app;
}
