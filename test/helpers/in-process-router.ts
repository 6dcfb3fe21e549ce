import { ApiKeyCache } from '../../supabase/functions/_shared/auth/api-key-cache.ts';
import OpenAI from 'openai';
import postgres from 'postgres';
import { systemClock } from '../../supabase/functions/_shared/clock.ts';
import { loadConfig } from '../../supabase/functions/_shared/config.ts';
import { createUnavailableKms } from '../../supabase/functions/_shared/kms/unavailable-kms.ts';
import { createJsonLogger } from '../../supabase/functions/_shared/logger.ts';
import { createUnavailableStorage } from '../../supabase/functions/_shared/storage/unavailable-storage.ts';
import type { ProviderKeySource } from '../../supabase/functions/_shared/router/provider-keys.ts';
import { createLlmRouterApp } from '../../supabase/functions/llm-router/app.ts';
import { stack } from './stack.ts';

export interface InProcessRouter {
  app: ReturnType<typeof createLlmRouterApp>;
  /** The official SDK, its fetch wired to app.request (no network between them). */
  client(bearer: string, headers?: Record<string, string>): OpenAI;
  close(): Promise<void>;
}

/**
 * The llm-router app on Node, against the test database, with a provider-key
 * source of the test's choosing (the Deno server takes keys from the vault).
 */
export function createInProcessRouter(keys: ProviderKeySource, env: Record<string, string> = {}): InProcessRouter {
  const config = loadConfig({
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_JWT_SECRET: stack.jwtSecret,
    SUPABASE_ANON_KEY: stack.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
    DB_POOL_MAX: '6',
    ROUTER_CATALOG_TTL_MS: '0',
    ...env,
  });
  const db = postgres(config.databaseUrl, { max: config.databasePoolMax, onnotice: () => {} });
  const app = createLlmRouterApp(
    {
      config,
      db,
      clock: systemClock,
      fetch,
      logger: createJsonLogger({ level: 'error', write: () => {} }),
      // Provider keys come from `keys` here, not from the vault.
      kms: createUnavailableKms(['the in-process router takes provider keys from its key source']),
      storage: createUnavailableStorage(['the router needs no Storage']),
      apiKeys: new ApiKeyCache(config.authCacheTtlMs, systemClock),
    },
    { keys },
  );
  return {
    app,
    client: (bearer, headers = {}) =>
      new OpenAI({
        baseURL: 'http://router.test/llm-router/v1',
        apiKey: bearer,
        maxRetries: 0,
        defaultHeaders: { apikey: stack.anonKey, ...headers },
        fetch: async (url, init) => await app.request(String(url), init as RequestInit),
      }),
    close: () => db.end({ timeout: 5 }),
  };
}

/** Any provider gets this key: the fake upstream accepts every non-empty key. */
export const fixedKeySource: ProviderKeySource = {
  getProviderKey: () => Promise.resolve({ secret: 'sk-test-fake-upstream-key', keyId: 'test', version: 1 }),
};
