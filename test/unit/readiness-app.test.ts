import { describe, expect, it } from 'vitest';
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { createReadinessApp } from '../../supabase/functions/readiness/app.ts';

// The same app.ts that Deno serves, on Node through app.request(), with
// dependencies built as index.ts builds them and a database that is not
// there: readiness must say 503 quickly, not hang.
function depsWithoutDatabase() {
  return createRuntimeDependencies({
    SUPABASE_DB_URL: 'postgresql://postgres:postgres@127.0.0.1:1/postgres',
    SUPABASE_JWT_SECRET: 's'.repeat(40),
    SUPABASE_ANON_KEY: 'anon',
    LOG_LEVEL: 'error',
  });
}

describe('readiness with the database down', () => {
  it('answers 503 naming the failing checks', async () => {
    const deps = depsWithoutDatabase();
    const app = createReadinessApp(deps, { checkTimeoutMs: 500 });
    const response = await app.request('/readiness/ready');
    expect(response.status).toBe(503);
    const body = (await response.json()) as {
      status: string;
      checks: { name: string; status: string; detail: string }[];
    };
    expect(body.status).toBe('not_ready');
    expect(body.checks.find((check) => check.name === 'database_reachable')?.status).toBe('fail');
    expect(JSON.stringify(body)).not.toContain('postgres:postgres');
    await deps.db.end({ timeout: 0 });
  });

  it('keeps /health up without the database', async () => {
    const deps = depsWithoutDatabase();
    const app = createReadinessApp(deps);
    const response = await app.request('/readiness/health');
    expect(response.status).toBe(200);
    await deps.db.end({ timeout: 0 });
  });
});
