// `npm run drill:backup`: a restore drill. pg_dump the database (custom
// format, from one exported snapshot), restore it into a scratch database on
// the same server, verify row counts of every public table, the migration
// history and usage_invariant_violations() there, report the time it took
// (RTO) and the dump size, then drop the scratch database and the dump.
//
//   npm run drill:backup -- [--db-url URL] [--json] [--keep-dump]
//
// The database: --db-url, else DATABASE_URL, else the local stack's DB_URL.
// Needs pg_dump/pg_restore (Debian: postgresql-client-15) no older than the server.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { databaseUrl } from './lib/database.ts';
import { resolveTarget, TargetError } from './lib/smoke/target.ts';

const json = process.argv.includes('--json');
function fail(message: string): never {
  const safe = message.replace(/postgres(ql)?:\/\/\S+/g, '[database url]');
  console.log(json ? JSON.stringify({ ok: false, error: safe }) : `FAIL  drill:backup: ${safe}`);
  process.exit(1);
}

function parseOptions() {
  return parseArgs({
    options: {
      'db-url': { type: 'string' },
      json: { type: 'boolean', default: false },
      'keep-dump': { type: 'boolean', default: false },
    },
    strict: true,
  }).values;
}
let values: ReturnType<typeof parseOptions>;
try {
  values = parseOptions();
} catch (error) {
  fail((error as Error).message);
}

function sourceUrl(): string {
  if (values['db-url']) return values['db-url'];
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  try {
    const local = resolveTarget({}).databaseUrl;
    if (local) return local;
  } catch (error) {
    if (!(error instanceof TargetError)) throw error;
  }
  fail('no database: pass --db-url, set DATABASE_URL, or start the local stack (npm start)');
}

/** Runs a PostgreSQL client tool; the password goes through PGPASSWORD, never the command line. */
function runTool(tool: string, args: string[], url: string): Promise<{ code: number; output: string }> {
  const parsed = new URL(url);
  return new Promise((resolve) => {
    const child = spawn(tool, args, {
      env: {
        ...process.env,
        PGHOST: parsed.hostname,
        PGPORT: parsed.port || '5432',
        PGUSER: decodeURIComponent(parsed.username),
        PGPASSWORD: decodeURIComponent(parsed.password),
        PGDATABASE: decodeURIComponent(parsed.pathname.slice(1)) || 'postgres',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => resolve({ code: 127, output: `${tool}: ${error.message}` }));
    child.on('close', (code) => resolve({ code: code ?? 1, output: output.trim() }));
  });
}

async function tableCounts(sql: postgres.Sql | postgres.TransactionSql): Promise<Map<string, number>> {
  const tables = await sql<{ name: string }[]>`
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname in ('public', 'auth', 'supabase_migrations')
    order by 1`;
  const counts = new Map<string, number>();
  for (const { name } of tables) {
    const [row] = await sql.unsafe<{ count: string }[]>(`select count(*)::text as count from ${name}`);
    counts.set(name, Number(row.count));
  }
  return counts;
}

const source = sourceUrl();
const scratchName = `switchyard_drill_${Date.now().toString(36)}`;
const workDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-drill-'));
const dumpFile = path.join(workDir, 'switchyard.dump');
const sql = postgres(source, { max: 2, onnotice: () => {}, connect_timeout: 5 });
let scratchCreated = false;
let exitCode = 1;

try {
  const [server] = await sql<{ version: number }[]>`select current_setting('server_version_num')::int as version`.catch(
    (error) => {
      fail(`cannot connect: ${(error as { code?: string }).code ?? (error as Error).message}`);
    },
  );
  const dumpVersion = await runTool('pg_dump', ['--version'], source);
  if (dumpVersion.code !== 0) fail('pg_dump is not installed (Debian: apt-get install postgresql-client-15)');
  const clientMajor = Number(/(\d+)\.\d+/.exec(dumpVersion.output)?.[1] ?? 0);
  const serverMajor = Math.floor(server.version / 10_000);
  if (clientMajor < serverMajor) {
    fail(
      `pg_dump ${clientMajor} cannot dump a PostgreSQL ${serverMajor} server: point --db-url at PostgreSQL ${clientMajor} or install postgresql-client-${serverMajor}`,
    );
  }

  const started = performance.now();
  // One snapshot for the source counts and the dump, so they describe the same instant.
  const { counts: sourceCounts, migrations: sourceMigrations, dumpMs } = await sql.begin(
    'isolation level repeatable read',
    async (tx) => {
      const [{ snapshot }] = await tx<{ snapshot: string }[]>`select pg_export_snapshot() as snapshot`;
      const counts = await tableCounts(tx);
      const migrations =
        (await tx<{ version: string }[]>`select version from supabase_migrations.schema_migrations order by version`)
          .map((row) => row.version);
      const dumpStarted = performance.now();
      const dump = await runTool('pg_dump', [
        '--format=custom',
        '--no-owner',
        `--snapshot=${snapshot}`,
        `--file=${dumpFile}`,
      ], source);
      if (dump.code !== 0) fail(`pg_dump failed: ${dump.output.split('\n')[0]}`);
      return { counts, migrations, dumpMs: performance.now() - dumpStarted };
    },
  );
  const dumpBytes = (await stat(dumpFile)).size;

  const restoreStarted = performance.now();
  await sql.unsafe(`create database ${scratchName}`);
  scratchCreated = true;
  const scratchUrl = databaseUrl(source, scratchName);
  const restore = await runTool(
    'pg_restore',
    ['--no-owner', '--exit-on-error', `--dbname=${scratchName}`, dumpFile],
    scratchUrl,
  );
  if (restore.code !== 0) throw new Error(`pg_restore failed: ${restore.output.split('\n').slice(0, 3).join(' ')}`);
  const restoreMs = performance.now() - restoreStarted;

  const scratch = postgres(scratchUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  let problems: string[] = [];
  let invariant = 'usage_invariant_violations() absent (tenant-economics issue)';
  try {
    const restoredCounts = await tableCounts(scratch);
    for (const [table, count] of sourceCounts) {
      const restored = restoredCounts.get(table);
      if (restored !== count) {
        problems = [...problems, `${table}: ${count} rows in the source, ${restored ?? 'no table'} restored`];
      }
    }
    const restoredMigrations =
      (await scratch<{ version: string }[]>`select version from supabase_migrations.schema_migrations order by version`)
        .map((row) => row.version);
    if (restoredMigrations.join() !== sourceMigrations.join()) problems = [...problems, 'migration history differs'];
    const [present] = await scratch<
      { present: boolean }[]
    >`select to_regprocedure('public.usage_invariant_violations()') is not null as present`;
    if (present.present) {
      const [row] = await scratch<
        { violations: number }[]
      >`select count(*)::int as violations from public.usage_invariant_violations()`;
      invariant = `usage_invariant_violations(): ${row.violations} rows`;
      if (row.violations > 0) problems = [...problems, invariant];
    }
  } finally {
    await scratch.end({ timeout: 2 });
  }
  const rtoMs = performance.now() - started;
  const rows = [...sourceCounts.values()].reduce((sum, count) => sum + count, 0);
  const report = {
    ok: problems.length === 0,
    rto_seconds: Math.round(rtoMs) / 1000,
    dump_seconds: Math.round(dumpMs) / 1000,
    restore_seconds: Math.round(restoreMs) / 1000,
    dump_bytes: dumpBytes,
    tables: sourceCounts.size,
    rows,
    migrations: sourceMigrations.length,
    invariant,
    problems,
    // Dropped before exit; named so a check can look for exactly this one on a shared server.
    scratch_database: scratchName,
  };
  if (json) console.log(JSON.stringify(report));
  else {
    console.log(
      `${report.ok ? 'PASS' : 'FAIL'}  drill:backup: dump ${
        (dumpBytes / 1024).toFixed(1)
      } KiB in ${report.dump_seconds} s, restore ${report.restore_seconds} s, RTO ${report.rto_seconds} s`,
    );
    console.log(`      ${report.tables} tables and ${rows} rows match, ${report.migrations} migrations, ${invariant}`);
    for (const problem of problems) console.log(`      ${problem}`);
  }
  exitCode = report.ok ? 0 : 1;
} catch (error) {
  const message = (error as Error).message.replace(/postgres(ql)?:\/\/\S+/g, '[database url]');
  console.log(json ? JSON.stringify({ ok: false, error: message }) : `FAIL  drill:backup: ${message}`);
  exitCode = 1;
} finally {
  if (scratchCreated) await sql.unsafe(`drop database if exists ${scratchName} with (force)`).catch(() => {});
  await sql.end({ timeout: 2 });
  if (values['keep-dump']) console.error(`dump kept at ${dumpFile}`);
  else await rm(workDir, { recursive: true, force: true });
}
process.exit(exitCode);
