/** Tenant API keys: `sy_` + 32 random base64url characters; only a SHA-256 is stored. */
const tenantApiKeyPrefix = 'sy_';
const visiblePrefixLength = tenantApiKeyPrefix.length + 8;

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

export async function sha256Hex(value: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

export interface GeneratedApiKey {
  key: string;
  prefix: string;
  hash: string;
}

export async function generateTenantApiKey(): Promise<GeneratedApiKey> {
  const key = tenantApiKeyPrefix + base64url(crypto.getRandomValues(new Uint8Array(24)));
  return { key, prefix: key.slice(0, visiblePrefixLength), hash: await sha256Hex(key) };
}

export function looksLikeTenantApiKey(token: string): boolean {
  return token.startsWith(tenantApiKeyPrefix) && /^sy_[A-Za-z0-9_-]{20,64}$/.test(token);
}

/** Compares two strings in time that depends only on their lengths. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let difference = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    difference |= (left[i] ?? 0) ^ (right[i] ?? 0);
  }
  return difference === 0;
}
