import { createMiddleware } from 'hono/factory';
import { constantTimeEqual } from '../auth/api-keys.ts';
import { HttpError } from '../errors.ts';
import type { AppEnv } from '../hono-env.ts';

/**
 * Scheduled endpoints also require `X-Job-Token` (besides the service role),
 * compared in constant time with every configured token, so a scheduler's
 * token can be rotated by listing old and new together for a while.
 */
export function requireJobToken(tokens: readonly string[]) {
  return createMiddleware<AppEnv>(async function checkJobToken(c, next) {
    if (tokens.length === 0) throw new HttpError('service_unavailable', 'no job token is configured (JOB_TOKENS)');
    const presented = c.req.header('x-job-token');
    if (!presented) throw new HttpError('unauthorized', 'missing X-Job-Token header');
    let match = false;
    for (const token of tokens) if (constantTimeEqual(presented, token)) match = true;
    if (!match) throw new HttpError('unauthorized', 'X-Job-Token is not valid');
    await next();
  });
}
