import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute paths of the repository, so scripts work from any cwd. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const stateDir = path.join(repoRoot, '.switchyard');
const binDir = path.join(repoRoot, 'node_modules', '.bin');
export const functionsDir = path.join(repoRoot, 'supabase', 'functions');
export const migrationsDir = path.join(repoRoot, 'supabase', 'migrations');
export const bootstrapSqlFile = path.join(repoRoot, 'sql', 'bootstrap', 'supabase_platform.sql');
export const seedSqlFile = path.join(repoRoot, 'supabase', 'seed.sql');

export function bin(name: string): string {
  return path.join(binDir, name);
}

/**
 * The Deno executable itself. The npm `deno` wrapper runs it with spawnSync and
 * does not forward signals, so long-running servers are started directly.
 */
export function denoExecutable(): string {
  const executable = path.join(repoRoot, 'node_modules', 'deno', process.platform === 'win32' ? 'deno.exe' : 'deno');
  if (!existsSync(executable)) {
    // The wrapper puts the platform binary in place on its first run.
    execFileSync(bin('deno'), ['--version'], { stdio: 'ignore' });
  }
  return executable;
}

/**
 * `deno run` arguments for a server of this project's functions: their import
 * map and the permissions a function has on Supabase (network, env, reading
 * its files, system info), with request.signal aborted only on a client
 * disconnect (`--unstable-no-legacy-abort`), as the local stack serves them.
 */
export function denoServerArguments(script: string, extraFlags: string[] = []): string[] {
  return [
    'run',
    '--config',
    path.join(functionsDir, 'deno.json'),
    '--allow-net',
    '--allow-env',
    '--allow-read',
    '--allow-sys',
    '--unstable-no-legacy-abort',
    ...extraFlags,
    script,
  ];
}
