import { Hono } from 'hono';
import type { AppEnv } from '../../_shared/hono-env.ts';
import type { ModelsList } from '../../_shared/openai/types.ts';
import type { ModelRecord } from '../../_shared/router/catalog.ts';
import { requestTenant, type RouterServices } from '../services.ts';

/** Anthropic clients send anthropic-version, and their key as x-api-key; OpenAI clients neither. */
function speaksAnthropic(headers: Headers): boolean {
  return headers.has('anthropic-version') || headers.has('x-api-key');
}

/** Anthropic's model list (GET /v1/models): every alias on one page. */
function anthropicModelsList(ids: string[], loadedAt: Date) {
  const createdAt = loadedAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    data: ids.map((id) => ({ type: 'model', id, display_name: id, created_at: createdAt })),
    has_more: false,
    first_id: ids[0] ?? null,
    last_id: ids.at(-1) ?? null,
  };
}

/**
 * GET /v1/models: the aliases this caller can ask for and get an answer:
 * served by an enabled model whose enabled provider has an active key in the
 * vault (the tenant's or a global one), directly or through a policy. In
 * Anthropic's list shape for a caller that speaks Anthropic, else OpenAI's.
 */
export function modelRoutes(services: RouterServices) {
  const app = new Hono<AppEnv>();
  app.get('/', async (c) => {
    const { tenantId } = await requestTenant(c, services);
    const snapshot = await services.catalog.get();
    // Key metadata only: listing models must not decrypt (and audit) anything.
    const keyed = new Set((await services.deps.db<{ provider: string }[]>`
      select distinct provider from public.secure_keys
      where status = 'active' and (tenant_id is null or tenant_id = ${tenantId})`).map((row) => row.provider));
    const servable = (model: ModelRecord | undefined) => {
      const provider = model ? snapshot.providers.get(model.providerId) : undefined;
      return !!model && model.enabled && !!provider?.enabled && keyed.has(provider.keyName);
    };
    const usable = new Set<string>();
    for (const [alias, models] of snapshot.modelsByAlias) if (models.some(servable)) usable.add(alias);
    for (const policy of snapshot.policies) {
      if (policy.tenantId !== null && policy.tenantId !== tenantId) continue;
      const viaTargets = policy.targets.some((target) => servable(snapshot.models.get(target.modelId)));
      if (viaTargets || policy.fallbackAliases.some((alias) => usable.has(alias))) usable.add(policy.modelAlias);
    }
    const ids = [...usable].sort();
    if (speaksAnthropic(c.req.raw.headers)) return c.json(anthropicModelsList(ids, snapshot.loadedAt));
    const created = Math.floor(snapshot.loadedAt.getTime() / 1000);
    const list: ModelsList = {
      object: 'list',
      data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'switchyard' })),
    };
    return c.json(list);
  });
  return app;
}
