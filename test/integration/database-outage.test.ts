import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseServer, freePort, startEmbeddedPostgres } from '../../scripts/lib/database.ts';
import { generateSecrets, type LocalSecrets } from '../../scripts/lib/secrets.ts';
import { type RunningStack, startStack } from '../../scripts/lib/stack.ts';

// A dropped database connection is a 503, never a 500 (issue 21): the real
// functions under Deno against a PostgreSQL of this test's own (never the
// shared server), restarted while a bounded load runs. Stopping PostgreSQL
// terminates every backend (57P01, then resets and refused connections), the
// cases one classifier maps to 503 database_unavailable with Retry-After.
let dataRoot: string;
let port: number;
let server: DatabaseServer | undefined;
let stack: RunningStack;
let secrets: LocalSecrets;
/** What the functions printed (errors only), shown when the test fails. */
const functionsLog: string[] = [];

const startDatabase = () => startEmbeddedPostgres({ dataDir: path.join(dataRoot, 'pgdata'), port, persistent: true });

beforeAll(async () => {
  dataRoot = await mkdtemp(path.join(os.tmpdir(), 'switchyard-db-outage-'));
  port = await freePort();
  server = await startDatabase();
  secrets = await generateSecrets();
  stack = await startStack({
    stateDir: path.join(dataRoot, 'state'),
    functionsPort: await freePort(),
    databasePort: port,
    databaseUrl: server.url,
    secrets,
    functionsEnv: { LOG_LEVEL: 'error' },
    functionsOutput: (line) => functionsLog.push(line),
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await server?.stop();
  await rm(dataRoot, { recursive: true, force: true });
});

interface ServiceAnswer {
  status: number;
  body: { id?: string; error?: { code?: string } };
  retryAfter: string | null;
}

/**
 * One request on a fresh connection (no keep-alive): the test is about how
 * the functions answer while the database is away, not about a client
 * reusing a socket the server has just closed.
 */
function service(pathname: string, method = 'GET', body?: string): Promise<ServiceAnswer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(new URL(`${stack.functionsUrl}${pathname}`), {
      method,
      agent: false,
      headers: {
        apikey: secrets.anonKey,
        authorization: `Bearer ${secrets.serviceRoleKey}`,
        'content-type': 'application/json',
      },
    }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        const retryAfter = response.headers['retry-after'];
        resolve({ status: response.statusCode ?? 0, body: JSON.parse(text), retryAfter: retryAfter ?? null });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

interface Answer {
  phase: 'before' | 'down' | 'after';
  status: number;
  code: string | undefined;
  retryAfter: string | null;
}

describe('PostgreSQL restarted under load', () => {
  it(
    'answers 503 database_unavailable with Retry-After while it is down, 0 x 500, and serves again after',
    async () => {
      const created = await service('/ops/tenants', 'POST', JSON.stringify({ name: 'Outage' }));
      expect(created.status).toBe(201);
      const tenantId = created.body.id as string;

      const answers: Answer[] = [];
      let phase: Answer['phase'] = 'before';
      let stopping = false;
      // Reads and writes, four at a time, each worker bounded in count.
      const worker = async (index: number) => {
        for (let i = 0; i < 400 && !stopping; i++) {
          try {
            const answer = i % 2 === 0 ? await service(`/ops/tenants/${tenantId}`) : await service(
              `/ops/tenants/${tenantId}/api-keys`,
              'POST',
              JSON.stringify({ name: `outage-${index}-${i}` }),
            );
            answers.push({
              phase,
              status: answer.status,
              code: answer.body.error?.code,
              retryAfter: answer.retryAfter,
            });
          } catch (error) {
            // The functions did not answer at all (they must): counted, with the reason.
            answers.push({ phase, status: 0, code: `no answer: ${String(error)}`, retryAfter: null });
          }
        }
      };
      const waitFor = async (done: () => boolean) => {
        for (let i = 0; i < 600 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      };
      const load = Promise.all([0, 1, 2, 3].map(worker));

      await waitFor(() => answers.filter((a) => a.status > 0 && a.status < 300).length >= 20);
      phase = 'down';
      await server?.stop();
      server = undefined;
      await waitFor(() => answers.filter((a) => a.phase === 'down').length >= 20);
      server = await startDatabase();
      phase = 'after';
      await waitFor(() => answers.filter((a) => a.phase === 'after' && a.status > 0 && a.status < 300).length >= 20);
      stopping = true;
      await load;

      expect(
        answers.filter((a) => a.status === 0 || (a.status >= 500 && a.status !== 503)),
        functionsLog.slice(-20).join('\n'),
      ).toEqual([]);
      expect(
        answers.filter((a) =>
          a.status >= 300 && !(a.status === 503 && a.code === 'database_unavailable' && a.retryAfter === '1')
        ),
      ).toEqual([]);
      expect(answers.filter((a) => a.phase === 'before').every((a) => a.status > 0 && a.status < 300)).toBe(true);
      expect(answers.filter((a) => a.phase === 'down' && a.status === 503).length).toBeGreaterThanOrEqual(1);
      expect(answers.filter((a) => a.phase === 'after' && a.status > 0 && a.status < 300).length)
        .toBeGreaterThanOrEqual(20);
    },
    180_000,
  );
});
