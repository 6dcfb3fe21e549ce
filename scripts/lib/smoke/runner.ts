import { CheckFailure, CheckSkip, SmokeContext } from './context.ts';
import { type Phase, type SmokeCheck, smokeChecks } from './checks.ts';
import type { SmokeTarget } from './target.ts';

export type SmokeStatus = 'PASS' | 'FAIL' | 'SKIP';

export interface SmokeResult {
  id: string;
  phase: Phase;
  name: string;
  status: SmokeStatus;
  detail: string;
  duration_ms: number;
  attempts: number;
}

export interface SmokeSummary {
  url: string;
  run_id: string;
  phases: Phase[];
  pass: number;
  fail: number;
  skip: number;
  p0_failed: number;
  duration_ms: number;
}

export interface SmokeOptions {
  phases: readonly Phase[];
  /** Extra tries for a failed check (not for a skipped one). */
  retries: number;
  timeoutMs: number;
  onResult?: (result: SmokeResult) => void;
}

/** A reason without stack traces or credentials. */
function reasonOf(error: unknown): string {
  if (error instanceof Error) {
    return error.message.replace(/(Bearer\s+)\S+/gi, '$1[redacted]').replace(
      /postgres(ql)?:\/\/\S+/g,
      '[database url]',
    );
  }
  return String(error);
}

async function runOne(check: SmokeCheck, ctx: SmokeContext): Promise<Omit<SmokeResult, 'attempts' | 'duration_ms'>> {
  const base = { id: check.id, phase: check.phase, name: check.name };
  try {
    return { ...base, status: 'PASS', detail: await check.run(ctx) };
  } catch (error) {
    if (error instanceof CheckSkip) return { ...base, status: 'SKIP', detail: error.message };
    if (error instanceof CheckFailure) return { ...base, status: 'FAIL', detail: error.message };
    return { ...base, status: 'FAIL', detail: `unexpected error: ${reasonOf(error)}` };
  }
}

/** Runs the selected phases in order; once the functions are unreachable the rest fail at once with that reason. */
export async function runSmoke(
  target: SmokeTarget,
  options: SmokeOptions,
): Promise<{ results: SmokeResult[]; summary: SmokeSummary }> {
  const started = performance.now();
  const ctx = new SmokeContext(target, options.timeoutMs);
  const results: SmokeResult[] = [];
  let unreachable: string | undefined;
  try {
    for (const check of smokeChecks.filter((candidate) => options.phases.includes(candidate.phase))) {
      const checkStarted = performance.now();
      let attempts = 0;
      let outcome: Omit<SmokeResult, 'attempts' | 'duration_ms'>;
      if (unreachable) {
        outcome = {
          id: check.id,
          phase: check.phase,
          name: check.name,
          status: 'FAIL',
          detail: `not run: ${unreachable}`,
        };
      } else {
        do {
          attempts += 1;
          outcome = await runOne(check, ctx);
          if (outcome.status === 'FAIL' && attempts <= options.retries) {
            await new Promise((resolve) => setTimeout(resolve, 500 * attempts));
          }
        } while (outcome.status === 'FAIL' && attempts <= options.retries);
        if (outcome.status === 'FAIL' && /^cannot reach /.test(outcome.detail) && check.id === 'P0-01') {
          unreachable = outcome.detail;
        }
      }
      const result = { ...outcome, duration_ms: Math.round(performance.now() - checkStarted), attempts };
      results.push(result);
      options.onResult?.(result);
    }
  } finally {
    await ctx.close();
  }
  const count = (status: SmokeStatus) => results.filter((result) => result.status === status).length;
  return {
    results,
    summary: {
      url: target.functionsUrl,
      run_id: ctx.runId,
      phases: [...options.phases],
      pass: count('PASS'),
      fail: count('FAIL'),
      skip: count('SKIP'),
      p0_failed: results.filter((result) => result.phase === 'P0' && result.status === 'FAIL').length,
      duration_ms: Math.round(performance.now() - started),
    },
  };
}

/** One human line per check. */
export function formatResult(result: SmokeResult): string {
  const retried = result.attempts > 1 ? ` (${result.attempts} tries)` : '';
  return `${result.status.padEnd(4)}  ${result.id.padEnd(5)}  ${result.name.padEnd(44)} ${
    String(result.duration_ms).padStart(6)
  } ms  ${result.detail}${retried}`;
}
