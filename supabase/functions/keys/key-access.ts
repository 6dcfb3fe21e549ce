import type { Context } from 'hono';
import { z } from 'zod';
import { databaseIdentityOf } from '../_shared/auth/caller.ts';
import { sqlState, type Transaction, withIdentity } from '../_shared/db.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { HttpError } from '../_shared/errors.ts';
import type { AppEnv } from '../_shared/hono-env.ts';

/** Field schemas the key routes share. Messages never quote the value (it may be a secret). */
export const providerField = z.string({ error: 'required, a string' }).regex(
  /^[a-z0-9][a-z0-9_-]{0,62}$/,
  'a provider key name: lower-case letters, digits, "_" and "-"',
);
export const labelField = z.string({ error: 'must be a string' }).regex(
  /^[a-z0-9][a-z0-9_.-]{0,62}$/,
  'lower-case letters, digits, ".", "_" and "-", at most 63',
);
export const secretField = z
  .string({ error: (issue) => (issue.input === undefined ? 'required' : 'must be a string') })
  .min(1, 'must not be empty')
  .max(8192, 'must be at most 8192 characters')
  .refine((secret) => secret.trim() === secret, 'must not start or end with whitespace');
export const keyIdParams = z.object({ id: z.uuid('must be a UUID') });

/**
 * Runs `work` as the caller (withIdentity): RLS decides which keys a tenant
 * user sees and may change; the service role sees all of them.
 */
export function asCaller<T>(deps: AppDependencies, c: Context<AppEnv>, work: (tx: Transaction) => Promise<T>) {
  return withIdentity(deps.db, databaseIdentityOf(c.get('caller')), work);
}

interface DatabaseErrorFields {
  message?: string;
  hint?: string;
}

/**
 * Maps a refusal of the key vault's SQL functions to the error contract.
 * Their messages are written for callers (no values); the database's own
 * DETAIL lines (which name row values) are never passed on.
 */
export function keyWriteRefused(error: unknown, action: string): never {
  const state = sqlState(error);
  const { message = '', hint } = (error ?? {}) as DatabaseErrorFields;
  switch (state) {
    case '22023':
      // Shaped like a schema miss: the field at fault is the first issue's path.
      throw new HttpError('validation_failed', message, {
        param: hint ?? null,
        details: { issues: [{ path: hint ?? '', message: message.replace(/^[a-z_]+: /, '') }] },
      });
    case 'P0002':
      throw new HttpError('not_found', message);
    case '42501':
      throw new HttpError(
        'forbidden',
        message.startsWith('only ') ? message : `only an admin of this tenant can ${action}`,
      );
    case '23503':
      throw new HttpError('not_found', 'tenant not found');
    case '23505':
      throw new HttpError(
        'conflict',
        'a key for this provider and label already exists for this tenant: rotate it instead',
      );
    case '40001':
    case '55000':
      throw new HttpError('conflict', message, { details: hint ? { field: hint } : null });
  }
  throw error;
}
