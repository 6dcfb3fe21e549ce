import type { ApiKeyCache } from './auth/api-key-cache.ts';
import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { Database } from './db.ts';
import type { Kms } from './kms/kms.ts';
import type { Logger } from './logger.ts';
import type { ArtifactStorage } from './storage/storage.ts';

/** What every function's app factory is given; tests hand in real Postgres and fakes. */
export interface AppDependencies {
  config: Config;
  db: Database;
  clock: Clock;
  fetch: typeof fetch;
  logger: Logger;
  /** Wraps the key vault's data keys; the unavailable KMS (503 kms_unavailable) when not configured. */
  kms: Kms;
  /** Supabase Storage for job artifacts; the unavailable storage (503 storage_unavailable) when not configured. */
  storage: ArtifactStorage;
  /** Tenant API keys resolved recently (auth/api-key-cache.ts): one cache per isolate, so a revocation here forgets at once. */
  apiKeys: ApiKeyCache;
}
