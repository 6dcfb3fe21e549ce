import type { Database } from '../db.ts';
import { HttpError } from '../errors.ts';
import type { Caller } from './caller.ts';

/** The tenant a request acts for, and who inside it. */
export interface TenantContext {
  tenantId: string;
  userId?: string;
  apiKeyId?: string;
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Which tenant a request acts for. A tenant API key is bound to its tenant; a
 * user picks one of their tenants with `x-tenant-id` (needed only when they
 * belong to several); the service role must name one.
 */
export async function resolveTenant(
  db: Database,
  caller: Caller,
  requestedTenantId: string | undefined,
): Promise<TenantContext> {
  if (requestedTenantId !== undefined && !uuidPattern.test(requestedTenantId)) {
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
      const memberships = await db<{ tenant_id: string }[]>`
        select tenant_id from public.memberships where user_id = ${caller.userId}`;
      const tenantIds = memberships.map((row) => row.tenant_id);
      if (requestedTenantId) {
        if (!tenantIds.includes(requestedTenantId)) {
          throw new HttpError('forbidden', 'you are not a member of this tenant');
        }
        return { tenantId: requestedTenantId, userId: caller.userId };
      }
      if (tenantIds.length === 1) return { tenantId: tenantIds[0], userId: caller.userId };
      if (tenantIds.length === 0) throw new HttpError('forbidden', 'you are not a member of any tenant');
      throw new HttpError('validation_failed', 'x-tenant-id: required, you belong to several tenants', {
        param: 'x-tenant-id',
      });
    }
  }
}
