import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../supabase/functions/_shared/config.ts';
import { createDatabase } from '../../supabase/functions/_shared/db.ts';
import { probeAnonWrites } from '../../supabase/functions/_shared/readiness/anon-writes.ts';
import { detectCapabilities } from '../../supabase/functions/_shared/readiness/capabilities.ts';
import { providerHealthFresh } from '../../supabase/functions/_shared/readiness/providers.ts';
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { createReadinessApp } from '../../supabase/functions/readiness/app.ts';
import { call, connectDatabase, stack } from '../helpers/stack.ts';

interface ReadyBody {
  status: string;
  checks: { name: string; status: string; detail: string; duration_ms: number }[];
}

const sql = connectDatabase();
class Rollback extends Error {}
afterAll(async () => {
  await sql.end();
});

const checkNames = [
  'database_reachable',
  'migrations_at_head',
  'rls_on_exposed_tables',
  'anon_cannot_write_jobs_and_artifacts',
  'required_secrets_present',
  'kms_round_trip',
  'provider_catalog_present',
  'provider_health_fresh',
  'dlq_depth_under_threshold',
  'usage_invariant_holds',
  'schedules_on_time',
  'storage',
];

/** The readiness app in-process on the test database (dependencies as index.ts builds them), with the given environment. */
function inProcessReadiness(environment: Record<string, string>) {
  const deps = createRuntimeDependencies({
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_JWT_SECRET: stack.jwtSecret,
    SUPABASE_ANON_KEY: stack.anonKey,
    LOG_LEVEL: 'error',
  });
  return { app: createReadinessApp(deps, { environment }), db: deps.db };
}

describe('readiness', () => {
  it('/health answers without credentials or I/O', async () => {
    const response = await call('/readiness/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('/ready reports every check, lit up by the capabilities the database has', async () => {
    const response = await call('/readiness/ready');
    const body = (await response.json()) as ReadyBody;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(body.status).toBe('ready');
    expect(body.checks.map((check) => check.name)).toEqual(checkNames);
    const byName = Object.fromEntries(body.checks.map((check) => [check.name, check]));
    for (const check of body.checks) {
      expect(['pass', 'skip'], `${check.name}: ${check.detail}`).toContain(check.status);
      expect(check.duration_ms).toBeGreaterThanOrEqual(0);
      expect(check.detail.length).toBeGreaterThan(0);
    }
    expect(byName.database_reachable.status).toBe('pass');
    expect(byName.migrations_at_head.status).toBe('pass');
    expect(byName.rls_on_exposed_tables.status).toBe('pass');
    expect(byName.required_secrets_present.status).toBe('pass');

    // Each capability-gated check passes once its tables exist, and skips with the reason until then.
    const capabilities = await detectCapabilities(sql as never);
    const expectLit = (name: string, lit: boolean, reason: RegExp) => {
      if (lit) expect(byName[name].status, byName[name].detail).toBe('pass');
      else {
        expect(byName[name].status).toBe('skip');
        expect(byName[name].detail).toMatch(reason);
      }
    };
    expectLit('anon_cannot_write_jobs_and_artifacts', capabilities.jobs || capabilities.artifacts, /jobs\/DLQ issue/);
    expectLit('provider_catalog_present', capabilities.providerCatalog, /LLM-router issue/);
    expectLit('dlq_depth_under_threshold', capabilities.jobDeadLetters, /jobs\/DLQ issue/);
    expectLit('usage_invariant_holds', capabilities.usageInvariant, /tenant-economics issue/);
    expect(byName.provider_catalog_present.detail).toMatch(/\d+ enabled models on \d+ providers/);
  });

  it('names every missing secret (names only) and answers 503', async () => {
    const { app, db } = inProcessReadiness({
      SUPABASE_DB_URL: 'postgresql://u:not-shown@127.0.0.1/x',
      METRICS_TOKEN: 'm'.repeat(32),
    });
    try {
      const response = await app.request('/readiness/ready');
      const body = (await response.json()) as ReadyBody;
      expect(response.status).toBe(503);
      const secrets = body.checks.find((check) => check.name === 'required_secrets_present');
      expect(secrets?.status).toBe('fail');
      expect(secrets?.detail).toContain('SUPABASE_JWT_SECRET or SUPABASE_JWKS_URL');
      expect(secrets?.detail).toContain('SWITCHYARD_MASTER_KEYS');
      expect(secrets?.detail).not.toContain('METRICS_TOKEN');
      expect(JSON.stringify(body)).not.toContain('not-shown');
      expect(JSON.stringify(body)).not.toContain('m'.repeat(32));
    } finally {
      await db.end({ timeout: 1 });
    }
  });

  it('provider health: skip without rows, pass when fresh, fail when stale (in a rolled-back transaction)', async () => {
    const outcomes: Record<string, { status: string; detail: string }> = {};
    const capabilities = await detectCapabilities(sql as never);
    const settings = { checkTimeoutMs: 800, dlqMaxDepth: 0, providerHealthMaxAgeSeconds: 60 };
    await sql.begin(async (tx) => {
      // The check reads through this transaction, so rows other files write do not show.
      const context = {
        deps: { db: tx } as never,
        settings,
        capabilities: () => Promise.resolve(capabilities),
      };
      await tx`delete from public.provider_health`;
      outcomes.empty = await providerHealthFresh.run(context);
      const [provider] = await tx<
        { id: string }[]
      >`select id from public.llm_providers where enabled order by slug limit 1`;
      await tx`insert into public.provider_health (provider_id, upstream_model, updated_at) values (${provider.id}, 'gate-fresh', now())`;
      outcomes.fresh = await providerHealthFresh.run(context);
      await tx`update public.provider_health set updated_at = now() - interval '2 minutes', status = 'down'`;
      outcomes.stale = await providerHealthFresh.run(context);
      throw new Rollback();
    }).catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
    expect(outcomes.empty).toEqual({
      status: 'skip',
      detail: 'no provider health recorded yet (no traffic, no provider-health probe)',
    });
    expect(outcomes.fresh.status).toBe('pass');
    expect(outcomes.stale.status).toBe('fail');
    expect(outcomes.stale.detail).toMatch(/^newest provider health is 1[0-9]{2} s old \(limit 60 s\); down: [a-z]+$/);
  });

  it('the anon write probe fails on a table anon can write, and passes once revoked', async () => {
    const schema = `gate_probe_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const config = loadConfig({
      SUPABASE_DB_URL: stack.dbUrl,
      SUPABASE_JWT_SECRET: stack.jwtSecret,
      SUPABASE_ANON_KEY: stack.anonKey,
    });
    const db = createDatabase(config);
    await sql.unsafe(
      `create schema ${schema}; create table ${schema}.open_jobs (id bigint generated always as identity primary key, note text)`,
    );
    try {
      await sql.unsafe(
        `grant usage on schema ${schema} to anon; grant insert, update, delete on ${schema}.open_jobs to anon`,
      );
      const problems = await probeAnonWrites(db, [`${schema}.open_jobs`]);
      expect(problems).toEqual([
        `insert on ${schema}.open_jobs succeeded (1 rows)`,
        `update on ${schema}.open_jobs succeeded (0 rows)`,
        `delete on ${schema}.open_jobs succeeded (0 rows)`,
      ]);
      // The probe's insert was rolled back.
      const [row] = await sql.unsafe<{ count: number }[]>(`select count(*)::int as count from ${schema}.open_jobs`);
      expect(row.count).toBe(0);

      await sql.unsafe(`revoke insert, update, delete on ${schema}.open_jobs from anon`);
      expect(await probeAnonWrites(db, [`${schema}.open_jobs`])).toEqual([]);
    } finally {
      await sql.unsafe(`drop schema ${schema} cascade`);
      await db.end({ timeout: 1 });
    }
  });
});
