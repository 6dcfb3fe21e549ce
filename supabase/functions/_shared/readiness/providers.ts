import type { ReadinessCheck } from './checks.ts';

export const providerCatalogPresent: ReadinessCheck = {
  name: 'provider_catalog_present',
  async run({ deps, capabilities }) {
    if (!(await capabilities()).providerCatalog) {
      return {
        status: 'skip',
        detail: 'tables public.llm_providers and public.llm_models do not exist yet (LLM-router issue)',
      };
    }
    const [row] = await deps.db<{ providers: number; models: number }[]>`
      select count(distinct p.id)::int as providers, count(m.id)::int as models
      from public.llm_providers p
      join public.llm_models m on m.provider_id = p.id and m.enabled
      where p.enabled`;
    if (row.models === 0) return { status: 'fail', detail: 'no enabled model on an enabled provider' };
    return { status: 'pass', detail: `${row.models} enabled models on ${row.providers} providers` };
  },
};

/**
 * The health feed is alive: the newest provider_health row is recent. No row
 * at all (no traffic yet and no probe ran) is a skip, not a pass.
 */
export const providerHealthFresh: ReadinessCheck = {
  name: 'provider_health_fresh',
  async run({ deps, settings, capabilities }) {
    const present = await capabilities();
    if (!present.providerHealth || !present.providerCatalog) {
      return { status: 'skip', detail: 'table public.provider_health does not exist yet (LLM-router issue)' };
    }
    const [row] = await deps.db<{ rows: number; age_seconds: number | null; down: string[] }[]>`
      select count(*)::int as rows,
             extract(epoch from now() - max(h.updated_at))::float8 as age_seconds,
             coalesce(array_agg(distinct p.slug) filter (where h.status = 'down'), '{}') as down
      from public.provider_health h
      join public.llm_providers p on p.id = h.provider_id and p.enabled`;
    if (row.rows === 0 || row.age_seconds === null) {
      return { status: 'skip', detail: 'no provider health recorded yet (no traffic, no provider-health probe)' };
    }
    const age = Math.round(row.age_seconds);
    const down = row.down.length > 0 ? `; down: ${row.down.join(', ')}` : '';
    if (age > settings.providerHealthMaxAgeSeconds) {
      return {
        status: 'fail',
        detail: `newest provider health is ${age} s old (limit ${settings.providerHealthMaxAgeSeconds} s)${down}`,
      };
    }
    return {
      status: 'pass',
      detail: `newest provider health is ${age} s old (limit ${settings.providerHealthMaxAgeSeconds} s)${down}`,
    };
  },
};
