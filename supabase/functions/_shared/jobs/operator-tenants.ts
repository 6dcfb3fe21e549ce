import type { Caller } from '../auth/caller.ts';
import type { Database } from '../db.ts';
import { HttpError } from '../errors.ts';

/** Tenant roles that may list and requeue dead letters. */
export const deadLetterRoles = ['operator', 'admin'] as const;

/** The tenants in which this user is an operator or admin. */
export async function operatedTenants(db: Database, userId: string): Promise<string[]> {
  const rows = await db<{ tenant_id: string }[]>`
    select tenant_id from public.memberships
    where user_id = ${userId} and role in ${db([...deadLetterRoles])}
    order by tenant_id`;
  return rows.map((row) => row.tenant_id);
}

/**
 * Dead-letter endpoints: the service role acts across tenants; anyone else
 * must be a user who is operator or admin of at least one tenant.
 */
export function requireDeadLetterOperator(
  caller: Caller,
): asserts caller is Extract<Caller, { kind: 'service_role' | 'user' }> {
  if (caller.kind === 'api_key') {
    throw new HttpError('forbidden', 'dead letters are for operators: the service role or a tenant operator or admin');
  }
}
