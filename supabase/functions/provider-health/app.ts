import { authenticate } from '../_shared/auth/middleware.ts';
import { requireJobToken } from '../_shared/middleware/job-token.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { getProviderAdapter } from '../_shared/providers/registry.ts';
import { UpstreamFailureError } from '../_shared/providers/errors.ts';
import { loadCatalog } from '../_shared/router/catalog.ts';
import { recordScheduledRun } from '../_shared/schedules/runs.ts';
import type { ProviderKeySource } from '../_shared/router/provider-keys.ts';
import { ClientAbortedError, exchangeJson } from '../_shared/router/upstream.ts';

export interface ProviderHealthOptions {
  keys: ProviderKeySource;
}

interface ProbeResult {
  provider: string;
  outcome: 'up' | 'down' | 'skipped';
  latency_ms: number | null;
  detail: string;
}

/**
 * POST /provider-health/run: probes every enabled provider with its cheapest
 * authenticated call (list models) using its global key, and merges the
 * outcomes into provider_health (record_provider_outcomes). A schedule calls
 * it (pg_cron + pg_net on Supabase, `npm run worker` locally) with the
 * service role and an X-Job-Token. Each call is recorded in scheduled_runs.
 */
export function createProviderHealthApp(deps: AppDependencies, options: ProviderHealthOptions) {
  const app = createFunctionApp('provider-health', deps);
  app.use('*', authenticate(deps, { allow: ['service_role'] }));
  app.use('*', requireJobToken(deps.config.jobTokens));

  // Each call is a run of the 'provider_health' schedule, recorded in scheduled_runs.
  app.post('/run', async (c) =>
    c.json(
      await recordScheduledRun(deps.db, 'provider_health', 'http', () =>
        probeProviders(c.get('requestId'), c.req.raw.signal), (
        answer,
      ) => ({ probed: answer.probed })),
    ));

  async function probeProviders(requestId: string, signal: AbortSignal) {
    const catalog = await loadCatalog(deps.db, deps.clock.now());
    const providers = [...catalog.providers.values()].filter((provider) => provider.enabled);
    const results = await Promise.all(providers.map(async (provider): Promise<ProbeResult> => {
      const key = await options.keys.getProviderKey(null, provider.keyName, { requestId });
      if (!key) {
        return { provider: provider.slug, outcome: 'skipped', latency_ms: null, detail: 'no global key in the vault' };
      }
      const adapter = getProviderAdapter(provider.kind);
      const probe = adapter.buildHealthProbe(
        { kind: provider.kind, baseUrl: provider.baseUrl, apiVersion: provider.apiVersion },
        key.secret,
      );
      // A duration for the logs/metrics, not a time of day: the monotonic clock, nothing a test needs to move.
      const started = performance.now();
      try {
        await exchangeJson(deps.fetch, probe, provider, adapter, signal, deps.clock);
        return {
          provider: provider.slug,
          outcome: 'up',
          latency_ms: Math.round(performance.now() - started),
          detail: 'answered',
        };
      } catch (error) {
        if (error instanceof ClientAbortedError) throw error;
        const detail = error instanceof UpstreamFailureError ? error.upstream.code : 'probe failed';
        return {
          provider: provider.slug,
          outcome: 'down',
          latency_ms: Math.round(performance.now() - started),
          detail,
        };
      }
    }));

    const outcomes = results.flatMap((result) => {
      if (result.outcome === 'skipped') return [];
      const provider = providers.find((candidate) => candidate.slug === result.provider);
      if (!provider) return [];
      return [{
        provider_id: provider.id,
        upstream_model: '',
        requests: 1,
        failures: result.outcome === 'down' ? 1 : 0,
        p50_ms: result.latency_ms,
        p95_ms: result.latency_ms,
        consecutive_failures: result.outcome === 'down' ? 1 : 0,
        cooldown_until: null,
        last_error: result.outcome === 'down' ? result.detail : null,
      }];
    });
    if (outcomes.length > 0) await deps.db`select public.record_provider_outcomes(${deps.db.json(outcomes)})`;
    return { probed: outcomes.length, results };
  }

  return app;
}
