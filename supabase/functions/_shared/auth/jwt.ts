import {
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from 'jose';
import type { Config } from '../config.ts';
import { HttpError } from '../errors.ts';

export interface JwtVerifier {
  /** Verifies signature, exp and nbf; returns the claims or throws a 401 HttpError. */
  verify(token: string): Promise<JWTPayload>;
}

const symmetricAlgorithms = ['HS256'];
const asymmetricAlgorithms = ['ES256', 'RS256'];

/**
 * Supabase user JWTs: HS256 with the project's JWT secret (legacy), or ES256 /
 * RS256 keys published at the JWKS URL, selected by `kid`. jose caches the key
 * set and refetches it once when a token names an unknown `kid`.
 */
export function createJwtVerifier(jwt: Config['jwt'], fetchImpl: typeof fetch): JwtVerifier {
  const secret = jwt.secret ? new TextEncoder().encode(jwt.secret) : undefined;
  const jwks: JWTVerifyGetKey | undefined = jwt.jwksUrl
    ? createRemoteJWKSet(new URL(jwt.jwksUrl), {
      cacheMaxAge: 10 * 60_000,
      cooldownDuration: jwt.jwksCooldownMs,
      timeoutDuration: 3_000,
      [customFetch]: (url: string, options: RequestInit) => fetchImpl(url, options),
    })
    : undefined;

  return {
    async verify(token) {
      let algorithm: string | undefined;
      try {
        algorithm = decodeProtectedHeader(token).alg;
      } catch {
        throw new HttpError('unauthorized', 'malformed JWT');
      }
      try {
        if (algorithm && symmetricAlgorithms.includes(algorithm)) {
          if (!secret) throw new HttpError('unauthorized', 'HS256 tokens are not accepted by this project');
          return (await jwtVerify(token, secret, { algorithms: symmetricAlgorithms })).payload;
        }
        if (algorithm && asymmetricAlgorithms.includes(algorithm)) {
          if (!jwks) throw new HttpError('unauthorized', 'asymmetric tokens are not accepted: no JWKS configured');
          return (await jwtVerify(token, jwks, { algorithms: asymmetricAlgorithms })).payload;
        }
        throw new HttpError('unauthorized', `JWT algorithm ${algorithm ?? 'none'} is not accepted`);
      } catch (error) {
        throw toUnauthorized(error);
      }
    },
  };
}

function toUnauthorized(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof joseErrors.JWTExpired) return new HttpError('unauthorized', 'JWT has expired');
  if (error instanceof joseErrors.JWKSNoMatchingKey) {
    return new HttpError('unauthorized', 'JWT signed with an unknown key id');
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new HttpError('unauthorized', 'JWT signature is invalid');
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return new HttpError('unauthorized', `JWT claim "${error.claim}" is invalid`);
  }
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid) {
    return new HttpError('unauthorized', 'JWT signing keys could not be fetched');
  }
  return new HttpError('unauthorized', 'JWT could not be verified');
}
