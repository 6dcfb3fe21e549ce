import { Hono } from 'hono';
import { z } from 'zod';
import { databaseIdentityOf } from '../../_shared/auth/caller.ts';
import { withIdentity } from '../../_shared/db.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readQuery } from '../../_shared/validation.ts';

const reputationQuery = z.object({
  // Without it: the global rows only.
  tenant_id: z.uuid('must be a UUID').optional(),
  // Without it: every domain ('' rows cover requests of any domain).
  domain: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, _ and -').optional(),
});

/**
 * GET /reputation?tenant_id=&domain=: model reputation as quality routing
 * sees it, the tenant's rows and the global ones, best first. Read through
 * RLS: a member sees global rows and their own tenants' rows.
 */
export function reputationRoutes(deps: AppDependencies) {
  const app = new Hono<AppEnv>();

  app.get('/reputation', async (c) => {
    const query = readQuery(c, reputationQuery);
    const items = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), (tx) =>
      tx`
        select r.tenant_id, case when r.tenant_id is null then 'global' else 'tenant' end as scope, r.domain,
               p.slug as provider, r.upstream_model, r.score::float8 as score, r.sample_count::float8 as sample_count,
               r.feedback_score, r.feedback_weight, r.signal_requests, r.signal_failures, r.updated_at
        from public.model_reputation r
        join public.llm_providers p on p.id = r.provider_id
        where (r.tenant_id is null or r.tenant_id = ${query.tenant_id ?? null})
          and (${query.domain ?? null}::text is null or r.domain in (${query.domain ?? ''}, ''))
        order by r.tenant_id nulls last, r.domain, r.score desc, p.slug, r.upstream_model`);
    return c.json({ tenant_id: query.tenant_id ?? null, domain: query.domain ?? null, items });
  });

  return app;
}
