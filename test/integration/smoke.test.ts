import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, repoRoot } from '../../scripts/lib/paths.ts';
import { catalogCaughtUp, createCatalogFixture } from '../helpers/catalog.ts';
import { connectDatabase, createTenant, serviceHeaders, stack } from '../helpers/stack.ts';
import { type FakeUpstream, startFakeUpstream } from '../fakes/fake-upstream.ts';

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

let scratch: string;
let testKeyFile: string;
// The test stack has no demo provider: the smoke's model is served by a fake upstream on loopback
// (with its fault control API), under names no other test uses, with a global key in the vault.
const sql = connectDatabase();
let fake: FakeUpstream;
let model: string;
beforeAll(async () => {
  fake = await startFakeUpstream();
  const fixture = await createCatalogFixture(sql, { baseUrl: fake.endpoints.openai, maxRetries: 2 });
  model = fixture.alias;
  const stored = await fetch(`${stack.functionsUrl}/keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ provider: fixture.providerSlug, secret: `sk-smoke-${crypto.randomUUID()}` }),
  });
  expect(stored.status).toBe(201);
  // The router caches the catalog: wait until it serves the new model (its listing through a tenant key of our own).
  const created = await fetch(`${stack.functionsUrl}/ops/tenants/${await createTenant('Smoke catalog')}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"catalog"}',
  });
  const { key: tenantKey } = (await created.json()) as { key: string };
  await catalogCaughtUp(sql, fixture.providerSlug, async () => {
    const response = await fetch(`${stack.functionsUrl}/llm-router/v1/models`, {
      headers: { apikey: stack.anonKey, authorization: `Bearer ${tenantKey}` },
    });
    return ((await response.json()) as { data: { id: string }[] }).data.map((listed) => listed.id);
  });
  scratch = await mkdtemp(path.join(os.tmpdir(), 'switchyard-smoke-'));
  const key = stack.jwksSigningKeys.find((candidate) => candidate.alg === 'ES256');
  if (!key) throw new Error('the fake JWKS has no ES256 key');
  testKeyFile = path.join(scratch, 'test-key.json');
  await writeFile(testKeyFile, JSON.stringify({ ...key.privateJwk, kid: key.kid, alg: key.alg }));
});
afterAll(async () => {
  await fake?.close();
  await sql.end();
  await rm(scratch, { recursive: true, force: true });
});

describe('npm run smoke', () => {
  it('runs P0, P1 and chaos against the stack with the real clients: every check PASSes', async () => {
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
      '--model',
      model,
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
    for (const [id, line] of Object.entries(results)) {
      expect(line.status, `${id}: ${line.detail}`).toBe('PASS');
      expect(line.detail?.length, id).toBeGreaterThan(0);
    }
    expect(summary).toMatchObject({ pass: 18, fail: 0, skip: 0, p0_failed: 0 });
    expect(results['P0-08'].detail).toContain(`chat completion of ${model}`);
    expect(results['P1-01'].detail).toMatch(
      /failed into the DLQ, listed, requeued \(same id, audited by .+\), ran again: succeeded/,
    );
    expect(results['P1-03'].detail).toMatch(/^14\/14 requests answered 200 .*\(v1 grace, v2 active\)$/);
    expect(results['C-03'].detail).toMatch(/^10 parallel requests answered \(.*200.*\); invariant empty$/);
    expect(results['C-04'].detail).toMatch(/^2 upstream 503s: the request answered (200|502)/);
    // The fault was really injected (the upstream saw 503s) and cleared afterwards.
    expect(fake.requests.some((request) => request.fault === 'status')).toBe(true);
    expect(fake.faults()).toEqual([]);

    // Credentials never appear in the output.
    for (const secret of [stack.serviceRoleKey, stack.jwtSecret, stack.anonKey]) {
      expect(stdout + stderr).not.toContain(secret);
    }
  });

  it('without a database URL the DLQ round trip and the key rotation SKIP naming the reason', async () => {
    const { code, stdout } = await runSmoke([
      '--url',
      stack.functionsUrl,
      '--json',
      '--phase',
      'P1',
      '--anon-key',
      stack.anonKey,
      '--service-key',
      stack.serviceRoleKey,
      '--model',
      model,
    ]);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as Line);
    expect(code, stdout).toBe(0);
    expect(lines.slice(0, 3)).toMatchObject([
      {
        id: 'P1-01',
        status: 'SKIP',
        detail: 'the worker step needs the database URL (--db-url or the local stack status)',
      },
      { id: 'P1-02', status: 'PASS' },
      {
        id: 'P1-03',
        status: 'SKIP',
        detail: 'finding the local demo upstream needs the database URL (--db-url or the local stack status)',
      },
    ]);
    expect(lines.at(-1)?.summary).toMatchObject({ pass: 1, fail: 0, skip: 2 });
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
