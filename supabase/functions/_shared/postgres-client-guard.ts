import type { Logger } from './logger.ts';

/**
 * postgres.js 3.4.x can run a socket write it queued with setImmediate after
 * the connection has closed (the database went away in the middle of a
 * write): `socket.write` on null throws from the timer, outside any query,
 * and an uncaught error ends the isolate with every request in it. The
 * connection is already closed and its queries already failed (the callers
 * answer 503 database_unavailable), so the isolate carries on; the database
 * outage test in npm test found it. Any other uncaught error is left alone.
 */
export function isPostgresWriteAfterClose(error: unknown): boolean {
  return error instanceof TypeError && /reading 'write'/.test(error.message) &&
    /postgres[\\/](cjs[\\/])?src[\\/]connection\.js/.test(error.stack ?? '');
}

let installed = false;

/** In runtimes that report uncaught errors as an `error` event (Deno, Supabase Edge), keeps the isolate alive for this one. */
export function surviveClosedConnectionWrites(logger: Logger): void {
  const target = globalThis as unknown as Partial<EventTarget>;
  if (installed || typeof target.addEventListener !== 'function') return;
  installed = true;
  target.addEventListener('error', (event) => {
    const error = (event as ErrorEvent).error;
    if (!isPostgresWriteAfterClose(error)) return;
    event.preventDefault();
    logger.warn('database_write_after_close', { message: 'a closed database connection dropped a queued write' });
  });
}
