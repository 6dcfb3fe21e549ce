import { spawnSync } from 'node:child_process';
import { repoRoot } from './paths.ts';

export interface PromtoolResult {
  code: number;
  /** stdout and stderr together, trimmed. */
  output: string;
}

/**
 * Runs `promtool` (Debian: `apt-get install prometheus`) with `args`, feeding
 * `input` on stdin; undefined when promtool is not installed.
 */
export function promtool(args: readonly string[], input?: string): PromtoolResult | undefined {
  const result = spawnSync('promtool', args, { cwd: repoRoot, input, encoding: 'utf8', timeout: 60_000 });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  if (result.error) throw result.error;
  return { code: result.status ?? 1, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}

/** True when REQUIRE_PROMTOOL=1 (CI): a missing promtool is then a failure, not a notice. */
export const promtoolRequired = process.env.REQUIRE_PROMTOOL === '1';
