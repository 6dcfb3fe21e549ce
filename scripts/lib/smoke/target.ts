import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stateDir as defaultStateDir } from '../paths.ts';

/** Where the smoke runner points, and the credentials it may use (never printed). */
export interface SmokeTarget {
  functionsUrl: string;
  /** The project URL supabase-js is given (FUNCTIONS_URL without /functions/v1). */
  apiUrl: string;
  anonKey?: string;
  serviceRoleKey?: string;
  jwtSecret?: string;
  /** A private JWK (with kid) whose public half is in the project's JWKS. */
  testKeyFile?: string;
  /** Direct database access, for what only SQL does: duplicate finalization, the DLQ worker, the demo upstream. */
  databaseUrl?: string;
  /** The chat model alias to invoke; absent: `demo-chat` when the catalog has it, else the first one listed. */
  model?: string;
  /** Where the values came from, for the report: flags, environment, or the local stack's status file. */
  source: string;
}

export interface TargetFlags {
  url?: string;
  anonKey?: string;
  serviceKey?: string;
  jwtSecret?: string;
  testKey?: string;
  dbUrl?: string;
  model?: string;
}

/** `NAME=value` lines of the local stack's status file (`npm start` writes it). */
function readStatusFile(stateDir: string): Record<string, string> {
  const file = path.join(stateDir, 'status.env');
  if (!existsSync(file)) return {};
  const values: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) values[match[1]] = match[2];
  }
  return values;
}

export class TargetError extends Error {}

/**
 * Flags first, then the environment (`eval "$(npm run -s status)"` sets it),
 * then the running local stack's status file. A wrong URL is refused here
 * with a reason, not later with a stack trace.
 */
export function resolveTarget(flags: TargetFlags, env: NodeJS.ProcessEnv = process.env): SmokeTarget {
  const status = readStatusFile(env.SWITCHYARD_STATE_DIR ?? defaultStateDir);
  const pick = (flag: string | undefined, ...names: string[]) => {
    if (flag) return { value: flag, from: 'flags' };
    for (const name of names) if (env[name]) return { value: env[name], from: 'environment' };
    for (const name of names) if (status[name]) return { value: status[name], from: 'local stack status' };
    return { value: undefined, from: undefined };
  };
  const url = pick(flags.url, 'FUNCTIONS_URL');
  if (!url.value) {
    throw new TargetError(
      'no functions URL: pass --url <FUNCTIONS_URL>, set FUNCTIONS_URL, or start the local stack (npm start)',
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url.value);
  } catch {
    throw new TargetError(`--url is not a URL: ${JSON.stringify(url.value)}`);
  }
  if (!['http:', 'https:'].includes(parsed.protocol)) {
    throw new TargetError(`--url must be http(s), not ${parsed.protocol}`);
  }
  const functionsUrl = parsed.toString().replace(/\/+$/, '');
  const apiUrl = functionsUrl.replace(/\/functions\/v1$/, '');
  if (apiUrl === functionsUrl) throw new TargetError(`--url must end with /functions/v1 (got ${functionsUrl})`);

  return {
    functionsUrl,
    apiUrl,
    anonKey: pick(flags.anonKey, 'ANON_KEY', 'SUPABASE_ANON_KEY').value,
    serviceRoleKey: pick(flags.serviceKey, 'SERVICE_ROLE_KEY', 'SUPABASE_SERVICE_ROLE_KEY').value,
    jwtSecret: pick(flags.jwtSecret, 'JWT_SECRET', 'SUPABASE_JWT_SECRET').value,
    // The local stack's signing key only goes with the local stack's URL.
    testKeyFile: flags.testKey ?? env.SMOKE_TEST_KEY ??
      (url.from === 'flags' ? undefined : pick(undefined, 'SIGNING_KEY_FILE').value),
    // The local stack's DB_URL only goes with the local stack's URL, never with a --url given by hand.
    databaseUrl: flags.dbUrl ?? env.SMOKE_DB_URL ??
      (url.from === 'flags' ? undefined : pick(undefined, 'DB_URL').value),
    model: flags.model ?? env.SMOKE_MODEL,
    source: url.from ?? 'flags',
  };
}
