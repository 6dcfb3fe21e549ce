// The local stack's operator user for the console: a user of the local
// auth.users, admin of a "Local operator" tenant, and a sign-in link whose
// token is signed by the local stack's user signing key, as Supabase Auth
// would sign it. None of it exists outside the local stack.
import { importJWK, type JWK, SignJWT } from 'jose';
import { withDatabase } from './database.ts';

const localOperatorEmail = 'operator@switchyard.local';
const localTenantSlug = 'local-operator';

/** Creates the local operator user and its tenant (admin) when missing; returns the user id. */
export async function ensureLocalOperator(dbUrl: string): Promise<{ userId: string; tenantId: string }> {
  const sql = withDatabase(dbUrl);
  try {
    return await sql.begin(async (tx) => {
      const [existing] = await tx<{ id: string }[]>`select id from auth.users where email = ${localOperatorEmail}`;
      const userId = existing?.id ??
        (await tx<{ id: string }[]>`insert into auth.users (email) values (${localOperatorEmail}) returning id`)[0].id;
      const [tenant] = await tx<{ id: string }[]>`
        insert into public.tenants (name, slug) values ('Local operator', ${localTenantSlug})
        on conflict (slug) do update set slug = excluded.slug
        returning id`;
      await tx`
        insert into public.memberships (tenant_id, user_id, role) values (${tenant.id}, ${userId}, 'admin')
        on conflict do nothing`;
      return { userId, tenantId: tenant.id };
    });
  } finally {
    await sql.end();
  }
}

/** A user access token for `userId`, signed with the local signing key (ES256, by kid), valid `hours`. */
export async function signLocalUserToken(signingKey: JWK, userId: string, hours = 12): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ role: 'authenticated', email: localOperatorEmail })
    .setProtectedHeader({ alg: 'ES256', kid: signingKey.kid, typ: 'JWT' })
    .setSubject(userId)
    .setAudience('authenticated')
    .setIssuedAt(now)
    .setExpirationTime(now + hours * 3600)
    .setJti(crypto.randomUUID())
    .sign(await importJWK(signingKey, 'ES256'));
}

/** The console URL that signs in with `token` (in the fragment, which browsers never send to a server). */
export function signInLink(consoleUrl: string, token: string): string {
  return `${consoleUrl}/#access_token=${token}`;
}
