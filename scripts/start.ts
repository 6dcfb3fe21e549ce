// `npm start`: the local Switchyard stack without Docker. PostgreSQL (embedded,
// or DATABASE_URL), the Supabase platform bootstrap, migrations through the
// Supabase CLI, every function under Deno at /functions/v1/<name>, and the
// maintenance schedules (`npm run worker`, as pg_cron runs them on Supabase).
import { type ChildProcess, spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bin, repoRoot, stateDir as defaultStateDir } from './lib/paths.ts';
import { buildConsole, type ConsoleServer, serveConsole } from './lib/console-server.ts';
import { exitOnSetupError } from './lib/database.ts';
import { registerDemoProviderIfNoKeys } from './lib/demo-provider.ts';
import { ensureLocalOperator, signInLink, signLocalUserToken } from './lib/local-operator.ts';
import { loadOrCreateSecrets } from './lib/secrets.ts';
import { startStack, statusLines, writeStatusFile } from './lib/stack.ts';

const stateDir = process.env.SWITCHYARD_STATE_DIR ?? defaultStateDir;
const functionsPort = Number(process.env.FUNCTIONS_PORT ?? '54321');
const databasePort = Number(process.env.DB_PORT ?? '54322');
// The operator console, where Supabase's local Studio lives; START_CONSOLE=false leaves it out.
const consolePort = Number(process.env.CONSOLE_PORT ?? '54323');
const startConsole = process.env.START_CONSOLE !== 'false';
const log = (line: string) => console.log(`[switchyard] ${line}`);

const started = Date.now();
const secrets = await loadOrCreateSecrets(stateDir);
// Built while the database and Deno start (a second or two), so the console matches the sources.
const consoleBuild = startConsole ? buildConsole() : undefined;
consoleBuild?.catch(() => {});
const stack = await startStack({
  stateDir,
  functionsPort,
  databasePort,
  databaseUrl: process.env.DATABASE_URL || undefined,
  secrets,
  log,
  functionsOutput: 'inherit',
  consoleOrigins: startConsole ? [`http://127.0.0.1:${consolePort}`, `http://localhost:${consolePort}`] : [],
}).catch(exitOnSetupError);
const demo = await registerDemoProviderIfNoKeys({
  dbUrl: stack.dbUrl,
  functionsUrl: stack.functionsUrl,
  anonKey: secrets.anonKey,
  serviceRoleKey: secrets.serviceRoleKey,
  port: Number(process.env.DEMO_UPSTREAM_PORT ?? '54329'),
});
// The private signing key, for tools that sign user tokens the way Supabase Auth would (smoke --test-key).
const signingKeyFile = path.join(stateDir, 'user-signing-key.jwk.json');
await writeFile(signingKeyFile, `${JSON.stringify(secrets.userSigningKey)}\n`, { mode: 0o600 });
let consoleServer: ConsoleServer | undefined;
let consoleLines = 'START_CONSOLE=false: the operator console is not served.';
if (consoleBuild) {
  try {
    await consoleBuild;
    consoleServer = await serveConsole({
      port: consolePort,
      config: { functionsUrl: stack.functionsUrl, anonKey: secrets.anonKey },
    });
    const operator = await ensureLocalOperator(stack.dbUrl);
    const link = signInLink(consoleServer.url, await signLocalUserToken(secrets.userSigningKey, operator.userId));
    consoleLines = `         Console: ${consoleServer.url}
 Console sign-in: ${link}
                  (the local operator, admin of the "Local operator" tenant; a fresh link each start, valid 12 h;
                  for every tenant, paste the service_role key as a break-glass session instead)`;
  } catch (error) {
    consoleLines = `The operator console did not start: ${error instanceof Error ? error.message : String(error)}`;
  }
}
const lines = [...statusLines(stack, secrets), `SIGNING_KEY_FILE=${signingKeyFile}`];
if (consoleServer) lines.push(`CONSOLE_URL=${consoleServer.url}`);
await writeStatusFile(stateDir, lines);
const pidFile = path.join(stateDir, 'stack.pid');
await writeFile(pidFile, `${process.pid}\n`);

// The schedules of public.schedules, every few seconds, as pg_cron would run them
// on Supabase (readiness checks they are on time). START_WORKER=false leaves them
// to a separate `npm run worker`.
let worker: ChildProcess | undefined;
if (process.env.START_WORKER !== 'false') {
  worker = spawn(bin('tsx'), [path.join(repoRoot, 'scripts', 'worker.ts'), '--interval', '5'], {
    cwd: repoRoot,
    // This stack's URLs and keys, whatever the shell exported for another project.
    env: {
      ...process.env,
      SWITCHYARD_STATE_DIR: stateDir,
      DATABASE_URL: stack.dbUrl,
      FUNCTIONS_URL: stack.functionsUrl,
      SERVICE_ROLE_KEY: secrets.serviceRoleKey,
      JOB_TOKEN: secrets.jobToken,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

console.log(`
Switchyard local stack is running (ready in ${((Date.now() - started) / 1000).toFixed(1)} s).

         API URL: ${stack.apiUrl}
   Functions URL: ${stack.functionsUrl}
          DB URL: ${stack.dbUrl}
      JWT secret: ${secrets.jwtSecret}
        anon key: ${secrets.anonKey}
service_role key: ${secrets.serviceRoleKey}

${consoleLines}

Try: curl ${stack.functionsUrl}/readiness/ready
'npm run status' prints these as env lines. Ctrl-C stops everything.
${
  worker
    ? 'The maintenance schedules run in the background (npm run worker; START_WORKER=false to leave them out).'
    : 'START_WORKER=false: run the schedules with npm run worker.'
}
`);
if (demo) {
  console.log(`*** DEMO PROVIDER ***
The key vault holds no provider key, so the LOCAL DEMO provider "switchyard-demo" is registered:
a fake OpenAI-format upstream at ${demo.url} that echoes what you send. Models: demo-chat, demo-embeddings.
Nothing reaches a real LLM. Add a real key (POST ${stack.functionsUrl}/keys) and restart to stop using it.
`);
}

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping`);
  worker?.kill('SIGTERM');
  demo?.stop();
  await consoleServer?.close();
  await stack.stop();
  await rm(pidFile, { force: true });
  log('stopped');
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
