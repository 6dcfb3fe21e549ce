import { Hono } from 'hono';
import { z } from 'zod';
import { resolveTenant } from '../../_shared/auth/tenant.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readJsonBody } from '../../_shared/validation.ts';
import { lastFour, sealSecret, type SecretBinding } from '../../_shared/vault/envelope.ts';
import { createKey } from '../../_shared/vault/key-store.ts';
import { asCaller, keyWriteRefused, labelField, providerField, secretField } from '../key-access.ts';

const createKeyBody = z.object({
  provider: providerField,
  label: labelField.default('default'),
  secret: secretField,
  /** Service role: the tenant, or null/absent for a global key. Users: one of their tenants. */
  tenant_id: z.uuid('must be a UUID').nullable().optional(),
}).strict();

export type CreateKeyBody = z.infer<typeof createKeyBody>;

/** POST /keys: version 1 of a new key, encrypted before it reaches the database; 201 with metadata. */
export function createKeyRoute(deps: AppDependencies, ensureMasterKey: () => Promise<void>) {
  const app = new Hono<AppEnv>();

  app.post('/', async (c) => {
    const body = await readJsonBody(c, createKeyBody);
    const caller = c.get('caller');
    let tenantId: string | null;
    if (caller.kind === 'service_role') {
      tenantId = body.tenant_id ?? null;
    } else {
      if (body.tenant_id === null) throw new HttpError('forbidden', 'only the service role manages global keys');
      tenantId = (await resolveTenant(deps.db, caller, body.tenant_id ?? c.req.header('x-tenant-id'))).tenantId;
    }

    const binding: SecretBinding = {
      keyId: crypto.randomUUID(),
      tenantId,
      provider: body.provider,
      label: body.label,
      version: 1,
    };
    await ensureMasterKey();
    const sealed = await sealSecret(deps.kms, binding, body.secret);
    const created = await asCaller(deps, c, async (tx) => {
      try {
        return await createKey(tx, binding, sealed, lastFour(body.secret), c.get('requestId'));
      } catch (error) {
        keyWriteRefused(error, 'add keys');
      }
    });
    return c.json(created, 201);
  });

  return app;
}
