import { systemClock } from './clock.ts';
import { loadConfig } from './config.ts';
import { createDatabase } from './db.ts';
import type { AppDependencies } from './dependencies.ts';
import { createJsonLogger } from './logger.ts';

/**
 * Builds the production dependencies from the environment, once per isolate.
 * Throws ConfigError (names only, never values) when configuration is missing.
 */
export function createRuntimeDependencies(env: Record<string, string | undefined>): AppDependencies {
  const config = loadConfig(env);
  return {
    config,
    db: createDatabase(config),
    clock: systemClock,
    fetch: globalThis.fetch.bind(globalThis),
    logger: createJsonLogger({ level: config.logLevel }),
  };
}
