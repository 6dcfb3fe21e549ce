import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { type ReadinessCheck, runChecks } from '../_shared/readiness/checks.ts';
import { launchChecks } from '../_shared/readiness/launch-checks.ts';
import { loadReadinessSettings } from '../_shared/readiness/settings.ts';

export interface ReadinessOptions {
  checks?: readonly ReadinessCheck[];
  /**
   * The function's environment: thresholds (READINESS_*) are read from it and
   * the secrets check sees which names are set (never their values).
   */
  environment?: Record<string, string | undefined>;
  /** Each check's time limit (overrides READINESS_CHECK_TIMEOUT_MS); the whole answer stays under a second. */
  checkTimeoutMs?: number;
}

/** Liveness (`/health`, no I/O) and readiness (`/ready`, 200 or 503 with every check). */
export function createReadinessApp(deps: AppDependencies, options: ReadinessOptions = {}) {
  const checks = options.checks ?? launchChecks;
  const loaded = loadReadinessSettings(options.environment);
  const settings = { ...loaded, checkTimeoutMs: options.checkTimeoutMs ?? loaded.checkTimeoutMs };
  const app = createFunctionApp('readiness', deps);

  app.get('/health', (c) => c.json({ status: 'ok' }));

  app.get('/ready', async (c) => {
    const results = await runChecks(checks, deps, settings);
    const ready = results.every((result) => result.status !== 'fail');
    c.header('cache-control', 'no-store');
    return c.json({ status: ready ? 'ready' : 'not_ready', checks: results }, ready ? 200 : 503);
  });

  return app;
}
