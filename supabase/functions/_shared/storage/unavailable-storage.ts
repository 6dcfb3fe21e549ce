import { HttpError } from '../errors.ts';
import { artifactsBucket, type ArtifactStorage } from './storage.ts';

/**
 * The storage used when none is configured (the local stack, a plain
 * PostgreSQL): everything that needs no Storage keeps working, artifacts
 * stay inline, and every Storage call answers 503 storage_unavailable
 * naming the problem (variable names, never values).
 */
export function createUnavailableStorage(problems: readonly string[]): ArtifactStorage {
  const reason = problems.length > 0 ? problems.join('; ') : 'no Storage is configured';
  const unavailable = () =>
    new HttpError('storage_unavailable', `Storage is unavailable: ${reason}`, {
      details: { problems: [...problems] },
    });
  return {
    kind: 'unavailable',
    bucket: artifactsBucket,
    upload: () => Promise.reject(unavailable()),
    createSignedUrl: () => Promise.reject(unavailable()),
    remove: () => Promise.reject(unavailable()),
    selfTest: () => Promise.reject(unavailable()),
  };
}
