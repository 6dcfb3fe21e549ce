import { Hono } from 'hono';
import { z } from 'zod';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readOptionalJsonBody, readParams } from '../../_shared/validation.ts';
import { disableVersion } from '../../_shared/vault/key-store.ts';
import { asCaller, keyWriteRefused } from '../key-access.ts';

const versionParams = z.object({
  id: z.uuid('must be a UUID'),
  version: z.string().regex(/^[1-9][0-9]{0,8}$/, 'must be a version number (1, 2, …)').transform(Number),
});

const disableBody = z.object({
  /** Needed to disable the active version, which leaves the key with none. */
  force: z.boolean().default(false),
  reason: z.string().trim().min(1).max(200).optional(),
}).strict();

/** POST /keys/:id/versions/:version/disable: emergency revocation, refused from this moment on. */
export function disableVersionRoute(deps: AppDependencies, onKeyChanged: (keyId: string) => void) {
  const app = new Hono<AppEnv>();

  app.post('/:id/versions/:version/disable', async (c) => {
    const { id, version } = readParams(c, versionParams);
    const body = await readOptionalJsonBody(c, disableBody);
    const disabled = await asCaller(deps, c, async (tx) => {
      try {
        return await disableVersion(tx, id, version, {
          force: body.force,
          reason: body.reason,
          requestId: c.get('requestId'),
        });
      } catch (error) {
        keyWriteRefused(error, 'disable its key versions');
      }
    });
    onKeyChanged(id);
    return c.json(disabled);
  });

  return app;
}
