import { ApiKeyCache } from './auth/api-key-cache.ts';
import { systemClock } from './clock.ts';
import { loadConfig } from './config.ts';
import { createDatabase } from './db.ts';
import type { AppDependencies } from './dependencies.ts';
import { createKms } from './kms/create-kms.ts';
import { createJsonLogger } from './logger.ts';
import { surviveClosedConnectionWrites } from './postgres-client-guard.ts';
import { createStorage } from './storage/create-storage.ts';

/**
 * Builds the production dependencies from the environment, once per isolate.
 * Throws ConfigError (names only, never values) when configuration is missing.
 */
export function createRuntimeDependencies(env: Record<string, string | undefined>): AppDependencies {
  const config = loadConfig(env);
  const fetchImpl = globalThis.fetch.bind(globalThis);
  const clock = systemClock;
  const logger = createJsonLogger({ level: config.logLevel, clock });
  surviveClosedConnectionWrites(logger);
  // A missing or invalid KMS configuration must not stop the isolate: the key
  // endpoints answer 503 kms_unavailable, everything else keeps working.
  const { kms, problems } = createKms(config.kms, fetchImpl);
  if (problems.length > 0) logger.warn('kms_unavailable', { problems });
  // Likewise Storage: only the artifact endpoints answer 503 storage_unavailable.
  const storageSetup = createStorage(config.storage, fetchImpl, clock);
  if (storageSetup.problems.length > 0) logger.warn('storage_unavailable', { problems: storageSetup.problems });
  return {
    config,
    db: createDatabase(config),
    clock,
    apiKeys: new ApiKeyCache(config.authCacheTtlMs, clock),
    fetch: fetchImpl,
    logger,
    kms,
    storage: storageSetup.storage,
  };
}
