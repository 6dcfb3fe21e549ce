import { createMiddleware } from 'hono/factory';
import type { ErrorFormat } from '../errors.ts';
import type { AppEnv } from '../hono-env.ts';

/**
 * Errors of the routes under this middleware answer in `format` (the
 * function's error handler reads it): a dialect's clients parse only their
 * own error shape. Install it before authentication, so a 401 speaks it too.
 */
export function answerErrorsAs(format: ErrorFormat) {
  return createMiddleware<AppEnv>(async function setErrorFormat(c, next) {
    c.set('errorFormat', format);
    await next();
  });
}
