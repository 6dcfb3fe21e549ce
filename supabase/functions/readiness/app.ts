import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { foundationChecks, type ReadinessCheck, runChecks } from '../_shared/readiness/checks.ts';

export interface ReadinessOptions {
  checks?: readonly ReadinessCheck[];
  /** Each check's time limit; the whole answer stays under a second. */
  checkTimeoutMs?: number;
}

/** Liveness (`/health`, no I/O) and readiness (`/ready`, 200 or 503 with every check). */
export function createReadinessApp(deps: AppDependencies, options: ReadinessOptions = {}) {
  const checks = options.checks ?? foundationChecks;
  const checkTimeoutMs = options.checkTimeoutMs ?? 800;
  const app = createFunctionApp('readiness', deps);

  app.get('/health', (c) => c.json({ status: 'ok' }));

  app.get('/ready', async (c) => {
    const results = await runChecks(checks, deps, checkTimeoutMs);
    const ready = results.every((result) => result.status !== 'fail');
    c.header('cache-control', 'no-store');
    return c.json({ status: ready ? 'ready' : 'not_ready', checks: results }, ready ? 200 : 503);
  });

  return app;
}
