import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, repoRoot } from '../../scripts/lib/paths.ts';
import { stack } from '../helpers/stack.ts';

interface Line {
  id?: string;
  status?: string;
  detail?: string;
  summary?: { pass: number; fail: number; skip: number; p0_failed: number; error?: string };
}

function runSmoke(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin('tsx'), ['scripts/smoke.ts', ...args], {
      cwd: repoRoot,
      // A state dir with no status file, so only the flags decide the target.
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', SWITCHYARD_STATE_DIR: scratch },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** Whether a function is served by the test stack (a missing one answers 404 function_not_found). */
async function deployed(name: string): Promise<boolean> {
  const response = await fetch(`${stack.functionsUrl}/${name}`, { headers: { apikey: stack.anonKey } });
  const body = await response.json().catch(() => ({})) as { error?: { code?: string } };
  return !(response.status === 404 && body.error?.code !== 'route_not_found');
}

let scratch: string;
let testKeyFile: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'switchyard-smoke-'));
  const key = stack.jwksSigningKeys.find((candidate) => candidate.alg === 'ES256');
  if (!key) throw new Error('the fake JWKS has no ES256 key');
  testKeyFile = path.join(scratch, 'test-key.json');
  await writeFile(testKeyFile, JSON.stringify({ ...key.privateJwk, kid: key.kid, alg: key.alg }));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('npm run smoke', () => {
  it('runs P0, P1 and chaos against the stack with the real clients: PASS where deployed, SKIP with the reason elsewhere', async () => {
    const { code, stdout, stderr } = await runSmoke([
      '--url',
      stack.functionsUrl,
      '--json',
      '--chaos',
      '--retries',
      '1',
      '--anon-key',
      stack.anonKey,
      '--service-key',
      stack.serviceRoleKey,
      '--jwt-secret',
      stack.jwtSecret,
      '--test-key',
      testKeyFile,
      '--db-url',
      stack.dbUrl,
    ]);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as Line);
    const results: Record<string, Line> = Object.fromEntries(
      lines.filter((line) => line.id).map((line) => [line.id, line]),
    );
    const summary = lines.at(-1)?.summary;
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(summary?.fail, stdout).toBe(0);
    expect(Object.keys(results)).toEqual([
      'P0-01',
      'P0-02',
      'P0-03',
      'P0-04',
      'P0-05',
      'P0-06',
      'P0-07',
      'P0-08',
      'P0-09',
      'P0-10',
      'P0-11',
      'P1-01',
      'P1-02',
      'P1-03',
      'C-01',
      'C-02',
      'C-03',
      'C-04',
    ]);
    for (const id of ['P0-01', 'P0-02', 'P0-03', 'P0-04', 'P0-05', 'P0-06', 'P0-11', 'C-01']) {
      expect(results[id].status, `${id}: ${results[id].detail}`).toBe('PASS');
    }
    for (const line of Object.values(results)) expect(line.detail?.length, line.id).toBeGreaterThan(0);

    // Router checks light up once llm-router is served; until then they SKIP naming it.
    const router = await deployed('llm-router');
    for (const id of ['P0-07', 'P1-02', 'C-02', 'C-03']) {
      if (router) expect(results[id].status, `${id}: ${results[id].detail}`).toBe('PASS');
      else {expect(results[id]).toMatchObject({
          status: 'SKIP',
          detail: 'function llm-router is not deployed (LLM-router issue)',
        });}
    }
    for (const id of ['P0-08', 'P0-09', 'P0-10', 'C-04']) {
      expect(['PASS', 'SKIP'], `${id}: ${results[id].detail}`).toContain(results[id].status);
    }
    if (!(await deployed('jobs'))) expect(results['P1-01'].detail).toMatch(/jobs\/DLQ issue/);
    if (!(await deployed('keys'))) expect(results['P1-03'].detail).toMatch(/key-vault issue/);

    // Credentials never appear in the output.
    for (const secret of [stack.serviceRoleKey, stack.jwtSecret, stack.anonKey]) {
      expect(stdout + stderr).not.toContain(secret);
    }
  });

  it('a wrong --url gives FAIL lines with the reason, exit 1, no stack trace', async () => {
    const { code, stdout } = await runSmoke([
      '--url',
      'http://127.0.0.1:59999/functions/v1',
      '--anon-key',
      'a',
      '--service-key',
      's',
      '--phase',
      'P0',
    ]);
    expect(code).toBe(1);
    expect(stdout).toMatch(
      /FAIL {2}P0-01 {2}health .*cannot reach http:\/\/127\.0\.0\.1:59999\/functions\/v1\/readiness\/health: ECONNREFUSED/,
    );
    expect(stdout).toMatch(/FAIL {2}P0-02 .*not run: cannot reach/);
    expect(stdout).not.toMatch(/\n\s+at /);
  });

  it('bad input is refused with one FAIL line: not a URL, an unknown phase, a missing key', async () => {
    const notUrl = await runSmoke(['--url', 'not a url']);
    expect(notUrl).toMatchObject({ code: 1, stdout: 'FAIL  smoke: --url is not a URL: "not a url"\n' });
    const phase = await runSmoke(['--url', stack.functionsUrl, '--phase', 'P7', '--json']);
    expect(phase.code).toBe(1);
    expect(JSON.parse(phase.stdout).summary.error).toBe('--phase must be P0 or P1, not P7');
    const noKey = await runSmoke(['--url', stack.functionsUrl, '--phase', 'P0', '--json']);
    expect(noKey.code).toBe(1);
    const first = JSON.parse(noKey.stdout.split('\n')[0]) as Line;
    expect(first).toMatchObject({
      id: 'P0-01',
      status: 'FAIL',
      detail: 'no anon key: pass --anon-key or set ANON_KEY',
    });
  });
});
