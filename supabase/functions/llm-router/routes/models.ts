import { Hono } from 'hono';
import type { AppEnv } from '../../_shared/hono-env.ts';
import type { ModelsList } from '../../_shared/openai/types.ts';
import { requestTenant, type RouterServices } from '../services.ts';

/** GET /v1/models: the aliases this caller can ask for (enabled models and its policies' aliases). */
export function modelRoutes(services: RouterServices) {
  const app = new Hono<AppEnv>();
  app.get('/', async (c) => {
    const { tenantId } = await requestTenant(c, services);
    const snapshot = await services.catalog.get();
    const usable = new Set<string>();
    for (const [alias, models] of snapshot.modelsByAlias) {
      if (models.some((model) => model.enabled && snapshot.providers.get(model.providerId)?.enabled)) usable.add(alias);
    }
    for (const policy of snapshot.policies) {
      if (policy.tenantId === null || policy.tenantId === tenantId) usable.add(policy.modelAlias);
    }
    const created = Math.floor(snapshot.loadedAt.getTime() / 1000);
    const list: ModelsList = {
      object: 'list',
      data: [...usable].sort().map((id) => ({ id, object: 'model', created, owned_by: 'switchyard' })),
    };
    return c.json(list);
  });
  return app;
}
