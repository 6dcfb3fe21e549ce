import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseServer, freePort, prepareDatabase, startEmbeddedPostgres } from '../../scripts/lib/database.ts';
import type { Database } from '../../supabase/functions/_shared/db.ts';
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { createReadinessApp } from '../../supabase/functions/readiness/app.ts';

// A PostgreSQL of this test's own (never the shared server), stopped and
// started again under a readiness app built in-process, as Deno serves it.
const environment = {
  SUPABASE_DB_URL: 'set',
  SUPABASE_JWT_SECRET: 'set',
  SUPABASE_ANON_KEY: 'set',
  SUPABASE_SERVICE_ROLE_KEY: 'set',
  SWITCHYARD_MASTER_KEYS: 'set',
  METRICS_TOKEN: 'set',
};

interface ReadyBody {
  status: string;
  checks: { name: string; status: string; detail: string }[];
}

let dataRoot: string;
let port: number;
let server: DatabaseServer | undefined;
let db: Database;
let app: ReturnType<typeof createReadinessApp>;

async function ready(): Promise<{ status: number; body: ReadyBody; elapsedMs: number }> {
  const started = performance.now();
  const response = await app.request('/readiness/ready');
  const body = (await response.json()) as ReadyBody;
  return { status: response.status, body, elapsedMs: performance.now() - started };
}

async function pollUntil(status: number, limitMs: number) {
  const deadline = Date.now() + limitMs;
  let last = await ready();
  while (last.status !== status && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    last = await ready();
  }
  return last;
}

beforeAll(async () => {
  dataRoot = await mkdtemp(path.join(os.tmpdir(), 'switchyard-gate-outage-'));
  port = await freePort();
  server = await startEmbeddedPostgres({ dataDir: path.join(dataRoot, 'pgdata'), port, persistent: true });
  await prepareDatabase(server.url);
  // Built as index.ts builds them (with a local KMS, so kms_round_trip passes where the key vault exists).
  const deps = createRuntimeDependencies({
    SUPABASE_DB_URL: server.url,
    SUPABASE_JWT_SECRET: 's'.repeat(40),
    SUPABASE_ANON_KEY: 'anon',
    SWITCHYARD_MASTER_KEYS: `outage-1:${randomBytes(32).toString('base64')}`,
    LOG_LEVEL: 'error',
  });
  db = deps.db;
  app = createReadinessApp(deps, { environment: { ...environment, READINESS_CHECK_TIMEOUT_MS: '500' } });
});

afterAll(async () => {
  await db?.end({ timeout: 1 });
  await server?.stop();
  await rm(dataRoot, { recursive: true, force: true });
});

describe('readiness when PostgreSQL stops and starts again', () => {
  it('is ready, answers 503 within a second once PostgreSQL stops, and recovers after the restart', async () => {
    const before = await pollUntil(200, 10_000);
    expect(before.status, JSON.stringify(before.body)).toBe(200);
    expect(before.body.status).toBe('ready');

    await server?.stop();
    server = undefined;
    const down = await ready();
    expect(down.status).toBe(503);
    expect(down.elapsedMs).toBeLessThan(1000);
    expect(down.body.status).toBe('not_ready');
    const reachable = down.body.checks.find((check) => check.name === 'database_reachable');
    expect(reachable?.status).toBe('fail');
    expect(JSON.stringify(down.body)).not.toMatch(/postgres(ql)?:\/\//);
    // Still 503 and still quick on a second call (no hanging pool).
    const again = await ready();
    expect(again.status).toBe(503);
    expect(again.elapsedMs).toBeLessThan(1000);

    server = await startEmbeddedPostgres({ dataDir: path.join(dataRoot, 'pgdata'), port, persistent: true });
    const after = await pollUntil(200, 30_000);
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    expect(after.body.checks.find((check) => check.name === 'database_reachable')?.status).toBe('pass');
  });
});
