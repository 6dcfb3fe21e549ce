import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import postgres from 'postgres';
import { bin, bootstrapSqlFile, repoRoot, seedSqlFile } from './paths.ts';
import { runCommand } from './run.ts';

export interface DatabaseServer {
  /** Connection URL of the server's `postgres` database. */
  url: string;
  stop(): Promise<void>;
}

type Log = (line: string) => void;

export { exitOnSetupError, PostgresSetupError, startEmbeddedPostgres } from './embedded-postgres.ts';

/** A one-connection client for setup work. */
export function withDatabase(url: string): ReturnType<typeof postgres> {
  return postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
}

/** Replaces the database name of a connection URL. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Drops and recreates `database` on the server; returns its URL. */
export async function recreateDatabase(serverUrl: string, database: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`unsafe database name: ${database}`);
  const sql = withDatabase(serverUrl);
  try {
    await sql.unsafe(`drop database if exists ${database} with (force)`);
    await sql.unsafe(`create database ${database}`);
  } finally {
    await sql.end();
  }
  return databaseUrl(serverUrl, database);
}

/** True on a real Supabase database, where the platform bootstrap must not run. */
async function isSupabaseManaged(sql: ReturnType<typeof postgres>): Promise<boolean> {
  const [row] = await sql<{ managed: boolean }[]>`
    select exists (select 1 from pg_roles where rolname = 'supabase_admin') as managed`;
  return row?.managed ?? false;
}

/**
 * Brings a database to the head of the migrations: the Supabase platform
 * bootstrap (skipped on Supabase itself), then `supabase migration up`, then
 * the seed file. Idempotent.
 */
export async function prepareDatabase(url: string, options: { log?: Log; seed?: boolean } = {}): Promise<void> {
  const log = options.log ?? (() => {});
  const sql = withDatabase(url);
  try {
    if (await isSupabaseManaged(sql)) {
      log('Supabase-managed database: platform bootstrap skipped');
    } else {
      await sql.unsafe(await readFile(bootstrapSqlFile, 'utf8'));
    }
  } finally {
    await sql.end();
  }
  await applyMigrations(url, log);
  if (options.seed !== false && existsSync(seedSqlFile)) {
    const seed = withDatabase(url);
    try {
      await seed.unsafe(await readFile(seedSqlFile, 'utf8'));
    } finally {
      await seed.end();
    }
  }
}

/** Applies pending migrations with the Supabase CLI, history in supabase_migrations. */
async function applyMigrations(url: string, log: Log = () => {}): Promise<void> {
  // The CLI insists on TLS unless told otherwise; local servers have none.
  const cliUrl = new URL(url);
  if (!cliUrl.searchParams.has('sslmode') && ['127.0.0.1', 'localhost', '::1'].includes(cliUrl.hostname)) {
    cliUrl.searchParams.set('sslmode', 'disable');
  }
  const result = await runCommand(
    bin('supabase'),
    ['migration', 'up', '--db-url', cliUrl.toString(), '--workdir', repoRoot, '--yes', '--include-all'],
    { cwd: repoRoot, env: { ...process.env, SUPABASE_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' } },
  );
  for (const line of `${result.stdout}${result.stderr}`.split('\n')) if (line.trim()) log(line);
  if (result.code !== 0) {
    throw new Error(`supabase migration up failed (exit ${result.code}):\n${result.stderr || result.stdout}`);
  }
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}
