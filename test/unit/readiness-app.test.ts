import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../supabase/functions/_shared/clock.ts';
import { loadConfig } from '../../supabase/functions/_shared/config.ts';
import { createJsonLogger } from '../../supabase/functions/_shared/logger.ts';
import { createReadinessApp } from '../../supabase/functions/readiness/app.ts';

// The same app.ts that Deno serves, on Node through app.request(), with a
// database that is not there: readiness must say 503 quickly, not hang.
describe('readiness with the database down', () => {
  it('answers 503 naming the failing checks', async () => {
    const config = loadConfig({
      SUPABASE_DB_URL: 'postgresql://postgres:postgres@127.0.0.1:1/postgres',
      SUPABASE_JWT_SECRET: 's'.repeat(40),
      SUPABASE_ANON_KEY: 'anon',
    });
    const db = postgres(config.databaseUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
    const app = createReadinessApp(
      { config, db, clock: systemClock, fetch, logger: createJsonLogger({ write: () => {} }) },
      { checkTimeoutMs: 500 },
    );
    const response = await app.request('/readiness/ready');
    expect(response.status).toBe(503);
    const body = (await response.json()) as { status: string; checks: { name: string; status: string; detail: string }[] };
    expect(body.status).toBe('not_ready');
    expect(body.checks.find((check) => check.name === 'database_reachable')?.status).toBe('fail');
    expect(JSON.stringify(body)).not.toContain('postgres:postgres');
    await db.end({ timeout: 0 });
  });

  it('keeps /health up without the database', async () => {
    const config = loadConfig({ SUPABASE_DB_URL: 'postgresql://u:p@127.0.0.1:1/x', SUPABASE_JWT_SECRET: 's'.repeat(40), SUPABASE_ANON_KEY: 'a' });
    const db = postgres(config.databaseUrl, { max: 1 });
    const app = createReadinessApp({ config, db, clock: systemClock, fetch, logger: createJsonLogger({ write: () => {} }) });
    const response = await app.request('/readiness/health');
    expect(response.status).toBe(200);
    await db.end({ timeout: 0 });
  });
});
