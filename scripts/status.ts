// `npm run status`: the running local stack's URLs and keys as env lines
// (the names `supabase status -o env` uses), for `eval "$(npm run -s status)"`.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stateDir as defaultStateDir } from './lib/paths.ts';

const stateDir = process.env.SWITCHYARD_STATE_DIR ?? defaultStateDir;
const pidFile = path.join(stateDir, 'stack.pid');
const statusFile = path.join(stateDir, 'status.env');

function running(): boolean {
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

if (!running() || !existsSync(statusFile)) {
  console.error('switchyard: the local stack is not running (start it with `npm start`)');
  process.exit(1);
}
process.stdout.write(readFileSync(statusFile, 'utf8'));
