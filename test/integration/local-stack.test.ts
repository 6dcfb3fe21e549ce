import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { importJWK, type JWK, SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/lib/database.ts';
import { bin, repoRoot } from '../../scripts/lib/paths.ts';
import { runCommand } from '../../scripts/lib/run.ts';
import { eventually } from '../helpers/eventually.ts';

// `npm start` as a newcomer runs it: embedded PostgreSQL, migrations, Deno,
// then `npm run status`, a clean stop on SIGTERM, and a second start on the
// same data that keeps its secrets.
const stateDirPromise = mkdtemp(path.join(os.tmpdir(), 'switchyard-start-'));
afterAll(async () => rm(await stateDirPromise, { recursive: true, force: true }));

interface Started {
  child: ChildProcess;
  output: () => string;
}

async function startStack(env: Record<string, string>): Promise<Started> {
  const child = spawn(bin('tsx'), ['scripts/start.ts'], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: '', SWITCHYARD_TEST_DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 120_000;
  while (!output.includes('local stack is running')) {
    if (child.exitCode !== null) throw new Error(`npm start exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`npm start not ready within 120 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { child, output: () => output };
}

function stop(started: Started, signal: NodeJS.Signals): Promise<number | null> {
  return new Promise((resolve) => {
    started.child.once('exit', (code) => resolve(code));
    started.child.kill(signal);
  });
}

/** True once nothing answers at `url`, polled for at most `withinMs`. */
async function stopsServing(url: string, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    try {
      await fetch(url);
    } catch {
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

async function status(env: Record<string, string>) {
  const result = await runCommand(bin('tsx'), ['scripts/status.ts'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
  });
  return {
    code: result.code,
    values: Object.fromEntries(
      result.stdout.trim().split('\n').filter(Boolean).map((line) => line.split(/=(.*)/s).slice(0, 2)),
    ),
  };
}

describe('npm start', { timeout: 300_000 }, () => {
  it('serves the functions, prints status, stops cleanly and restarts on the same data', async () => {
    const env = {
      SWITCHYARD_STATE_DIR: await stateDirPromise,
      FUNCTIONS_PORT: String(await freePort()),
      DB_PORT: String(await freePort()),
      DEMO_UPSTREAM_PORT: String(await freePort()),
      CONSOLE_PORT: String(await freePort()),
    };
    const first = await startStack(env);
    const firstStatus = await status(env);
    expect(firstStatus.code).toBe(0);
    expect(Object.keys(firstStatus.values)).toEqual(
      expect.arrayContaining(['API_URL', 'FUNCTIONS_URL', 'DB_URL', 'ANON_KEY', 'SERVICE_ROLE_KEY', 'JWT_SECRET']),
    );
    expect(firstStatus.values.FUNCTIONS_URL).toBe(`http://127.0.0.1:${env.FUNCTIONS_PORT}/functions/v1`);

    // Ready once every check passes within its time limit (a loaded machine can miss one on the first probe).
    const ready = await eventually(
      async () => {
        const response = await fetch(`${firstStatus.values.FUNCTIONS_URL}/readiness/ready`);
        return { status: response.status, body: await response.text() };
      },
      (answer) => answer.status === 200,
    );
    expect(ready.status, ready.body).toBe(200);
    const created = await fetch(`${firstStatus.values.FUNCTIONS_URL}/ops/tenants`, {
      method: 'POST',
      headers: {
        apikey: firstStatus.values.ANON_KEY,
        authorization: `Bearer ${firstStatus.values.SERVICE_ROLE_KEY}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ name: 'Survives restart', slug: 'survives-restart' }),
    });
    expect(created.status).toBe(201);
    const tenant = (await created.json()) as { id: string };

    // The local Auth's JWKS: the public half of SIGNING_KEY_FILE, and a user token signed with it (by kid)
    // is accepted; RLS then hides a tenant the user is not in (404, not 401).
    const signingKey = JSON.parse(await readFile(firstStatus.values.SIGNING_KEY_FILE, 'utf8')) as JWK;
    const jwks = (await (await fetch(`${firstStatus.values.API_URL}/auth/v1/.well-known/jwks.json`)).json()) as {
      keys: JWK[];
    };
    expect(jwks.keys.map((key) => key.kid)).toEqual([signingKey.kid]);
    expect(jwks.keys[0].d).toBeUndefined();
    const userToken = await new SignJWT({ role: 'authenticated' })
      .setProtectedHeader({ alg: 'ES256', kid: signingKey.kid, typ: 'JWT' })
      .setSubject(crypto.randomUUID())
      .setAudience('authenticated')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(await importJWK(signingKey, 'ES256'));
    const asUser = await fetch(`${firstStatus.values.FUNCTIONS_URL}/ops/tenants/${tenant.id}`, {
      headers: { apikey: firstStatus.values.ANON_KEY, authorization: `Bearer ${userToken}` },
    });
    expect(asUser.status).toBe(404);

    // The operator console: its URL (also in status), a config.json naming these functions, and a
    // sign-in link whose token (the local operator, admin of its tenant) the functions accept.
    const consoleUrl = `http://127.0.0.1:${env.CONSOLE_PORT}`;
    expect(first.output()).toContain(`Console: ${consoleUrl}`);
    expect(firstStatus.values.CONSOLE_URL).toBe(consoleUrl);
    expect(await (await fetch(`${consoleUrl}/config.json`)).json()).toEqual({
      functionsUrl: firstStatus.values.FUNCTIONS_URL,
      anonKey: firstStatus.values.ANON_KEY,
    });
    expect(await (await fetch(consoleUrl)).text()).toContain('<div id="root"></div>');
    const link = /Console sign-in: (\S+)/.exec(first.output())?.[1] ?? '';
    expect(link.startsWith(`${consoleUrl}/#access_token=`)).toBe(true);
    const operatorTenants = await fetch(`${firstStatus.values.FUNCTIONS_URL}/ops/tenants`, {
      headers: {
        apikey: firstStatus.values.ANON_KEY,
        authorization: `Bearer ${link.split('#access_token=')[1]}`,
        origin: consoleUrl,
      },
    });
    expect(operatorTenants.status).toBe(200);
    expect(operatorTenants.headers.get('access-control-allow-origin')).toBe(consoleUrl);
    expect(((await operatorTenants.json()) as { items: { name: string; role: string }[] }).items).toEqual([
      expect.objectContaining({ name: 'Local operator', role: 'admin' }),
    ]);

    // No provider key in the vault: the demo provider answers a newcomer's first call, and says so.
    expect(first.output()).toContain('DEMO PROVIDER');
    const chat = await fetch(`${firstStatus.values.FUNCTIONS_URL}/llm-router/v1/chat/completions`, {
      method: 'POST',
      headers: {
        apikey: firstStatus.values.ANON_KEY,
        authorization: `Bearer ${firstStatus.values.SERVICE_ROLE_KEY}`,
        'x-tenant-id': tenant.id,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ model: 'demo-chat', messages: [{ role: 'user', content: 'first call' }] }),
    });
    expect(chat.status).toBe(200);
    expect(((await chat.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content).toBe(
      'echo: first call',
    );
    expect(chat.headers.get('x-switchyard-provider')).toBe('switchyard-demo');

    await stop(first, 'SIGTERM');
    expect((await status(env)).code).toBe(1);
    // Nothing is left listening on the functions port once Deno's graceful shutdown is over (bounded wait).
    expect(await stopsServing(`${firstStatus.values.FUNCTIONS_URL}/readiness/health`, 10_000)).toBe(true);

    const second = await startStack(env);
    const secondStatus = await status(env);
    expect(secondStatus.values.SERVICE_ROLE_KEY).toBe(firstStatus.values.SERVICE_ROLE_KEY);
    const again = await fetch(`${secondStatus.values.FUNCTIONS_URL}/ops/tenants`, {
      method: 'POST',
      headers: {
        apikey: secondStatus.values.ANON_KEY,
        authorization: `Bearer ${secondStatus.values.SERVICE_ROLE_KEY}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ name: 'Survives restart', slug: 'survives-restart' }),
    });
    expect(again.status).toBe(409);
    await stop(second, 'SIGINT');
  });
});
