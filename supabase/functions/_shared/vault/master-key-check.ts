import type { Database } from '../db.ts';
import { HttpError } from '../errors.ts';
import type { Kms } from '../kms/kms.ts';

/**
 * Guards writes against a wrong master key: before the first key is written
 * under the KMS's current key-encryption key, one data key already stored
 * under that key id must unwrap. A well-formed but wrong SWITCHYARD_MASTER_KEYS
 * is refused (503 kms_unavailable) instead of sealing new secrets under a key
 * nothing else can open. Passes (without remembering) while nothing is stored
 * under the key id; remembers success per isolate.
 */
export function createMasterKeyCheck(db: Database, kms: Kms): () => Promise<void> {
  const verified = new Set<string>();
  return async function ensureMasterKeyMatches() {
    const kekId = kms.currentKeyId();
    if (verified.has(kekId)) return;
    const [stored] = await db<{ wrapped_data_key: Uint8Array }[]>`
      select wrapped_data_key from public.secure_keys where kek_id = ${kekId} order by created_at limit 1`;
    if (!stored) return;
    try {
      (await kms.unwrapDataKey({ kekId, wrappedKey: stored.wrapped_data_key })).fill(0);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      throw new HttpError(
        'kms_unavailable',
        `master key "${kekId}" does not unwrap the data keys stored under it (wrong master key?): ${error.message}`,
      );
    }
    verified.add(kekId);
  };
}
