import type { Database, Transaction } from '../db.ts';
import { HttpError } from '../errors.ts';
import { isUuid } from '../validation.ts';
import type { Caller } from './caller.ts';

/** The tenant a request acts for, and who inside it. */
export interface TenantContext {
  tenantId: string;
  userId?: string;
  apiKeyId?: string;
}

export interface ResolveTenantOptions {
  /** Tenant roles a user must hold (operator endpoints); default: any membership. */
  roles?: readonly string[];
}

/**
 * Which tenant a request acts for. A tenant API key is bound to its tenant; a
 * user picks one of their tenants (where they hold one of `roles`, when given)
 * with `x-tenant-id`, needed only when there are several; the service role
 * must name one.
 */
export async function resolveTenant(
  db: Database | Transaction,
  caller: Caller,
  requestedTenantId: string | undefined,
  { roles }: ResolveTenantOptions = {},
): Promise<TenantContext> {
  if (requestedTenantId !== undefined && !isUuid(requestedTenantId)) {
    throw new HttpError('validation_failed', 'x-tenant-id: must be a UUID', { param: 'x-tenant-id' });
  }
  switch (caller.kind) {
    case 'api_key':
      if (requestedTenantId && requestedTenantId !== caller.tenantId) {
        throw new HttpError('forbidden', 'this API key belongs to another tenant');
      }
      return { tenantId: caller.tenantId, apiKeyId: caller.apiKeyId };
    case 'service_role': {
      if (!requestedTenantId) {
        throw new HttpError('validation_failed', 'x-tenant-id: required when calling as the service role', {
          param: 'x-tenant-id',
        });
      }
      const [tenant] = await db`select id from public.tenants where id = ${requestedTenantId}`;
      if (!tenant) throw new HttpError('not_found', 'tenant not found');
      return { tenantId: requestedTenantId };
    }
    case 'user': {
      const memberships = await db<{ tenant_id: string; role: string }[]>`
        select tenant_id, role from public.memberships where user_id = ${caller.userId} order by tenant_id`;
      const tenantIds = memberships.filter((row) => !roles || roles.includes(row.role)).map((row) => row.tenant_id);
      const what = roles ? 'an operator or admin of' : 'a member of';
      if (requestedTenantId) {
        if (!tenantIds.includes(requestedTenantId)) {
          throw new HttpError('forbidden', `you are not ${what} this tenant`);
        }
        return { tenantId: requestedTenantId, userId: caller.userId };
      }
      if (tenantIds.length === 1) return { tenantId: tenantIds[0], userId: caller.userId };
      if (tenantIds.length === 0) throw new HttpError('forbidden', `you are not ${what} any tenant`);
      throw new HttpError(
        'validation_failed',
        `x-tenant-id: required, you ${roles ? 'operate' : 'belong to'} several tenants`,
        { param: 'x-tenant-id' },
      );
    }
  }
}
