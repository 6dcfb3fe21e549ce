import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createJwtVerifier } from '../../../supabase/functions/_shared/auth/jwt.ts';
import { HttpError } from '../../../supabase/functions/_shared/errors.ts';

// The verifier against an in-process JWKS (its own fetch), so fetches can be counted exactly;
// the integration test shares one JWKS server with other files running in parallel.
async function signingKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } as JWK };
}

function token(key: Awaited<ReturnType<typeof signingKey>>, kid = key.kid) {
  return new SignJWT({ role: 'authenticated' })
    .setProtectedHeader({ alg: 'ES256', kid })
    .setSubject(crypto.randomUUID())
    .setAudience('authenticated')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key.privateKey);
}

describe('JWT verifier with a JWKS', () => {
  it('fetches the key set once, refetches once for a new kid, and refuses a kid the set does not have', async () => {
    const first = await signingKey('first');
    const rotated = await signingKey('rotated');
    const published: JWK[] = [first.publicJwk];
    let fetches = 0;
    const fetchJwks = ((_url: string | URL | Request) => {
      fetches += 1;
      return Promise.resolve(Response.json({ keys: published }));
    }) as typeof fetch;
    const verifier = createJwtVerifier({
      jwksUrl: 'https://project.example/auth/v1/.well-known/jwks.json',
      jwksCooldownMs: 0,
    }, fetchJwks);

    await verifier.verify(await token(first));
    await verifier.verify(await token(first));
    expect(fetches).toBe(1);

    published.push(rotated.publicJwk);
    await verifier.verify(await token(rotated));
    expect(fetches).toBe(2);
    await verifier.verify(await token(rotated));
    expect(fetches).toBe(2);

    const unknown = verifier.verify(await token(first, 'never-published'));
    await expect(unknown).rejects.toBeInstanceOf(HttpError);
    await expect(unknown).rejects.toThrow(/unknown key id/);
    expect(fetches).toBe(3);
  });
});
