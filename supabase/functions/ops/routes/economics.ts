import { Hono } from 'hono';
import { z } from 'zod';
import { databaseIdentityOf } from '../../_shared/auth/caller.ts';
import { sqlState, withIdentity } from '../../_shared/db.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { isoDateTime, readJsonBody, readQuery } from '../../_shared/validation.ts';

const tenantQuery = z.object({ tenant_id: z.uuid('must be a UUID') });

const budgetBody = z.object({
  tenant_id: z.uuid('must be a UUID'),
  scope: z.enum(['tenant', 'api_key', 'model', 'bucket']),
  api_key_id: z.uuid('must be a UUID').optional(),
  model_alias: z.string().min(1).max(128).optional(),
  // scope bucket: the A/B bucket of a routing policy this budget caps for the tenant.
  policy_id: z.uuid('must be a UUID').optional(),
  bucket: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits and _ . -, up to 64').optional(),
  unit: z.enum(['usd_micros', 'tokens']),
  period: z.enum(['day', 'month', 'total']),
  limit: z.number().int('must be a whole number').min(0).max(Number.MAX_SAFE_INTEGER),
  over_limit: z.enum(['refuse', 'cap']).default('refuse'),
  enabled: z.boolean().default(true),
}).strict().superRefine((body, ctx) => {
  if ((body.scope === 'api_key') !== (body.api_key_id !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['api_key_id'], message: 'required exactly when scope is api_key' });
  }
  if ((body.scope === 'model') !== (body.model_alias !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['model_alias'], message: 'required exactly when scope is model' });
  }
  if ((body.scope === 'bucket') !== (body.policy_id !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['policy_id'], message: 'required exactly when scope is bucket' });
  }
  if ((body.scope === 'bucket') !== (body.bucket !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['bucket'], message: 'required exactly when scope is bucket' });
  }
});

const rateLimitBody = z.object({
  tenant_id: z.uuid('must be a UUID'),
  api_key_id: z.uuid('must be a UUID').nullable().default(null),
  requests_per_minute: z.number().int().positive('must be above zero').max(1_000_000).nullable().default(null),
  tokens_per_minute: z.number().int().positive('must be above zero').max(1_000_000_000).nullable().default(null),
  burst: z.number().int().min(0).max(1_000_000).default(0),
}).strict().refine((body) => body.requests_per_minute !== null || body.tokens_per_minute !== null, {
  path: ['requests_per_minute'],
  message: 'set requests_per_minute, tokens_per_minute or both',
});

// The groups GET /ops/usage accepts; public.usage_summary answers a column for each.
const groupNames = ['provider', 'model', 'key', 'upstream_model', 'dialect'] as const;
type GroupName = (typeof groupNames)[number];

interface UsageSummaryRow extends Record<GroupName, string | null> {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd_micros: number;
  cache_hits: number;
}

const emptyUsage: UsageSummaryRow = {
  provider: null,
  model: null,
  key: null,
  upstream_model: null,
  dialect: null,
  requests: 0,
  prompt_tokens: 0,
  completion_tokens: 0,
  cost_usd_micros: 0,
  cache_hits: 0,
};

const usageQuery = z.object({
  tenant_id: z.uuid('must be a UUID'),
  group_by: z.string().optional().transform((value, ctx) => {
    const names = (value ?? '').split(',').map((name) => name.trim()).filter(Boolean);
    const unknown = names.filter((name) => !(groupNames as readonly string[]).includes(name));
    if (unknown.length > 0) {
      ctx.addIssue({
        code: 'custom',
        message: `unknown group ${unknown.join(', ')}; use ${groupNames.join(', ')}`,
      });
      return z.NEVER;
    }
    return [...new Set(names)] as GroupName[];
  }),
  from: isoDateTime.optional(),
  to: isoDateTime.optional(),
}).refine((query) => !query.from || !query.to || query.from <= query.to, {
  path: ['from'],
  message: 'must not be after to',
});

/** Budgets, rate limits, usage and the conservation invariant (issue: tenant economics). */
export function economicsRoutes(deps: AppDependencies) {
  const app = new Hono<AppEnv>();

  const requireService = (caller: AppEnv['Variables']['caller'], what: string) => {
    if (caller.kind !== 'service_role') throw new HttpError('forbidden', `only operators (service role) can ${what}`);
  };

  app.get('/budgets', async (c) => {
    const { tenant_id } = readQuery(c, tenantQuery);
    const items = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), (tx) =>
      tx`
        select b.id, b.tenant_id, b.scope, b.api_key_id, b.model_alias, b.policy_id, b.bucket, b.unit, b.period,
               b.limit_amount::float8 as limit, b.over_limit, b.enabled, coalesce(u.spent, 0)::float8 as spent,
               coalesce(u.reserved, 0)::float8 as reserved, coalesce(u.overflow, 0)::float8 as overflow, u.window_start
        from public.budgets b
        left join public.usage_counters u
          on u.budget_id = b.id and u.window_start = private.budget_window_start(b.period, now())
        where b.tenant_id = ${tenant_id}
        order by b.created_at`);
    return c.json({ items });
  });

  // Create or replace the budget for one (tenant, scope, target, unit, period).
  app.post('/budgets', async (c) => {
    requireService(c.get('caller'), 'change budgets');
    const body = await readJsonBody(c, budgetBody);
    try {
      const [budget] = await deps.db`
        insert into public.budgets (tenant_id, scope, api_key_id, model_alias, policy_id, bucket, unit, period, limit_amount,
                                    over_limit, enabled)
        values (${body.tenant_id}, ${body.scope}, ${body.api_key_id ?? null}, ${body.model_alias ?? null},
                ${body.policy_id ?? null}, ${body.bucket ?? null}, ${body.unit}, ${body.period}, ${body.limit},
                ${body.over_limit}, ${body.enabled})
        on conflict (tenant_id, scope, coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid),
                     coalesce(model_alias, ''), coalesce(policy_id, '00000000-0000-0000-0000-000000000000'::uuid),
                     coalesce(bucket, ''), unit, period)
        do update set limit_amount = excluded.limit_amount, over_limit = excluded.over_limit, enabled = excluded.enabled
        returning id, tenant_id, scope, api_key_id, model_alias, policy_id, bucket, unit, period,
                  limit_amount::float8 as limit, over_limit, enabled`;
      return c.json(budget, 201);
    } catch (error) {
      if (sqlState(error) === '23503') throw new HttpError('not_found', 'tenant, API key or routing policy not found');
      throw error;
    }
  });

  app.get('/rate-limits', async (c) => {
    const { tenant_id } = readQuery(c, tenantQuery);
    const items = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), (tx) =>
      tx`
        select id, tenant_id, api_key_id, requests_per_minute, tokens_per_minute, burst, updated_at
        from public.rate_limits where tenant_id = ${tenant_id} order by created_at`);
    return c.json({ items });
  });

  // Takes effect on the next request: the limit is read inside reserve_budget.
  app.post('/rate-limits', async (c) => {
    requireService(c.get('caller'), 'change rate limits');
    const body = await readJsonBody(c, rateLimitBody);
    try {
      const [limit] = await deps.db`
        insert into public.rate_limits (tenant_id, api_key_id, requests_per_minute, tokens_per_minute, burst)
        values (${body.tenant_id}, ${body.api_key_id}, ${body.requests_per_minute}, ${body.tokens_per_minute}, ${body.burst})
        on conflict (tenant_id, coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid))
        do update set requests_per_minute = excluded.requests_per_minute,
                      tokens_per_minute = excluded.tokens_per_minute, burst = excluded.burst
        returning id, tenant_id, api_key_id, requests_per_minute, tokens_per_minute, burst`;
      return c.json(limit, 201);
    } catch (error) {
      if (sqlState(error) === '23503') throw new HttpError('not_found', 'tenant or API key not found');
      throw error;
    }
  });

  // usage_summary keeps totals exact across retention: rolled-up days come from usage_daily.
  app.get('/usage', async (c) => {
    const query = readQuery(c, usageQuery);
    const groups = query.group_by;
    const summary = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), (tx) =>
      tx<UsageSummaryRow[]>`
        select provider, model, key, upstream_model, dialect, requests::float8 as requests, prompt_tokens::float8 as prompt_tokens,
               completion_tokens::float8 as completion_tokens, cost_usd_micros::float8 as cost_usd_micros,
               cache_hits::float8 as cache_hits
        from public.usage_summary(${query.tenant_id}, ${query.from ?? null}, ${query.to ?? null}, ${groups})`);
    // Without groups there is one row, of zeros when nothing was used (as an ungrouped sum answers).
    const rows = summary.length > 0 || groups.length > 0 ? summary : [{ ...emptyUsage }];
    const items = rows.map((row) => ({
      ...Object.fromEntries(groups.map((name) => [name, row[name]])),
      requests: row.requests,
      prompt_tokens: row.prompt_tokens,
      completion_tokens: row.completion_tokens,
      cost_usd_micros: row.cost_usd_micros,
      cache_hits: row.cache_hits,
    }));
    return c.json({
      tenant_id: query.tenant_id,
      group_by: groups,
      from: query.from ?? null,
      to: query.to ?? null,
      items,
    });
  });

  app.get('/invariant', async (c) => {
    requireService(c.get('caller'), 'read the conservation invariant');
    const violations = await deps.db`select * from public.usage_invariant_violations()`;
    return c.json({ holds: violations.length === 0, violations });
  });

  return app;
}
