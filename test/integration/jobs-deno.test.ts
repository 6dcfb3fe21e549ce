import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { enqueueJobs, registerJobKind } from '../../supabase/functions/_shared/jobs/index.ts';
import { denoExecutable, functionsDir, repoRoot } from '../../scripts/lib/paths.ts';
import { connectDatabase, stack } from '../helpers/stack.ts';

// The same worker library the Node tests use, run by Deno (as an Edge
// Function or a Deno worker process would run it).
const sql = connectDatabase();
afterAll(() => sql.end());

it('runs jobs under Deno', async () => {
  const kind = `test.deno.${crypto.randomUUID().slice(0, 8)}`;
  await registerJobKind(sql, { kind, maxAttempts: 2, timeoutSeconds: 10 });
  const ids = await enqueueJobs(sql, Array.from({ length: 20 }, (_, n) => ({ kind, payload: { n } })));

  const { stdout } = await promisify(execFile)(
    denoExecutable(),
    [
      'run',
      '--quiet',
      '--config',
      path.join(functionsDir, 'deno.json'),
      '-A',
      'test/helpers/deno-job-worker.ts',
      stack.dbUrl,
      kind,
      '20',
    ],
    { cwd: repoRoot, env: { ...process.env, DENO_NO_UPDATE_CHECK: '1' }, timeout: 60_000 },
  );
  expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ claimed: 20, succeeded: 20, errors: 0 });

  const rows = await sql<{ status: string; worker: string; doubled: number; n: number }[]>`
    select status, worker, (result ->> 'doubled')::int as doubled, (payload ->> 'n')::int as n
    from public.jobs where id = any (${ids}::uuid[])`;
  expect(rows).toHaveLength(20);
  expect(rows.every((row) => row.status === 'succeeded' && row.worker === 'deno-runtime' && row.doubled === row.n * 2))
    .toBe(true);
}, 90_000);
