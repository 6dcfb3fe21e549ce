import { Hono } from 'hono';
import type { AppEnv } from '../../_shared/hono-env.ts';
import {
  deleteStoredResponse,
  findStoredResponse,
  responseNotFound,
} from '../../_shared/responses/stored-responses.ts';
import { requestTenant, type RouterServices } from '../services.ts';

/**
 * GET and DELETE /v1/responses/{id}: the caller's tenant's stored responses.
 * Another tenant's id is answered exactly as one that does not exist (404).
 */
export function storedResponseRoutes(services: RouterServices) {
  const app = new Hono<AppEnv>();
  app.get('/:id', async (c) => {
    const { tenantId } = await requestTenant(c, services);
    const id = c.req.param('id');
    const response = await findStoredResponse(services.deps.db, tenantId, id);
    if (!response) throw responseNotFound(id);
    return c.json(response);
  });
  app.delete('/:id', async (c) => {
    const { tenantId } = await requestTenant(c, services);
    const id = c.req.param('id');
    if (!(await deleteStoredResponse(services.deps.db, tenantId, id))) throw responseNotFound(id);
    return c.json({ id, object: 'response', deleted: true });
  });
  return app;
}
