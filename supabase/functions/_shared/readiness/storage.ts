import type { ReadinessCheck } from './checks.ts';

/**
 * Supabase Storage for artifacts: signs a probe object in the artifacts
 * bucket (uploading it the first time) and downloads it through the signed
 * URL. Not configured (STORAGE_ENABLED unset): skip, or fail with
 * READINESS_STORAGE_REQUIRED=true. Configured but broken (no key, bucket
 * missing, Storage unreachable): fail, naming the problem.
 */
export const storageRoundTrip: ReadinessCheck = {
  name: 'storage',
  async run({ deps, settings }) {
    const storage = deps.storage;
    if (storage.kind === 'unavailable') {
      // The unavailable storage names its problem (variable names, never values) in the error it rejects with.
      const reason = await storage.selfTest().then(
        () => 'Storage is unavailable',
        (error: unknown) => (error instanceof Error ? error.message : 'Storage is unavailable'),
      );
      if (deps.config.storage.enabled) return { status: 'fail', detail: reason };
      return settings.storageRequired
        ? { status: 'fail', detail: `${reason}; READINESS_STORAGE_REQUIRED is true` }
        : { status: 'skip', detail: `${reason}; job artifacts stay inline`, optional: true };
    }
    const { detail } = await storage.selfTest();
    return { status: 'pass', detail };
  },
};
