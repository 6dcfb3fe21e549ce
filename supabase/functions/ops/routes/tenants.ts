import { Hono } from 'hono';
import { z } from 'zod';
import { generateTenantApiKey } from '../../_shared/auth/api-keys.ts';
import { databaseIdentityOf } from '../../_shared/auth/caller.ts';
import { sqlState, type Transaction, withIdentity } from '../../_shared/db.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readJsonBody, readParams, readQuery } from '../../_shared/validation.ts';

const tenantIdParams = z.object({ id: z.uuid('must be a UUID') });

const createTenantBody = z.object({
  name: z.string().trim().min(1).max(200),
  slug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, at most 63').optional(),
}).strict();

const addMemberBody = z.object({
  user_id: z.uuid('must be a UUID'),
  role: z.enum(['member', 'admin', 'operator']),
}).strict();

const listTenantsQuery = z.object({
  limit: z.coerce.number().int('must be a whole number').min(1, 'must be at least 1').max(1000, 'must be at most 1000')
    .default(200),
}).strict();

const createApiKeyBody = z.object({
  name: z.string().trim().min(1).max(200),
}).strict();

export type CreateTenantBody = z.infer<typeof createTenantBody>;

function slugFrom(name: string): string {
  const base = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48) || 'tenant';
  return `${base}-${crypto.randomUUID().slice(0, 8)}`;
}

/** 404 unless the caller can see the tenant (RLS decides for users). */
async function requireVisibleTenant(tx: Transaction, tenantId: string): Promise<void> {
  const [tenant] = await tx`select id from public.tenants where id = ${tenantId}`;
  if (!tenant) throw new HttpError('not_found', 'tenant not found');
}

/** Maps a refused write to the contract: RLS refusal 403, duplicates 409, missing user 404. */
function writeRefused(error: unknown, what: string): never {
  const state = sqlState(error);
  if (state === '42501') throw new HttpError('forbidden', `only an admin of this tenant can ${what}`);
  if (state === '23505') throw new HttpError('conflict', `${what}: already exists`);
  if (state === '23503') throw new HttpError('not_found', 'user not found');
  throw error;
}

export function tenantRoutes(deps: AppDependencies) {
  const app = new Hono<AppEnv>();

  app.post('/', async (c) => {
    const caller = c.get('caller');
    if (caller.kind !== 'service_role') throw new HttpError('forbidden', 'only the service role can create tenants');
    const body = await readJsonBody(c, createTenantBody);
    const slug = body.slug ?? slugFrom(body.name);
    try {
      const [tenant] = await deps.db`
        insert into public.tenants (name, slug) values (${body.name}, ${slug})
        returning id, name, slug, created_at`;
      return c.json(tenant, 201);
    } catch (error) {
      if (sqlState(error) === '23505') throw new HttpError('conflict', `slug "${slug}" is taken`);
      throw error;
    }
  });

  // The tenants the caller can see, each with the caller's role in it (null for the service role):
  // what a console or CLI needs to offer a choice of tenant. RLS decides for users. Newest first.
  app.get('/', async (c) => {
    const { limit } = readQuery(c, listTenantsQuery);
    const caller = c.get('caller');
    const userId = caller.kind === 'user' ? caller.userId : null;
    const items = await withIdentity(deps.db, databaseIdentityOf(caller), (tx) =>
      tx`
        select t.id, t.name, t.slug, t.created_at, m.role
        from public.tenants t
        left join public.memberships m on m.tenant_id = t.id and m.user_id = ${userId}
        order by t.created_at desc, t.id
        limit ${limit}`);
    return c.json({ items });
  });

  app.get('/:id', async (c) => {
    const { id } = readParams(c, tenantIdParams);
    const result = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), async (tx) => {
      const [tenant] = await tx`select id, name, slug, created_at, updated_at from public.tenants where id = ${id}`;
      if (!tenant) throw new HttpError('not_found', 'tenant not found');
      const members = await tx`
        select user_id, role, created_at from public.memberships where tenant_id = ${id} order by created_at`;
      return { ...tenant, members };
    });
    return c.json(result);
  });

  app.post('/:id/members', async (c) => {
    const { id } = readParams(c, tenantIdParams);
    const body = await readJsonBody(c, addMemberBody);
    const membership = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), async (tx) => {
      await requireVisibleTenant(tx, id);
      try {
        const [row] = await tx.savepoint((sp) =>
          sp`insert into public.memberships (tenant_id, user_id, role)
             values (${id}, ${body.user_id}, ${body.role})
             returning tenant_id, user_id, role, created_at`
        );
        return row;
      } catch (error) {
        writeRefused(error, 'add members');
      }
    });
    return c.json(membership, 201);
  });

  app.post('/:id/api-keys', async (c) => {
    const { id } = readParams(c, tenantIdParams);
    const body = await readJsonBody(c, createApiKeyBody);
    const caller = c.get('caller');
    const generated = await generateTenantApiKey();
    const created = await withIdentity(deps.db, databaseIdentityOf(caller), async (tx) => {
      await requireVisibleTenant(tx, id);
      try {
        const [row] = await tx.savepoint((sp) =>
          sp`insert into public.tenant_api_keys (tenant_id, name, key_hash, prefix, created_by)
             values (${id}, ${body.name}, ${generated.hash}, ${generated.prefix},
                     ${caller.kind === 'user' ? caller.userId : null})
             returning id, tenant_id, name, prefix, created_at`
        );
        return row;
      } catch (error) {
        writeRefused(error, 'create API keys');
      }
    });
    // The only time the key itself is ever returned.
    return c.json({ ...created, key: generated.key }, 201);
  });

  app.get('/:id/api-keys', async (c) => {
    const { id } = readParams(c, tenantIdParams);
    const keys = await withIdentity(deps.db, databaseIdentityOf(c.get('caller')), async (tx) => {
      await requireVisibleTenant(tx, id);
      return await tx`
        select id, tenant_id, name, prefix, created_by, created_at, revoked_at
        from public.tenant_api_keys where tenant_id = ${id} order by created_at desc`;
    });
    return c.json({ items: keys });
  });

  return app;
}
