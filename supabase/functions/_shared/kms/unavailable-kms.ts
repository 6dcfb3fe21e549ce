import { HttpError } from '../errors.ts';
import type { Kms } from './kms.ts';

/**
 * The KMS used when none is configured or its configuration is invalid: the
 * functions still start and answer everything that needs no key, and every
 * KMS call answers 503 kms_unavailable naming the problem (names, never values).
 */
export function createUnavailableKms(problems: readonly string[]): Kms {
  const reason = problems.length > 0 ? problems.join('; ') : 'no KMS is configured';
  const unavailable = () =>
    new HttpError('kms_unavailable', `key management is unavailable: ${reason}`, {
      details: { problems: [...problems] },
    });
  return {
    kind: 'unavailable',
    currentKeyId: () => {
      throw unavailable();
    },
    wrapDataKey: () => Promise.reject(unavailable()),
    unwrapDataKey: () => Promise.reject(unavailable()),
    selfTest: () => Promise.reject(unavailable()),
  };
}
