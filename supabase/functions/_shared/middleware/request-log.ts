import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../hono-env.ts';
import type { Logger } from '../logger.ts';

/** One structured line per request; never headers or bodies. */
export function requestLog(logger: Logger, functionName: string) {
  return createMiddleware<AppEnv>(async function logRequest(c, next) {
    // A duration for the logs/metrics, not a time of day: the monotonic clock, nothing a test needs to move.
    const started = performance.now();
    await next();
    logger.info('request', {
      function: functionName,
      request_id: c.get('requestId'),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
    });
  });
}
