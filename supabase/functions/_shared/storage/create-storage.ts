import { type Clock, systemClock } from '../clock.ts';
import type { Config } from '../config.ts';
import { artifactsBucket, type ArtifactStorage } from './storage.ts';
import { SupabaseStorage } from './supabase-storage.ts';
import { createUnavailableStorage } from './unavailable-storage.ts';

export interface StorageSetup {
  storage: ArtifactStorage;
  /** Why Storage is unavailable although STORAGE_ENABLED=true (names, never values); empty otherwise. */
  problems: string[];
}

/**
 * The storage the configuration asks for. Storage is opt-in
 * (STORAGE_ENABLED=true): SUPABASE_URL alone cannot say whether a Storage
 * API is behind it (the local stack sets it to its functions server). Never
 * throws: not enabled, or enabled without a URL or service key, gives the
 * unavailable storage, so the functions still start.
 */
export function createStorage(
  settings: Config['storage'],
  fetchImpl: typeof fetch,
  clock: Clock = systemClock,
): StorageSetup {
  if (!settings.enabled) {
    return {
      storage: createUnavailableStorage(['Storage is not configured (STORAGE_ENABLED is not true)']),
      problems: [],
    };
  }
  const problems: string[] = [];
  if (!settings.url) problems.push('STORAGE_ENABLED=true needs STORAGE_URL or SUPABASE_URL');
  else if (!/^https?:\/\/[^\s]+$/.test(settings.url)) problems.push('STORAGE_URL is not an http(s) URL');
  if (!settings.serviceKey) {
    problems.push('STORAGE_ENABLED=true needs a service key (SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS)');
  }
  if (problems.length > 0) return { storage: createUnavailableStorage(problems), problems };
  const storage = new SupabaseStorage({
    url: settings.url as string,
    serviceKey: settings.serviceKey as string,
    bucket: artifactsBucket,
    timeoutMs: settings.timeoutMs,
    fetch: fetchImpl,
    clock,
  });
  return { storage, problems };
}
