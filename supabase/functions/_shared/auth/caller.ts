import type { DatabaseIdentity } from '../db.ts';

/** Who is calling, after authentication. */
export type Caller =
  | { kind: 'service_role'; via: 'jwt' | 'secret_key' }
  | { kind: 'user'; userId: string; claims: Record<string, unknown> }
  | { kind: 'api_key'; tenantId: string; apiKeyId: string };

/** The database identity a caller's queries run under (see withIdentity). */
export function databaseIdentityOf(caller: Caller): DatabaseIdentity {
  switch (caller.kind) {
    case 'service_role':
      return { role: 'service_role', claims: { role: 'service_role' } };
    case 'user':
      return { role: 'authenticated', claims: { ...caller.claims, role: 'authenticated', sub: caller.userId } };
    case 'api_key':
      // API keys act for their tenant through service-role SQL functions that
      // take the tenant explicitly; they never get a user's RLS identity.
      return { role: 'service_role', claims: { role: 'service_role', tenant_id: caller.tenantId } };
  }
}
