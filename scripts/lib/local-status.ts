import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stateDir as defaultStateDir } from './paths.ts';

/**
 * The running local stack's values (what `npm run status` prints: API_URL,
 * FUNCTIONS_URL, DB_URL, ANON_KEY, SERVICE_ROLE_KEY, ...), or undefined when
 * no stack is running.
 */
export function localStackStatus(
  stateDir = process.env.SWITCHYARD_STATE_DIR ?? defaultStateDir,
): Record<string, string> | undefined {
  const pidFile = path.join(stateDir, 'stack.pid');
  const statusFile = path.join(stateDir, 'status.env');
  if (!existsSync(pidFile) || !existsSync(statusFile)) return undefined;
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 0);
  } catch {
    return undefined;
  }
  const values: Record<string, string> = {};
  for (const line of readFileSync(statusFile, 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) values[match[1]] = match[2];
  }
  return values;
}
