import { constantTimeEqual } from '../_shared/auth/api-keys.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { HttpError } from '../_shared/errors.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { collectDatabaseMetrics } from '../_shared/metrics/database-metrics.ts';
import { expositionContentType, renderExposition } from '../_shared/metrics/exposition.ts';
import { isolateRequestMetrics, type RequestMetrics } from '../_shared/metrics/request-metrics.ts';
import { loadMetricsSettings } from '../_shared/metrics/settings.ts';

export interface MetricsOptions {
  /** The function's environment: METRICS_TOKEN and METRICS_DB_TIMEOUT_MS are read from it. */
  environment?: Record<string, string | undefined>;
  /** The in-memory request metrics to expose (default: this isolate's). */
  requestMetrics?: RequestMetrics;
}

/**
 * Prometheus text at `GET /metrics`, for a scraper holding METRICS_TOKEN:
 * this isolate's request metrics, and the durable figures (usage, jobs,
 * provider health) read from the database at each scrape.
 */
export function createMetricsApp(deps: AppDependencies, options: MetricsOptions = {}) {
  const settings = loadMetricsSettings(options.environment ?? {});
  const requestMetrics = options.requestMetrics ?? isolateRequestMetrics;
  const app = createFunctionApp('metrics', deps, { requestMetrics, operatorEndpoint: true });

  app.get('/', async (c) => {
    if (!settings.token) throw new HttpError('service_unavailable', 'metrics are off: METRICS_TOKEN is not set');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!match) throw new HttpError('unauthorized', 'missing bearer token (METRICS_TOKEN)');
    if (!constantTimeEqual(match[1], settings.token)) {
      throw new HttpError('unauthorized', 'bearer token is not the metrics token');
    }

    const families = [
      ...requestMetrics.families(),
      ...await collectDatabaseMetrics(deps.db, settings.databaseTimeoutMs),
    ];
    c.header('content-type', expositionContentType);
    c.header('cache-control', 'no-store');
    return c.body(renderExposition(families));
  });

  return app;
}
