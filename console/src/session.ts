import type { SupabaseClient } from '@supabase/supabase-js';

/**
 * Who is signed in. Kept in memory only (a reload signs out), except a
 * Supabase Auth session, which supabase-js keeps and refreshes itself.
 */
export type Session =
  | { kind: 'service'; token: string }
  | { kind: 'link'; token: string; subject: string; expiresAt?: number }
  | { kind: 'supabase'; client: SupabaseClient; email: string };

export function sessionLabel(session: Session): string {
  switch (session.kind) {
    case 'service':
      return 'service role (break-glass)';
    case 'link':
      return `user ${session.subject.slice(0, 8)} (sign-in link)`;
    case 'supabase':
      return session.email;
  }
}

export async function sessionToken(session: Session): Promise<string> {
  if (session.kind !== 'supabase') return session.token;
  const { data, error } = await session.client.auth.getSession();
  if (error || !data.session) throw new Error('your sign-in has expired: sign in again');
  return data.session.access_token;
}

/** The claims of a JWT, unverified: only to label the session (the endpoints verify it). */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replaceAll('-', '+').replaceAll('_', '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const claims = JSON.parse(json) as unknown;
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A session from a sign-in link's fragment (`#access_token=<jwt>`, what
 * `npm start` prints), or undefined. The caller removes the fragment from
 * the address bar at once.
 */
export function sessionFromFragment(hash: string): Session | undefined {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const token = params.get('access_token');
  if (!token) return undefined;
  const claims = jwtClaims(token);
  return {
    kind: 'link',
    token,
    subject: typeof claims?.sub === 'string' ? claims.sub : 'unknown',
    expiresAt: typeof claims?.exp === 'number' ? claims.exp * 1000 : undefined,
  };
}

/** A pasted key as a break-glass session, or a message saying what is wrong with it. */
export function serviceSession(pasted: string): Session | string {
  const token = pasted.trim();
  if (token.startsWith('sb_secret_')) return { kind: 'service', token };
  const claims = jwtClaims(token);
  if (claims?.role === 'service_role') return { kind: 'service', token };
  if (claims?.role) {
    return `that key has role "${String(claims.role)}": paste the service_role key or an sb_secret_ key`;
  }
  return 'that is not a service key: paste the service_role JWT or an sb_secret_ key';
}
