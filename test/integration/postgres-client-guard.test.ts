import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { denoExecutable, repoRoot } from '../../scripts/lib/paths.ts';
import { runCommand } from '../../scripts/lib/run.ts';

// Under the real Deno runtime: postgres.js's write on a closed connection,
// thrown from a timer, no longer ends the isolate; any other uncaught error
// still does.
const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-guard-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

async function runUnderDeno(stackLine: string) {
  const script = path.join(dir, `guard-${crypto.randomUUID()}.ts`);
  await writeFile(
    script,
    `import { surviveClosedConnectionWrites } from '${repoRoot}/supabase/functions/_shared/postgres-client-guard.ts';
import { createJsonLogger } from '${repoRoot}/supabase/functions/_shared/logger.ts';
surviveClosedConnectionWrites(createJsonLogger({ level: 'warn' }));
const error = new TypeError("Cannot read properties of null (reading 'write')");
error.stack = \`TypeError: \${error.message}\\n    at Immediate.nextWrite (${stackLine})\`;
setTimeout(() => { throw error; }, 0);
setTimeout(() => console.log('still serving'), 100);
`,
  );
  return await runCommand(denoExecutable(), [
    'run',
    '--config',
    `${repoRoot}/supabase/functions/deno.json`,
    '-A',
    script,
  ], {
    cwd: repoRoot,
  });
}

describe('surviveClosedConnectionWrites', () => {
  it("keeps the isolate alive for postgres.js's write after close, and logs it", async () => {
    const result = await runUnderDeno('file:///x/node_modules/postgres/src/connection.js:255:22');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('database_write_after_close');
    expect(result.stdout).toContain('still serving');
  });

  it('leaves any other uncaught error fatal', async () => {
    const result = await runUnderDeno('file:///x/app.ts:1:1');
    expect(result.code).not.toBe(0);
    expect(result.stdout).not.toContain('still serving');
  });
});
