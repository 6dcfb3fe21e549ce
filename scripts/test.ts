// `npm test`: static checks, then pgTAP and vitest against a real PostgreSQL
// with the migrations applied. DATABASE_URL selects the server (a fresh
// database `switchyard_test` is created on it); without it an embedded
// PostgreSQL 17 is started in a temporary directory. REQUIRE_PGTAP=1 makes a
// missing pg_prove or pgTAP a failure instead of a skip.
//
//   npm test                      everything
//   npm test -- --skip-static     skip typecheck and lint
//   npm test -- test/integration  pass filters through to vitest
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  exitOnSetupError,
  freePort,
  prepareDatabase,
  recreateDatabase,
  startEmbeddedPostgres,
  withDatabase,
} from './lib/database.ts';
import { migrationVersions, renderMigrationManifest } from './lib/migration-manifest.ts';
import { bin, functionsDir, migrationsDir, repoRoot } from './lib/paths.ts';
import { runCommand, runInherited } from './lib/run.ts';

const args = process.argv.slice(2);
const skipStatic = args.includes('--skip-static');
const vitestFilters = args.filter((arg) => !arg.startsWith('--'));
const requirePgtap = process.env.REQUIRE_PGTAP === '1';
const failures: string[] = [];
// Totals for the closing "N passed, N failed" line that CI reads.
const totals = { passed: 0, failed: 0 };

function section(title: string) {
  console.log(`\n=== ${title}`);
}

async function step(name: string, command: string, commandArgs: string[], env: NodeJS.ProcessEnv = process.env) {
  section(name);
  const code = await runInherited(command, commandArgs, { cwd: repoRoot, env });
  if (code !== 0) failures.push(`${name} (exit ${code})`);
}

if (!skipStatic) {
  section('migration manifest');
  const manifestFile = path.join(functionsDir, '_shared', 'readiness', 'migration-manifest.ts');
  const expected = renderMigrationManifest(await migrationVersions());
  if ((await readFile(manifestFile, 'utf8')) !== expected) {
    console.log('stale: run `npm run manifest` after adding a migration');
    failures.push('migration manifest');
  } else {
    console.log('up to date');
  }
  await step('typecheck (tsc)', bin('tsc'), ['-p', 'tsconfig.json']);
  await step('typecheck (deno check)', bin('tsx'), ['scripts/deno-check.ts']);
  await step('lint (deno lint)', bin('deno'), [
    'lint',
    '--quiet',
    '--config',
    'supabase/functions/deno.json',
    'supabase/functions',
    'scripts',
    'test',
  ]);
  await step('lint (squawk)', bin('squawk'), ['--config', '.squawk.toml', ...migrationFiles()]);
}

function migrationFiles(): string[] {
  return readdirSync(migrationsDir).filter((file) => file.endsWith('.sql')).map((file) =>
    path.join(migrationsDir, file)
  );
}

section('database');
let stopServer: (() => Promise<void>) | undefined;
let serverUrl = process.env.DATABASE_URL;
const tempDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-test-'));
if (serverUrl) {
  console.log('using the server at DATABASE_URL');
} else {
  const server = await startEmbeddedPostgres({
    dataDir: path.join(tempDir, 'pgdata'),
    port: await freePort(),
    persistent: false,
  }).catch(exitOnSetupError);
  stopServer = server.stop;
  serverUrl = server.url;
  console.log('started an embedded PostgreSQL 17 for this run');
}

try {
  const testDbUrl = await recreateDatabase(serverUrl, process.env.SWITCHYARD_TEST_DATABASE_NAME ?? 'switchyard_test');
  await prepareDatabase(testDbUrl, { log: (line) => console.log(line) });

  section('pgTAP (pg_prove)');
  const pgtapAvailable = await (async () => {
    const sql = withDatabase(testDbUrl);
    try {
      const [row] = await sql<{ available: boolean }[]>`
        select exists (select 1 from pg_available_extensions where name = 'pgtap') as available`;
      return row?.available ?? false;
    } finally {
      await sql.end();
    }
  })();
  const pgProve = (await runCommand('sh', ['-c', 'command -v pg_prove'])).stdout.trim();
  if (pgProve && pgtapAvailable) {
    const url = new URL(testDbUrl);
    const result = await runCommand(pgProve, [
      '--host',
      url.hostname,
      '--port',
      url.port || '5432',
      '--username',
      decodeURIComponent(url.username),
      '--dbname',
      url.pathname.slice(1),
      '--ext',
      '.sql',
      '--recurse',
      'supabase/tests/database',
    ], { cwd: repoRoot, env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) }, echo: true });
    const total = Number(/Tests=(\d+)/.exec(result.stdout)?.[1] ?? 0);
    const failed = [...result.stdout.matchAll(/Failed (\d+)\/\d+ subtests/g)].reduce(
      (sum, match) => sum + Number(match[1]),
      0,
    );
    totals.passed += total - failed;
    totals.failed += failed;
    if (result.code !== 0) {
      failures.push(`pgTAP (exit ${result.code})`);
      if (failed === 0) totals.failed += 1;
    }
  } else {
    const missing = [!pgProve && 'pg_prove', !pgtapAvailable && 'the pgtap extension on this server'].filter(Boolean)
      .join(' and ');
    const message =
      `pgTAP not run: ${missing} missing (Debian: apt-get install postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl, and DATABASE_URL pointing at that server)`;
    if (requirePgtap) {
      console.log(`FAIL ${message}; REQUIRE_PGTAP=1`);
      failures.push('pgTAP (required but unavailable)');
    } else {
      console.log(`SKIP ${message}`);
    }
  }

  section('vitest');
  const vitestReport = path.join(tempDir, 'vitest.json');
  const vitestCode = await runInherited(bin('vitest'), [
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${vitestReport}`,
    ...vitestFilters,
  ], {
    cwd: repoRoot,
    env: { ...process.env, SWITCHYARD_TEST_DATABASE_URL: testDbUrl },
  });
  if (existsSync(vitestReport)) {
    const report = JSON.parse(await readFile(vitestReport, 'utf8')) as {
      numPassedTests: number;
      numFailedTests: number;
    };
    totals.passed += report.numPassedTests;
    totals.failed += report.numFailedTests;
  }
  if (vitestCode !== 0) {
    failures.push(`vitest (exit ${vitestCode})`);
    if (!existsSync(vitestReport)) totals.failed += 1;
  }
} finally {
  await stopServer?.();
  await rm(tempDir, { recursive: true, force: true });
}

section('summary');
// The counts decide too, not vitest's exit code alone.
if (totals.failed > 0 && failures.length === 0) failures.push(`${totals.failed} failed tests`);
if (failures.length > 0) console.log(`FAILED: ${failures.join(', ')}`);
else console.log('all test steps passed');
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed`);
process.exit(failures.length > 0 ? 1 : 0);
