import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../scripts/lib/database.ts';
import { registerDemoProviderIfNoKeys } from '../../scripts/lib/demo-provider.ts';
import { generateSecrets } from '../../scripts/lib/secrets.ts';
import { startStack } from '../../scripts/lib/stack.ts';
import { type SigningKey, startFakeJwksServer } from '../fakes/jwks-server.ts';
import { testRouterEnvironment } from './router-settings.ts';

/** What every test file can `inject('stack')`. */
export interface TestStack {
  functionsUrl: string;
  dbUrl: string;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
  publishableKey: string;
  secretKey: string;
  jwksUrl: string;
  jwksSigningKeys: SigningKey[];
  functionsLogFile: string;
  /** Bearer for the metrics function. */
  metricsToken: string;
  jobToken: string;
  /** SWITCHYARD_MASTER_KEYS of the functions, so tests can decrypt what they stored. */
  masterKeys: string;
  /** A port whose origin (http://127.0.0.1:<port>) the functions' CORS allow-list has: the console tests serve it there. */
  consolePort: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: TestStack;
  }
}

/**
 * Starts the real local stack once for the run: PostgreSQL with the
 * migrations (the database `npm test` prepared, DATABASE_URL's server, or an
 * embedded one), and every function under Deno, with a fake JWKS on loopback.
 */
export default async function setup(project: TestProject) {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-vitest-'));
  const jwks = await startFakeJwksServer();
  const secrets = await generateSecrets();
  const publishableKey = `sb_publishable_${crypto.randomUUID().replaceAll('-', '')}`;
  const secretKey = `sb_secret_${crypto.randomUUID().replaceAll('-', '')}`;
  const functionsLogFile = path.join(stateDir, 'functions.log');
  const functionsLog = createWriteStream(functionsLogFile);

  const preparedUrl = process.env.SWITCHYARD_TEST_DATABASE_URL;
  const consolePort = await freePort();
  const stack = await startStack({
    stateDir,
    functionsPort: await freePort(),
    databasePort: await freePort(),
    databaseUrl: preparedUrl ?? process.env.DATABASE_URL ?? undefined,
    freshDatabase: !preparedUrl && process.env.DATABASE_URL ? 'switchyard_vitest' : undefined,
    secrets,
    consoleOrigins: [`http://127.0.0.1:${consolePort}`],
    functionsEnv: {
      SUPABASE_JWKS_URL: `${jwks.url}/auth/v1/.well-known/jwks.json`,
      SUPABASE_JWKS_COOLDOWN_MS: '0',
      SUPABASE_PUBLISHABLE_KEYS: publishableKey,
      SUPABASE_SECRET_KEYS: secretKey,
      MAX_BODY_BYTES: String(64 * 1024),
      LOG_LEVEL: 'debug',
      // Test files run scheduled tasks at any moment of a run; lateness is tested in-process.
      READINESS_SCHEDULE_LATE_FACTOR: '100',
      ...testRouterEnvironment,
    },
    functionsOutput: (line) => functionsLog.write(`${line}\n`),
  });

  // As `npm start` does: the demo provider (demo-chat) on its own fake upstream, so the smoke
  // runs in tests (launch tools, runbooks) always invoke a model whose upstream is alive.
  const demo = await registerDemoProviderIfNoKeys({
    dbUrl: stack.dbUrl,
    functionsUrl: stack.functionsUrl,
    anonKey: secrets.anonKey,
    serviceRoleKey: secrets.serviceRoleKey,
    port: await freePort(),
  });

  project.provide('stack', {
    functionsUrl: stack.functionsUrl,
    dbUrl: stack.dbUrl,
    anonKey: secrets.anonKey,
    serviceRoleKey: secrets.serviceRoleKey,
    jwtSecret: secrets.jwtSecret,
    publishableKey,
    secretKey,
    jwksUrl: jwks.url,
    jwksSigningKeys: jwks.keys,
    functionsLogFile,
    metricsToken: secrets.metricsToken,
    jobToken: secrets.jobToken,
    masterKeys: secrets.masterKeys,
    consolePort,
  });

  return async () => {
    demo?.stop();
    await stack.stop();
    await jwks.close();
    functionsLog.end();
    await rm(stateDir, { recursive: true, force: true });
  };
}
