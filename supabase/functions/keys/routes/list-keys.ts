import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readParams, readQuery } from '../../_shared/validation.ts';
import { listKeys } from '../../_shared/vault/key-store.ts';
import { asCaller, keyIdParams, providerField } from '../key-access.ts';

const listKeysQuery = z.object({
  /** A tenant's keys, or `global`; default every key the caller may see. */
  tenant_id: z.string().regex(
    /^(global|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i,
    'a UUID or "global"',
  )
    .optional(),
  provider: providerField.optional(),
}).strict();

/** GET /keys and GET /keys/:id: metadata only (versions, status, last4); never a secret or ciphertext. */
export function listKeysRoutes(deps: AppDependencies) {
  const app = new Hono<AppEnv>();

  app.get('/', async (c) => {
    const query = readQuery(c, listKeysQuery);
    const tenantId = query.tenant_id === 'global' ? null : query.tenant_id;
    const items = await asCaller(deps, c, (tx) => listKeys(tx, { tenantId, provider: query.provider }));
    return c.json({ items });
  });

  app.get('/:id', async (c) => {
    const { id } = readParams(c, keyIdParams);
    const [key] = await asCaller(deps, c, (tx) => listKeys(tx, { keyId: id }));
    if (!key) throw new HttpError('not_found', 'key not found');
    return c.json(key);
  });

  return app;
}
