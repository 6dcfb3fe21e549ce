import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import {
  type DatabaseServer,
  databaseUrl,
  prepareDatabase,
  recreateDatabase,
  startEmbeddedPostgres,
} from './database.ts';
import { denoExecutable, denoServerArguments, repoRoot } from './paths.ts';
import { type LocalSecrets, publicJwks } from './secrets.ts';

export interface StackOptions {
  stateDir: string;
  functionsPort: number;
  /** Port of the embedded PostgreSQL; ignored when `databaseUrl` is given. */
  databasePort: number;
  /** Use this server instead of the embedded one (DATABASE_URL). */
  databaseUrl?: string;
  /** Drop and recreate this database first (tests); default: use the URL's database as is. */
  freshDatabase?: string;
  secrets: LocalSecrets;
  /** Browser origins besides the defaults that may call the functions (CORS): the console's. */
  consoleOrigins?: readonly string[];
  /** Extra environment for the functions (tests point providers at fakes). */
  functionsEnv?: Record<string, string>;
  log?: (line: string) => void;
  /** Where the functions server's output goes. */
  functionsOutput?: 'inherit' | 'ignore' | ((line: string) => void);
}

export interface RunningStack {
  functionsUrl: string;
  apiUrl: string;
  dbUrl: string;
  /** The environment the functions run with (also what `npm run status` prints). */
  functionsEnvironment: Record<string, string>;
  stop(): Promise<void>;
}

/** The `supabase status -o env` lines for a running stack. */
export function statusLines(
  stack: Pick<RunningStack, 'apiUrl' | 'functionsUrl' | 'dbUrl'>,
  secrets: LocalSecrets,
): string[] {
  return [
    `API_URL=${stack.apiUrl}`,
    `FUNCTIONS_URL=${stack.functionsUrl}`,
    `DB_URL=${stack.dbUrl}`,
    `ANON_KEY=${secrets.anonKey}`,
    `SERVICE_ROLE_KEY=${secrets.serviceRoleKey}`,
    `JWT_SECRET=${secrets.jwtSecret}`,
    `METRICS_TOKEN=${secrets.metricsToken}`,
    `JOB_TOKEN=${secrets.jobToken}`,
  ];
}

function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once(
      'error',
      () =>
        reject(new Error(`port ${port} is already in use (is another stack running? FUNCTIONS_PORT picks another)`)),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

async function waitForHealth(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`functions server exited with code ${child.exitCode}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
      lastError = `status ${response.status}`;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw new Error(`functions server did not become healthy within ${timeoutMs} ms: ${lastError}`);
}

/** Starts (or reuses) PostgreSQL, applies migrations, and serves every function under Deno. */
export async function startStack(options: StackOptions): Promise<RunningStack> {
  const log = options.log ?? (() => {});
  await mkdir(options.stateDir, { recursive: true });

  let server: DatabaseServer | undefined;
  let serverUrl: string;
  if (options.databaseUrl) {
    serverUrl = options.databaseUrl;
    log('database: using DATABASE_URL');
  } else {
    log(`database: embedded PostgreSQL 17 on port ${options.databasePort}`);
    server = await startEmbeddedPostgres({
      dataDir: path.join(options.stateDir, 'pgdata'),
      port: options.databasePort,
      persistent: true,
      log: (line) => {
        if (/FATAL|PANIC|cannot reach/.test(line)) log(`postgres: ${line}`);
      },
    });
    serverUrl = server.url;
  }

  try {
    const dbUrl = options.freshDatabase ? await recreateDatabase(serverUrl, options.freshDatabase) : serverUrl;
    await prepareDatabase(dbUrl, { log: (line) => log(`migrations: ${line}`) });

    const apiUrl = `http://127.0.0.1:${options.functionsPort}`;
    const functionsUrl = `${apiUrl}/functions/v1`;
    const functionsEnvironment: Record<string, string> = {
      SUPABASE_URL: apiUrl,
      SUPABASE_DB_URL: dbUrl,
      SUPABASE_ANON_KEY: options.secrets.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: options.secrets.serviceRoleKey,
      SUPABASE_JWT_SECRET: options.secrets.jwtSecret,
      // Asymmetric user tokens, as on a project with signing keys: the functions server serves this JWKS itself.
      SUPABASE_JWKS_URL: `${apiUrl}/auth/v1/.well-known/jwks.json`,
      SWITCHYARD_LOCAL_JWKS: JSON.stringify(publicJwks(options.secrets)),
      SWITCHYARD_MASTER_KEYS: options.secrets.masterKeys,
      METRICS_TOKEN: options.secrets.metricsToken,
      JOB_TOKENS: options.secrets.jobToken,
      ALLOWED_ORIGINS: ['http://localhost:3000', 'http://127.0.0.1:3000', ...(options.consoleOrigins ?? [])].join(','),
      FUNCTIONS_PORT: String(options.functionsPort),
      ...options.functionsEnv,
    };
    await assertPortFree(options.functionsPort);
    const child = spawn(
      denoExecutable(),
      denoServerArguments(path.join(repoRoot, 'scripts', 'serve-functions.ts')),
      {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          DENO_NO_UPDATE_CHECK: '1',
          ...functionsEnvironment,
        },
        stdio: [
          'ignore',
          options.functionsOutput === 'inherit' ? 'inherit' : 'pipe',
          options.functionsOutput === 'inherit' ? 'inherit' : 'pipe',
        ],
      },
    );
    const output = options.functionsOutput;
    if (typeof output === 'function') {
      const forward = (chunk: Buffer) => chunk.toString().split('\n').filter(Boolean).forEach(output);
      child.stdout?.on('data', forward);
      child.stderr?.on('data', forward);
    } else if (output !== 'inherit') {
      child.stdout?.resume();
      child.stderr?.resume();
    }
    await waitForHealth(`${functionsUrl}/readiness/health`, child, 60_000);

    let stopped = false;
    return {
      apiUrl,
      functionsUrl,
      dbUrl,
      functionsEnvironment,
      async stop() {
        if (stopped) return;
        stopped = true;
        await new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
          child.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          child.kill('SIGTERM');
        });
        await server?.stop();
      },
    };
  } catch (error) {
    await server?.stop();
    throw error;
  }
}

export async function writeStatusFile(stateDir: string, lines: readonly string[]): Promise<void> {
  await writeFile(path.join(stateDir, 'status.env'), `${lines.join('\n')}\n`, { mode: 0o600 });
}

export { databaseUrl };
