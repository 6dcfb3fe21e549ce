import { Hono } from 'hono';
import { z } from 'zod';
import { databaseIdentityOf } from '../../_shared/auth/caller.ts';
import { withIdentity } from '../../_shared/db.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { jobKindName } from '../../_shared/jobs/http.ts';
import { operatedTenants, requireDeadLetterOperator } from '../../_shared/jobs/operator-tenants.ts';
import { isoDateTime, readQuery } from '../../_shared/validation.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';

const listQuery = z.object({
  kind: jobKindName.optional(),
  tenant_id: z.uuid('must be a UUID').optional(),
  error: z.string().min(1).max(200, 'at most 200 characters').optional(),
  since: isoDateTime.optional(),
  until: isoDateTime.optional(),
  status: z.enum(['pending', 'requeued', 'all']).default('pending'),
  limit: z.string().regex(/^\d{1,4}$/, 'must be a whole number from 1 to 200').transform(Number)
    .pipe(z.number().min(1, 'must be at least 1').max(200, 'must be at most 200')).default(50),
  cursor: z.string().optional().transform((value, ctx) => {
    if (value === undefined) return undefined;
    const cursor = decodeCursor(value);
    if (!cursor) {
      ctx.addIssue({ code: 'custom', message: 'malformed: pass next_cursor from the previous page as is' });
      return z.NEVER;
    }
    return cursor;
  }),
}).strict().refine((query) => !query.since || !query.until || query.since <= query.until, {
  path: ['since'],
  message: 'must not be after until',
});

export interface DeadLetterItem {
  id: string;
  job_id: string;
  tenant_id: string | null;
  kind: string;
  payload: unknown;
  last_error: string | null;
  attempts: number;
  failed_at: string;
  requeued_at: string | null;
  requeued_by: string | null;
  requeue_reason: string | null;
  job_status: string;
}

export interface ListDeadLettersResponse {
  items: DeadLetterItem[];
  next_cursor: string | null;
}

function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}

/**
 * GET /dlq-list?kind=&tenant_id=&error=&since=&until=&status=&limit=&cursor=
 * Newest first. Users see the tenants they operate (RLS); tenant_id narrows
 * to one of them.
 */
export function listDeadLettersRoute(deps: AppDependencies) {
  const app = new Hono<AppEnv>();
  app.get('/', async (c) => {
    const caller = c.get('caller');
    requireDeadLetterOperator(caller);
    const query = readQuery(c, listQuery);
    if (query.kind) {
      const [known] = await deps.db`select 1 from public.job_kinds where kind = ${query.kind}`;
      if (!known) throw new HttpError('validation_failed', `kind: unknown job kind "${query.kind}"`, { param: 'kind' });
    }
    if (caller.kind === 'user') {
      const tenants = await operatedTenants(deps.db, caller.userId);
      if (tenants.length === 0) throw new HttpError('forbidden', 'you are not an operator or admin of any tenant');
      if (query.tenant_id && !tenants.includes(query.tenant_id)) {
        throw new HttpError('forbidden', 'you are not an operator or admin of this tenant');
      }
    }

    const rows = await withIdentity(
      deps.db,
      databaseIdentityOf(caller),
      (tx) =>
        tx<(DeadLetterItem & { cursor_at: string })[]>`
        select d.id, d.job_id, d.tenant_id, d.kind, d.payload, d.last_error, d.attempts, d.failed_at, d.requeued_at,
               d.requeued_by, d.requeue_reason, j.status as job_status,
               to_char(d.failed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as cursor_at
        from public.job_dead_letters d
        join public.jobs j on j.id = d.job_id
        where true
          ${query.status === 'pending' ? tx`and d.requeued_at is null` : tx``}
          ${query.status === 'requeued' ? tx`and d.requeued_at is not null` : tx``}
          ${query.kind ? tx`and d.kind = ${query.kind}` : tx``}
          ${query.tenant_id ? tx`and d.tenant_id = ${query.tenant_id}` : tx``}
          ${query.error ? tx`and d.last_error ilike ${likePattern(query.error)}` : tx``}
          ${query.since ? tx`and d.failed_at >= ${query.since}::timestamptz` : tx``}
          ${query.until ? tx`and d.failed_at < ${query.until}::timestamptz` : tx``}
          ${
          query.cursor
            ? tx`and (d.failed_at, d.id) < (${query.cursor.failedAt}::timestamptz, ${query.cursor.id}::uuid)`
            : tx``
        }
        order by d.failed_at desc, d.id desc
        limit ${query.limit + 1}`,
    );

    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    const body: ListDeadLettersResponse = {
      items: page.map(({ cursor_at: _cursorAt, ...item }) => item),
      next_cursor: rows.length > query.limit && last ? encodeCursor({ failedAt: last.cursor_at, id: last.id }) : null,
    };
    return c.json(body);
  });
  return app;
}
