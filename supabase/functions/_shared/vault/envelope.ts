import type { Kms } from '../kms/kms.ts';
import { ownBytes } from '../kms/kms.ts';

/**
 * Envelope encryption of provider keys: every secret version gets a fresh
 * AES-256-GCM data key, which the KMS wraps under a key-encryption key. The
 * additional authenticated data binds the ciphertext to its row (key id,
 * tenant, provider, label, version): moved to another row, it fails to
 * decrypt.
 */

/** Where a secret version lives; all of it is bound into the ciphertext. */
export interface SecretBinding {
  /** The logical key (secure_keys.key_id), shared by its versions. */
  keyId: string;
  tenantId: string | null;
  provider: string;
  label: string;
  version: number;
}

/** What the database stores for one version: no plaintext, only this. */
export interface SealedSecret {
  ciphertext: Uint8Array;
  iv: Uint8Array;
  wrappedDataKey: Uint8Array;
  kekId: string;
}

/** The ciphertext does not authenticate under its binding: tampered with, or moved from another row. */
export class SecretIntegrityError extends Error {
  constructor(readonly binding: SecretBinding) {
    super(`secret of key ${binding.keyId} version ${binding.version} failed authentication (tampered with or moved)`);
    this.name = 'SecretIntegrityError';
  }
}

const ivBytes = 12;
const dataKeyBytes = 32;

/** The additional authenticated data of a version: a fixed-order JSON array, so it is canonical. */
export function additionalData(binding: SecretBinding): Uint8Array<ArrayBuffer> {
  const fields = [binding.keyId, binding.tenantId, binding.provider, binding.label, binding.version];
  return ownBytes(new TextEncoder().encode(`switchyard-vault/v1:${JSON.stringify(fields)}`));
}

function importDataKey(dataKey: Uint8Array, usage: 'encrypt' | 'decrypt'): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', ownBytes(dataKey), 'AES-GCM', false, [usage]);
}

/** Encrypts a secret under a fresh data key wrapped by the KMS's current key-encryption key. */
export async function sealSecret(kms: Kms, binding: SecretBinding, secret: string): Promise<SealedSecret> {
  const dataKey = crypto.getRandomValues(new Uint8Array(dataKeyBytes));
  try {
    const wrapped = await kms.wrapDataKey(dataKey);
    const iv = crypto.getRandomValues(new Uint8Array(ivBytes));
    const key = await importDataKey(dataKey, 'encrypt');
    const ciphertext = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: additionalData(binding) },
        key,
        ownBytes(new TextEncoder().encode(secret)),
      ),
    );
    return { ciphertext, iv, wrappedDataKey: wrapped.wrappedKey, kekId: wrapped.kekId };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Decrypts a version: the KMS unwraps its data key (kms_unavailable when it
 * cannot), then AES-GCM checks the ciphertext against the binding
 * (SecretIntegrityError when it does not match).
 */
export async function openSecret(kms: Kms, binding: SecretBinding, sealed: SealedSecret): Promise<string> {
  const dataKey = await kms.unwrapDataKey({ kekId: sealed.kekId, wrappedKey: sealed.wrappedDataKey });
  try {
    const key = await importDataKey(dataKey, 'decrypt');
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: ownBytes(sealed.iv), additionalData: additionalData(binding) },
      key,
      ownBytes(sealed.ciphertext),
    );
    return new TextDecoder('utf-8', { fatal: true }).decode(plain);
  } catch {
    throw new SecretIntegrityError(binding);
  } finally {
    dataKey.fill(0);
  }
}

/**
 * The last four characters, for display. Short secrets show nothing: four
 * characters of an eight-character secret would give half of it away.
 */
export function lastFour(secret: string): string {
  return secret.length >= 16 ? secret.slice(-4) : '';
}
