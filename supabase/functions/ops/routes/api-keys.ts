import { Hono } from 'hono';
import { z } from 'zod';
import { databaseIdentityOf } from '../../_shared/auth/caller.ts';
import { withIdentity } from '../../_shared/db.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readParams } from '../../_shared/validation.ts';

const apiKeyIdParams = z.object({ id: z.uuid('must be a UUID') });

export function apiKeyRoutes(deps: AppDependencies) {
  const app = new Hono<AppEnv>();

  // Revoke: from then on the key authenticates nothing. Revoking twice is a no-op.
  app.delete('/:id', async (c) => {
    const { id } = readParams(c, apiKeyIdParams);
    const result = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), async (tx) => {
      const [revoked] = await tx`
        update public.tenant_api_keys set revoked_at = now()
        where id = ${id} and revoked_at is null
        returning id, tenant_id, prefix, revoked_at`;
      if (revoked) {
        deps.apiKeys.forgetKey(id);
        return { ...revoked, already_revoked: false };
      }
      const [existing] = await tx`
        select id, tenant_id, prefix, revoked_at from public.tenant_api_keys where id = ${id}`;
      if (!existing) throw new HttpError('not_found', 'API key not found');
      if (existing.revoked_at) return { ...existing, already_revoked: true };
      throw new HttpError('forbidden', 'only an admin of this tenant can revoke its API keys');
    });
    return c.json(result);
  });

  return app;
}
