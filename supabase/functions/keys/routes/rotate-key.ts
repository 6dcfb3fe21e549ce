import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readJsonBody, readParams } from '../../_shared/validation.ts';
import { lastFour, sealSecret } from '../../_shared/vault/envelope.ts';
import { findKeyIdentity, rotateKey } from '../../_shared/vault/key-store.ts';
import { asCaller, keyIdParams, keyWriteRefused, secretField } from '../key-access.ts';

/**
 * The default grace covers the longest upstream call (total_timeout_ms is at
 * most 15 minutes) plus the resolvers' cache TTL.
 */
const defaultGraceSeconds = 900;

const rotateKeyBody = z.object({
  secret: secretField,
  grace_seconds: z.number().int('must be a whole number').min(0).max(2_592_000).default(defaultGraceSeconds),
}).strict();

/**
 * POST /keys/:id/rotate: roll forward. The new version is active at once;
 * the old one stays decryptable (grace) until grace_until, then is disabled.
 */
export function rotateKeyRoute(
  deps: AppDependencies,
  ensureMasterKey: () => Promise<void>,
  onKeyChanged: (keyId: string) => void,
) {
  const app = new Hono<AppEnv>();

  app.post('/:id/rotate', async (c) => {
    const { id } = readParams(c, keyIdParams);
    const body = await readJsonBody(c, rotateKeyBody);
    const identity = await asCaller(deps, c, (tx) => findKeyIdentity(tx, id));
    if (!identity) throw new HttpError('not_found', 'key not found');

    // The next version is bound into the ciphertext; the SQL function refuses
    // it (409) if another rotation took that number meanwhile.
    const binding = { ...identity, version: identity.latestVersion + 1 };
    await ensureMasterKey();
    const sealed = await sealSecret(deps.kms, binding, body.secret);
    const rotated = await asCaller(deps, c, async (tx) => {
      try {
        return await rotateKey(tx, binding, sealed, lastFour(body.secret), body.grace_seconds, c.get('requestId'));
      } catch (error) {
        keyWriteRefused(error, 'rotate its keys');
      }
    });
    onKeyChanged(id);
    return c.json(rotated, 201);
  });

  return app;
}
