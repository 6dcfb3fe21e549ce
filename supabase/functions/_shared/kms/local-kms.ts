import { HttpError } from '../errors.ts';
import { fromBase64, kekIdPattern, type Kms, ownBytes, roundTripSelfTest, type WrappedDataKey } from './kms.ts';

/** A master key from SWITCHYARD_MASTER_KEYS. */
export interface MasterKey {
  kid: string;
  key: Uint8Array;
}

export interface ParsedMasterKeys {
  keys: MasterKey[];
  /** What is wrong, naming the variable and entry, never a key's bytes. */
  problems: string[];
}

const masterKeyBytes = 32;
const ivBytes = 12;
// Leading byte of a wrapped key: the layout below, so it can change later.
const wrapFormatVersion = 1;

/**
 * Parses `kid:base64key,kid:base64key` (32-byte keys, the first one current).
 * Never throws: a bad entry is reported in `problems` and no key is returned,
 * so a half-valid list cannot silently wrap under the wrong key.
 */
export function parseMasterKeys(value: string | undefined, variable = 'SWITCHYARD_MASTER_KEYS'): ParsedMasterKeys {
  if (value === undefined || value.trim() === '') return { keys: [], problems: [`${variable} is not set`] };
  const keys: MasterKey[] = [];
  const problems: string[] = [];
  const entries = value.split(',').map((entry) => entry.trim());
  entries.forEach((entry, index) => {
    const position = `${variable}: entry ${index + 1}`;
    const separator = entry.indexOf(':');
    if (separator <= 0) {
      problems.push(`${position} is not kid:base64key`);
      return;
    }
    const kid = entry.slice(0, separator);
    if (!kekIdPattern.test(kid) || kid.includes(':')) {
      problems.push(`${position} has an invalid key id (letters, digits, ".", "_", "-")`);
      return;
    }
    const key = fromBase64(entry.slice(separator + 1));
    if (!key || key.length !== masterKeyBytes) {
      problems.push(`${position} ("${kid}") is not ${masterKeyBytes} bytes of base64`);
      return;
    }
    if (keys.some((existing) => existing.kid === kid)) {
      problems.push(`${position}: key id "${kid}" appears twice`);
      return;
    }
    keys.push({ kid, key });
  });
  return problems.length > 0 ? { keys: [], problems } : { keys, problems };
}

function wrapContext(kid: string): Uint8Array<ArrayBuffer> {
  // Binds the wrapped key to its master key id: relabelling the kid fails to unwrap.
  return ownBytes(new TextEncoder().encode(`switchyard-kms/v1:${kid}`));
}

/**
 * Master keys held by the function itself (SWITCHYARD_MASTER_KEYS): data keys
 * are wrapped with AES-256-GCM under a master key, as
 * `0x01 | iv (12 bytes) | ciphertext+tag`, with the master key id as
 * additional data.
 */
export class LocalKms implements Kms {
  readonly kind = 'local' as const;
  readonly #current: string;
  readonly #keys = new Map<string, Promise<CryptoKey>>();

  constructor(masterKeys: readonly MasterKey[]) {
    if (masterKeys.length === 0) throw new Error('LocalKms needs at least one master key');
    this.#current = masterKeys[0].kid;
    for (const { kid, key } of masterKeys) {
      const raw = ownBytes(key);
      this.#keys.set(
        kid,
        crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']).finally(() => raw.fill(0)),
      );
    }
  }

  currentKeyId(): string {
    return this.#current;
  }

  /** Ids of the master keys this KMS holds, current first. */
  keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  #key(kid: string): Promise<CryptoKey> {
    const key = this.#keys.get(kid);
    if (!key) {
      throw new HttpError('kms_unavailable', `master key "${kid}" is not configured (SWITCHYARD_MASTER_KEYS)`);
    }
    return key;
  }

  async wrapDataKey(dataKey: Uint8Array, kekId: string = this.#current): Promise<WrappedDataKey> {
    const key = await this.#key(kekId);
    const iv = crypto.getRandomValues(new Uint8Array(ivBytes));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: wrapContext(kekId) }, key, ownBytes(dataKey)),
    );
    const wrappedKey = new Uint8Array(1 + ivBytes + sealed.length);
    wrappedKey[0] = wrapFormatVersion;
    wrappedKey.set(iv, 1);
    wrappedKey.set(sealed, 1 + ivBytes);
    return { kekId, wrappedKey };
  }

  async unwrapDataKey(wrapped: WrappedDataKey): Promise<Uint8Array> {
    const key = await this.#key(wrapped.kekId);
    const bytes = wrapped.wrappedKey;
    if (bytes.length <= 1 + ivBytes + 16 || bytes[0] !== wrapFormatVersion) {
      throw new HttpError('kms_unavailable', `a data key wrapped under "${wrapped.kekId}" is not in a known format`);
    }
    try {
      const plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: ownBytes(bytes.subarray(1, 1 + ivBytes)), additionalData: wrapContext(wrapped.kekId) },
        key,
        ownBytes(bytes.subarray(1 + ivBytes)),
      );
      return new Uint8Array(plain);
    } catch {
      throw new HttpError(
        'kms_unavailable',
        `master key "${wrapped.kekId}" could not unwrap a data key (wrong master key, or the wrapped key is damaged)`,
      );
    }
  }

  selfTest(): Promise<{ kekId: string }> {
    return roundTripSelfTest(this);
  }
}
