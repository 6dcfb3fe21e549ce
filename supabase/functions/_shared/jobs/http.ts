import type { Context } from 'hono';
import { z } from 'zod';
import type { Caller } from '../auth/caller.ts';
import { sqlState } from '../db.ts';
import { HttpError } from '../errors.ts';
import { databaseMessage, jobSqlStates } from './errors.ts';

/** Job kind names, as the job_kinds table allows them. */
export const jobKindName = z.string().regex(/^[a-z][a-z0-9_.:-]{0,63}$/, 'must be a job kind name (a-z, 0-9, _ . : -)');

/**
 * The Idempotency-Key header, when sent: 1 to 255 visible ASCII characters.
 * Anything else is a 400 naming the header.
 */
export function idempotencyKeyOf(c: Context): string | undefined {
  const key = c.req.header('idempotency-key');
  if (key === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new HttpError('validation_failed', 'Idempotency-Key: must be 1 to 255 visible ASCII characters', {
      param: 'Idempotency-Key',
    });
  }
  return key;
}

/** Who did it, as recorded in the audit columns and event details. */
export function actorOf(caller: Caller): string {
  switch (caller.kind) {
    case 'service_role':
      return 'service_role';
    case 'user':
      return `user:${caller.userId}`;
    case 'api_key':
      return `api_key:${caller.apiKeyId}`;
  }
}

/**
 * Maps an error raised by a job function to the error contract (unknown
 * errors are rethrown, to become a logged 500). `kindParam` names the field
 * that carried the kind.
 */
export function jobFunctionError(error: unknown, kindParam = 'kind'): never {
  const message = databaseMessage(error);
  switch (sqlState(error)) {
    case jobSqlStates.jobNotFound:
      throw new HttpError('not_found', message);
    case jobSqlStates.notOperator:
      throw new HttpError('forbidden', message);
    case jobSqlStates.unknownKind:
      throw new HttpError('validation_failed', `${kindParam}: ${message}`, { param: kindParam });
    case jobSqlStates.notCancellable:
    case jobSqlStates.idempotencyKeyReused:
      throw new HttpError('conflict', message);
    case jobSqlStates.invalidArgument:
      // The job functions start these messages with the parameter's name.
      throw new HttpError('validation_failed', message, { param: message.split(':')[0] ?? null });
    default:
      throw error;
  }
}
