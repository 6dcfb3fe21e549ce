import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

/** Secrets of a local stack, generated once and kept, so a restart keeps them. */
export interface LocalSecrets {
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
  /** Key-vault master keys, `kid:base64key` pairs, the first one current. */
  masterKeys: string;
  metricsToken: string;
  jobToken: string;
  /**
   * The local Auth's asymmetric signing key (a private ES256 JWK with kid), as a
   * Supabase project with signing keys has: its public half is the project's JWKS.
   */
  userSigningKey: JWK;
}

/** The public JWKS of the local stack: the signing key without its private part. */
export function publicJwks(secrets: Pick<LocalSecrets, 'userSigningKey'>): { keys: JWK[] } {
  const { d: _private, ...publicKey } = secrets.userSigningKey;
  return { keys: [publicKey] };
}

const tenYears = 10 * 365 * 24 * 3600;

/** A Supabase-style project key: an HS256 JWT carrying only a role. */
async function signProjectKey(role: 'anon' | 'service_role', jwtSecret: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ role, iss: 'supabase-demo', ref: 'switchyard-local' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + tenYears)
    .sign(new TextEncoder().encode(jwtSecret));
}

export async function generateSecrets(): Promise<LocalSecrets> {
  const jwtSecret = randomBytes(32).toString('hex');
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return {
    jwtSecret,
    anonKey: await signProjectKey('anon', jwtSecret),
    serviceRoleKey: await signProjectKey('service_role', jwtSecret),
    masterKeys: `local-1:${randomBytes(32).toString('base64')}`,
    metricsToken: randomBytes(24).toString('hex'),
    jobToken: randomBytes(32).toString('hex'),
    userSigningKey: {
      ...(await exportJWK(privateKey)),
      kid: `local-${randomBytes(4).toString('hex')}`,
      alg: 'ES256',
      use: 'sig',
    },
  };
}

/** Loads `<stateDir>/secrets.json`, generating (and keeping) any missing secret. */
export async function loadOrCreateSecrets(stateDir: string): Promise<LocalSecrets> {
  const file = path.join(stateDir, 'secrets.json');
  const stored: Partial<LocalSecrets> = existsSync(file) ? JSON.parse(await readFile(file, 'utf8')) : {};
  const fresh = await generateSecrets();
  const secrets: LocalSecrets = stored.jwtSecret ? { ...fresh, ...stored, jwtSecret: stored.jwtSecret } : fresh;
  if (!stored.anonKey || !stored.jwtSecret) secrets.anonKey = await signProjectKey('anon', secrets.jwtSecret);
  if (!stored.serviceRoleKey || !stored.jwtSecret) {
    secrets.serviceRoleKey = await signProjectKey('service_role', secrets.jwtSecret);
  }
  if (JSON.stringify(stored) !== JSON.stringify(secrets)) {
    await mkdir(stateDir, { recursive: true });
    await writeFile(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
  }
  return secrets;
}
