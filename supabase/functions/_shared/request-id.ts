import type { Context } from 'hono';
import { HttpError } from './errors.ts';
import type { AppEnv } from './hono-env.ts';

/**
 * Request ids. A caller may send its own `x-request-id` (1 to 128 of
 * `[A-Za-z0-9_=-]`); otherwise a function assigns one of the form
 * `req_<32 hex>`. The LLM router admits a caller-chosen id on a reservation of
 * its own (so a retry with the same id is refused by the SQL saga) and an
 * assigned id under a budget lease (no row until it is settled). An id in the
 * assigned form is therefore never accepted from a caller: it names a request
 * the router already answered, or is about to (a streamed answer sends its id
 * before it settles), or one nobody made.
 */
const assignedForm = /^req_[0-9a-f]{32}$/;

/** A fresh id in the assigned form (the request-id middleware's generator). */
export function assignRequestId(): string {
  return `req_${crypto.randomUUID().replaceAll('-', '')}`;
}

/** The answer to an id that was used before: the same whichever tenant sends it, so it tells nobody whose it was. */
export function requestIdAlreadyUsed(): HttpError {
  return new HttpError('conflict', 'x-request-id has already been used; send a new one for each request', {
    param: 'x-request-id',
  });
}

/**
 * This request's id and whether the caller chose it. Refuses, before any
 * other work, a caller-sent id in the assigned form.
 */
export function meteredRequestId(c: Context<AppEnv>): { requestId: string; chosenByCaller: boolean } {
  const requestId = c.get('requestId');
  const chosenByCaller = c.req.header('x-request-id') === requestId;
  if (chosenByCaller && assignedForm.test(requestId)) throw requestIdAlreadyUsed();
  return { requestId, chosenByCaller };
}
