import { ApiKeyCache } from '../../supabase/functions/_shared/auth/api-key-cache.ts';
import { type Clock, systemClock } from '../../supabase/functions/_shared/clock.ts';
import { loadConfig } from '../../supabase/functions/_shared/config.ts';
import { createDatabase, type Database } from '../../supabase/functions/_shared/db.ts';
import { createKms } from '../../supabase/functions/_shared/kms/create-kms.ts';
import type { Kms } from '../../supabase/functions/_shared/kms/kms.ts';
import { createJsonLogger } from '../../supabase/functions/_shared/logger.ts';
import {
  createProviderKeyResolver,
  type ProviderKeyResolverOptions,
} from '../../supabase/functions/_shared/vault/resolver.ts';
import { createStorage } from '../../supabase/functions/_shared/storage/create-storage.ts';
import { createKeysApp } from '../../supabase/functions/keys/app.ts';
import { stack } from './stack.ts';

/** The KMS the stack's functions use (its SWITCHYARD_MASTER_KEYS). */
export function stackKms(masterKeys = stack.masterKeys): Kms {
  const setup = createKms({ masterKeys, timeoutMs: 1_000 }, fetch);
  if (setup.problems.length > 0) throw new Error(setup.problems.join('; '));
  return setup.kms;
}

/** A clock tests move by hand (cache TTLs), starting now. */
export function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return { now: () => new Date(Date.now() + offset), advance: (ms) => (offset += ms) };
}

/** The router's key resolver in-process, on the stack's database; log lines are kept. */
export function inProcessResolver(
  db: Database,
  options: ProviderKeyResolverOptions & { kms?: Kms; clock?: Clock } = {},
) {
  const logLines: string[] = [];
  const resolver = createProviderKeyResolver(
    {
      db,
      kms: options.kms ?? stackKms(),
      clock: options.clock ?? systemClock,
      logger: createJsonLogger({ level: 'debug', write: (line) => logLines.push(line) }),
    },
    { actor: 'vault-test', ...options },
  );
  return { resolver, logLines };
}

/**
 * The keys app in-process (as index.ts builds it, on Node) against the stack's
 * database, with the given environment on top of the stack's own: for
 * configurations the running stack does not have (no or a bad master key).
 */
export function inProcessKeysApp(environment: Record<string, string>) {
  const config = loadConfig({
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_JWT_SECRET: stack.jwtSecret,
    SUPABASE_ANON_KEY: stack.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
    DB_POOL_MAX: '2',
    ...environment,
  });
  const logLines: string[] = [];
  const logger = createJsonLogger({ level: 'debug', write: (line) => logLines.push(line) });
  const { kms, problems } = createKms(config.kms, fetch);
  if (problems.length > 0) logger.warn('kms_unavailable', { problems });
  const db = createDatabase(config);
  const { storage } = createStorage(config.storage, fetch);
  const apiKeys = new ApiKeyCache(config.authCacheTtlMs, systemClock);
  const app = createKeysApp({ config, db, clock: systemClock, fetch, logger, kms, storage, apiKeys });
  return { app, db, logLines, close: () => db.end({ timeout: 1 }) };
}
