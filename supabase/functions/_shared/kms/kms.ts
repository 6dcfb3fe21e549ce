import { HttpError } from '../errors.ts';

/**
 * Key management for the key vault's envelope encryption: a KMS holds the
 * key-encryption keys (master keys) and wraps/unwraps the per-secret data
 * keys. Secrets themselves never reach a KMS.
 */

/** A data key wrapped by a key-encryption key; what the database stores beside the ciphertext. */
export interface WrappedDataKey {
  /** Id of the key-encryption key (master key) that wrapped it. */
  kekId: string;
  wrappedKey: Uint8Array;
}

export type KmsKind = 'local' | 'http' | 'unavailable';

export interface Kms {
  readonly kind: KmsKind;
  /** The key-encryption key new data keys are wrapped under; throws kms_unavailable when there is none. */
  currentKeyId(): string;
  /** Wraps a data key under `kekId` (default: the current key). */
  wrapDataKey(dataKey: Uint8Array, kekId?: string): Promise<WrappedDataKey>;
  /** Unwraps a data key with the key-encryption key named in it; throws kms_unavailable when it cannot. */
  unwrapDataKey(wrapped: WrappedDataKey): Promise<Uint8Array>;
  /** Wraps and unwraps a random key under the current key-encryption key (readiness); throws kms_unavailable. */
  selfTest(): Promise<{ kekId: string }>;
}

/** Key-encryption key ids: also valid for external KMS key names (aliases, ARNs). */
export const kekIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/;

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Strict base64 (standard alphabet, padding optional); undefined when it is not. */
export function fromBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.replace(/=+$/, '').length % 4 === 1) return undefined;
  try {
    const binary = atob(text);
    return Uint8Array.from(binary, (char) => char.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/**
 * A copy in a fresh ArrayBuffer: Web Crypto's BufferSource types want one,
 * and a view into a larger (pooled) buffer must not hand over its neighbours.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(new ArrayBuffer(bytes.length));
  copy.set(bytes);
  return copy;
}

/** Wraps, unwraps and compares a random 32-byte key: the round trip readiness runs. */
export async function roundTripSelfTest(kms: Pick<Kms, 'wrapDataKey' | 'unwrapDataKey'>): Promise<{ kekId: string }> {
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const wrapped = await kms.wrapDataKey(probe);
  const unwrapped = await kms.unwrapDataKey(wrapped);
  const same = bytesEqual(probe, unwrapped);
  probe.fill(0);
  unwrapped.fill(0);
  if (!same) throw new HttpError('kms_unavailable', `KMS round trip under "${wrapped.kekId}" returned a different key`);
  return { kekId: wrapped.kekId };
}
