import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, repoRoot } from '../../scripts/lib/paths.ts';
import { stack } from '../helpers/stack.ts';
import { drillVersionGap } from '../helpers/drill.ts';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'switchyard-launch-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Runs `tsx scripts/<script>` with only the given flags deciding the target (no status file, no DATABASE_URL). */
function run(script: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin('tsx'), [`scripts/${script}`, ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', SWITCHYARD_STATE_DIR: scratch },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout }));
  });
}

const credentials =
  () => ['--anon-key', stack.anonKey, '--service-key', stack.serviceRoleKey, '--jwt-secret', stack.jwtSecret];

describe('npm run readiness (go/no-go report)', () => {
  it('writes Markdown and JSON with every /ready check, the smoke phases, the lint gate and a verdict', async () => {
    const out = path.join(scratch, 'report.md');
    const { code, stdout } = await run('readiness-report.ts', [
      '--url',
      stack.functionsUrl,
      '--db-url',
      stack.dbUrl,
      '--no-load',
      '--out',
      out,
      ...credentials(),
    ]);
    expect(code, stdout).toBe(0);
    const markdown = await readFile(out, 'utf8');
    const report = JSON.parse(await readFile(path.join(scratch, 'report.json'), 'utf8')) as {
      verdict: string;
      reasons: string[];
      rows: { area: string; check: string; status: string }[];
    };
    expect(markdown).toContain('| area | check | status | detail |');
    expect(markdown).toMatch(/\*\*Verdict: (GO|NO-GO)\*\*/);
    const areas = new Set(report.rows.map((row) => row.area));
    expect([...areas]).toEqual(['ready', 'smoke', 'lint', 'load']);
    expect(report.rows.filter((row) => row.area === 'ready').map((row) => row.check)).toContain(
      'usage_invariant_holds',
    );
    expect(report.rows.filter((row) => row.area === 'lint').every((row) => row.status === 'PASS')).toBe(true);
    expect(report.rows.some((row) => row.status === 'FAIL')).toBe(false);
    // --no-load is a skipped required item: never GO.
    expect(report.verdict).toBe('NO-GO');
    expect(report.reasons).toContain('SKIP load load run: skipped with --no-load');
    // The test stack has no Storage: readiness skips it as optional, which does not count against GO.
    expect(report.rows.find((row) => row.area === 'ready' && row.check === 'storage')?.status).toBe('SKIP');
    expect(report.reasons.filter((reason) => reason.startsWith('SKIP ready storage'))).toEqual([]);
    expect(stdout).not.toContain(stack.serviceRoleKey);
  });

  it('refuses malformed thresholds with one FAIL line', async () => {
    const { code, stdout } = await run('readiness-report.ts', [
      '--url',
      stack.functionsUrl,
      '--thresholds',
      path.join(repoRoot, 'package.json'),
    ]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^FAIL {2}readiness: thresholds .*package\.json: load: /);
  });
});

describe('npm run probe:rls', () => {
  it('says the local stack has no PostgREST and proves the same refusals through SQL as anon', async () => {
    const { code, stdout } = await run('probe-rls.ts', [
      '--url',
      stack.functionsUrl.replace(/\/functions\/v1$/, ''),
      '--anon-key',
      stack.anonKey,
      '--db-url',
      stack.dbUrl,
      '--json',
    ]);
    const report = JSON.parse(stdout) as {
      ok: boolean;
      note: string;
      attempts: { table: string; action: string; status: string }[];
    };
    expect(code, stdout).toBe(0);
    expect(report.note).toMatch(
      /^no PostgREST-compatible endpoint at .*: the same attempts ran through SQL as anon, rolled back$/,
    );
    for (const table of ['jobs', 'artifacts', 'usage_records']) {
      const attempts = report.attempts.filter((attempt) => attempt.table === table);
      const present = await tableExists(`public.${table}`);
      if (present) expect(attempts.map((attempt) => attempt.status)).toEqual(['REFUSED', 'REFUSED', 'REFUSED']);
      else expect(attempts.map((attempt) => attempt.status)).toEqual(['ABSENT']);
    }
    expect(report.attempts.some((attempt) => attempt.status === 'ALLOWED')).toBe(false);
  });

  it('without PostgREST and without --db-url it fails with the reason', async () => {
    const { code, stdout } = await run('probe-rls.ts', [
      '--url',
      stack.functionsUrl.replace(/\/functions\/v1$/, ''),
      '--anon-key',
      stack.anonKey,
    ]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^FAIL {2}probe:rls: no PostgREST-compatible endpoint at .* and no --db-url/);
  });
});

async function tableExists(name: string): Promise<boolean> {
  const sql = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ present: boolean }[]>`select to_regclass(${name}) is not null as present`;
    return row.present;
  } finally {
    await sql.end();
  }
}

describe('npm run drill:backup', () => {
  it('dumps, restores into a scratch database, verifies and cleans up (or names the client/server version gap)', async () => {
    const { code, stdout } = await run('drill-backup.ts', ['--db-url', stack.dbUrl, '--json']);
    const report = JSON.parse(stdout) as {
      ok: boolean;
      error?: string;
      rto_seconds?: number;
      dump_bytes?: number;
      tables?: number;
      problems?: string[];
      scratch_database?: string;
    };
    if (report.error) {
      // The embedded server is PostgreSQL 17; Debian's pg_dump 15 (CI's server is 15) cannot dump it.
      expect(report.error).toMatch(drillVersionGap);
      expect(code).toBe(1);
      return;
    }
    expect(code, stdout).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.dump_bytes).toBeGreaterThan(1000);
    expect(report.tables).toBeGreaterThan(5);
    expect(report.rto_seconds).toBeGreaterThan(0);
    const sql = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
    try {
      // Only this drill's scratch database: other drills (runbooks, other runs on the server) may be mid-way.
      expect(report.scratch_database).toMatch(/^switchyard_drill_[a-z0-9]+$/);
      const left = await sql`select datname from pg_database where datname = ${report.scratch_database!}`;
      expect(left).toEqual([]);
    } finally {
      await sql.end();
    }
  });
});

describe('npm run load', () => {
  it('runs a tiny bounded loopback load and reports percentiles; refuses a non-loopback target', async () => {
    const { code, stdout } = await run('load.ts', [
      '--url',
      stack.functionsUrl,
      '--path',
      '/readiness/health',
      '--connections',
      '2',
      '--duration',
      '1',
      '--max-requests',
      '200',
      '--json',
    ]);
    expect(code, stdout).toBe(0);
    const result = JSON.parse(stdout) as {
      requests: number;
      errors: number;
      p50_ms: number;
      p95_ms: number;
      p99_ms: number;
    };
    expect(result.requests).toBeGreaterThan(0);
    expect(result.requests).toBeLessThanOrEqual(202);
    expect(result.errors).toBe(0);
    expect(result.p50_ms).toBeLessThanOrEqual(result.p95_ms);
    expect(result.p95_ms).toBeLessThanOrEqual(result.p99_ms);
    const remote = await run('load.ts', ['--url', 'http://192.0.2.1/functions/v1']);
    expect(remote).toEqual({
      code: 1,
      stdout: 'FAIL  load: load runs only against loopback addresses, not 192.0.2.1\n',
    });
  });
});
