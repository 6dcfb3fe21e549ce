import { afterAll, describe, expect, it } from 'vitest';
import { parsePrometheusText, sampleValue } from '../../scripts/lib/prometheus-text.ts';
import { promtool } from '../../scripts/lib/promtool.ts';
import { detectCapabilities } from '../../supabase/functions/_shared/readiness/capabilities.ts';
import { metricCatalog, metricNames } from '../../supabase/functions/_shared/metrics/catalog.ts';
import { call, connectDatabase, createTenant, stack } from '../helpers/stack.ts';

const sql = connectDatabase();
afterAll(async () => {
  await sql.end();
});

async function scrape(): Promise<string> {
  const response = await call('/metrics', { headers: { authorization: `Bearer ${stack.metricsToken}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return await response.text();
}

describe('metrics', () => {
  it('refuses a missing or wrong bearer token with a JSON 401, never echoing it', async () => {
    const missing = await call('/metrics');
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({
      error: { code: 'unauthorized', message: 'missing bearer token (METRICS_TOKEN)', details: null },
    });
    const wrong = await call('/metrics', { headers: { authorization: 'Bearer not-the-metrics-token-at-all' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).not.toContain('not-the-metrics-token-at-all');
    // The service role is not the metrics token either.
    const service = await call('/metrics', { headers: { authorization: `Bearer ${stack.serviceRoleKey}` } });
    expect(service.status).toBe(401);
  });

  it('exports valid Prometheus text: only catalog families, request counts by route, latency histograms', async () => {
    await call('/readiness/health');
    const text = await scrape();
    const families = parsePrometheusText(text);
    for (const family of families) {
      expect(metricNames, family.name).toContain(family.name);
      expect(family.help?.length).toBeGreaterThan(0);
    }
    const health = { function: 'readiness', route: '/readiness/health', method: 'GET', status: '200' };
    const before = sampleValue(families, metricCatalog.httpRequests.name, health) ?? 0;
    expect(before).toBeGreaterThanOrEqual(1);
    await call('/readiness/health');
    await call('/readiness/health');
    const after = parsePrometheusText(await scrape());
    expect(sampleValue(after, metricCatalog.httpRequests.name, health)).toBeGreaterThanOrEqual(before + 2);
    const count = sampleValue(after, `${metricCatalog.httpDuration.name}_count`, {
      function: 'readiness',
      route: '/readiness/health',
      method: 'GET',
    });
    expect(count).toBeGreaterThanOrEqual(before + 2);
    // The scrape that is being answered is in flight, and counted.
    expect(sampleValue(after, metricCatalog.httpInFlight.name, { function: 'metrics' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, metricCatalog.databaseUp.name)).toBe(1);
  });

  it('exports the database-derived families exactly when their tables exist', async () => {
    const capabilities = await detectCapabilities(sql as never);
    const families = parsePrometheusText(await scrape());
    const names = new Set(families.map((family) => family.name));
    const expectFamilies = (present: boolean, source: string, expected: string[]) => {
      for (const name of expected) expect(names.has(name), `${name} (${source})`).toBe(present);
      if (present) expect(sampleValue(families, metricCatalog.sourceUp.name, { source }), source).toBe(1);
    };
    expectFamilies(capabilities.usageRecords, 'usage_records', [
      metricCatalog.llmRequests.name,
      metricCatalog.llmTokens.name,
      metricCatalog.llmCost.name,
    ]);
    expectFamilies(capabilities.jobs, 'jobs', [metricCatalog.jobs.name, metricCatalog.oldestQueuedAge.name]);
    expectFamilies(capabilities.jobDeadLetters, 'job_dead_letters', [
      metricCatalog.dlqDepth.name,
      metricCatalog.deadLetters.name,
    ]);
    expectFamilies(capabilities.usageInvariant, 'usage_invariant', [metricCatalog.invariantViolations.name]);
    expectFamilies(capabilities.providerHealth, 'provider_health', [metricCatalog.providerUp.name]);
  });

  it('counts usage records, tokens and cost from the database, so they survive isolates', async () => {
    const tenantId = await createTenant(`metrics ${crypto.randomUUID()}`);
    const provider = `gate-${crypto.randomUUID().slice(0, 8)}`;
    await sql`
      insert into public.usage_records (request_id, tenant_id, provider, upstream_model, prompt_tokens, completion_tokens,
                                        cost_usd_micros, status, latency_ms)
      values (${`gate-${crypto.randomUUID()}`}, ${tenantId}, ${provider}, 'm1', 100, 20, 1500, 'succeeded', 40),
             (${`gate-${crypto.randomUUID()}`}, ${tenantId}, ${provider}, 'm1', 10, 5, 500, 'succeeded', 30),
             (${`gate-${crypto.randomUUID()}`}, ${tenantId}, ${provider}, 'm1', 7, 0, 0, 'failed', 10)`;
    const families = parsePrometheusText(await scrape());
    const labels = { provider, model: 'm1' };
    expect(
      sampleValue(families, metricCatalog.llmRequests.name, { ...labels, status: 'succeeded', cache_hit: 'false' }),
    ).toBe(2);
    expect(sampleValue(families, metricCatalog.llmRequests.name, { ...labels, status: 'failed' })).toBe(1);
    expect(sampleValue(families, metricCatalog.llmTokens.name, { ...labels, kind: 'prompt' })).toBe(117);
    expect(sampleValue(families, metricCatalog.llmTokens.name, { ...labels, kind: 'completion' })).toBe(25);
    expect(sampleValue(families, metricCatalog.llmCost.name, labels)).toBeCloseTo(0.002, 9);
  });

  it('passes `promtool check metrics` when promtool is installed (required in CI)', async () => {
    const text = await scrape();
    const result = promtool(['check', 'metrics'], text);
    if (result === undefined) {
      expect(process.env.REQUIRE_PROMTOOL, 'promtool is not installed (Debian: apt-get install prometheus)').not.toBe(
        '1',
      );
      // Without promtool, the strict parser above is the validation.
      expect(parsePrometheusText(text).length).toBeGreaterThan(5);
      return;
    }
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });
});
