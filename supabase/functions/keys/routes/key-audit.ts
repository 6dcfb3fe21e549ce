import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readParams, readQuery } from '../../_shared/validation.ts';
import { findKeyIdentity, listAudit } from '../../_shared/vault/key-store.ts';
import { asCaller, keyIdParams } from '../key-access.ts';

const auditQuery = z.object({
  limit: z.coerce.number().int('must be a whole number').min(1).max(500).default(100),
  /** Paging: the `next_before` of the previous page. */
  before: z.string().regex(/^[1-9][0-9]{0,18}$/, 'must be an audit id').optional(),
}).strict();

/** GET /keys/:id/audit: who created, rotated, disabled, decrypted or re-wrapped it, newest first. */
export function keyAuditRoute(deps: AppDependencies) {
  const app = new Hono<AppEnv>();

  app.get('/:id/audit', async (c) => {
    const { id } = readParams(c, keyIdParams);
    const query = readQuery(c, auditQuery);
    const items = await asCaller(deps, c, async (tx) => {
      if (!(await findKeyIdentity(tx, id))) throw new HttpError('not_found', 'key not found');
      return await listAudit(tx, id, { limit: query.limit, beforeId: query.before });
    });
    const next = items.length === query.limit ? items[items.length - 1].id : null;
    return c.json({ items, next_before: next });
  });

  return app;
}
