// `npm run smoke`: the launch smoke phases against the local stack or a
// deployed project, with the real clients (supabase-js functions.invoke, the
// openai SDK). Checks for capabilities not deployed yet say SKIP with the
// reason, never PASS.
//
//   npm run smoke -- [--url <FUNCTIONS_URL>] [--json] [--retries N] [--chaos] [--phase P0|P1]
//                    [--anon-key K] [--service-key K] [--jwt-secret S] [--test-key jwk.json] [--db-url URL]
//                    [--model alias] [--timeout-ms N]
//
// Exit code: 1 when a P0 check fails (or the input is bad), 2 when only P1 or
// chaos checks fail, 0 otherwise.
import { parseArgs } from 'node:util';
import type { Phase } from './lib/smoke/checks.ts';
import { formatResult, runSmoke } from './lib/smoke/runner.ts';
import { resolveTarget, TargetError } from './lib/smoke/target.ts';

function fail(message: string, json: boolean): never {
  if (json) console.log(JSON.stringify({ summary: { error: message, pass: 0, fail: 1, skip: 0, p0_failed: 1 } }));
  else console.log(`FAIL  smoke: ${message}`);
  process.exit(1);
}

let values: ReturnType<typeof parseOptions>;
function parseOptions() {
  return parseArgs({
    options: {
      url: { type: 'string' },
      json: { type: 'boolean', default: false },
      retries: { type: 'string', default: '0' },
      chaos: { type: 'boolean', default: false },
      phase: { type: 'string', multiple: true },
      'anon-key': { type: 'string' },
      'service-key': { type: 'string' },
      'jwt-secret': { type: 'string' },
      'test-key': { type: 'string' },
      'db-url': { type: 'string' },
      model: { type: 'string' },
      'timeout-ms': { type: 'string', default: '15000' },
    },
    strict: true,
  }).values;
}
const json = process.argv.includes('--json');
try {
  values = parseOptions();
} catch (error) {
  fail((error as Error).message, json);
}

const retries = Number(values.retries);
if (!Number.isInteger(retries) || retries < 0 || retries > 10) {
  fail('--retries must be a whole number from 0 to 10', json);
}
const timeoutMs = Number(values['timeout-ms']);
if (!Number.isInteger(timeoutMs) || timeoutMs < 100) fail('--timeout-ms must be a whole number of at least 100', json);
const requested = (values.phase ?? ['P0', 'P1']).map((phase) => phase.toUpperCase());
for (const phase of requested) {
  if (phase !== 'P0' && phase !== 'P1') fail(`--phase must be P0 or P1, not ${phase}`, json);
}
const phases: Phase[] = [...requested as Phase[], ...(values.chaos ? ['chaos' as const] : [])];

let target;
try {
  target = resolveTarget({
    url: values.url,
    anonKey: values['anon-key'],
    serviceKey: values['service-key'],
    jwtSecret: values['jwt-secret'],
    testKey: values['test-key'],
    dbUrl: values['db-url'],
    model: values.model,
  });
} catch (error) {
  if (error instanceof TargetError) fail(error.message, json);
  throw error;
}

if (!json) {
  console.log(
    `smoke: ${target.functionsUrl} (from ${target.source}), phases ${phases.join(', ')}, retries ${retries}\n`,
  );
}
const { summary } = await runSmoke(target, {
  phases,
  retries,
  timeoutMs,
  onResult: (result) => console.log(json ? JSON.stringify(result) : formatResult(result)),
});
if (json) console.log(JSON.stringify({ summary }));
else {
  console.log(
    `\n${summary.pass} passed, ${summary.fail} failed, ${summary.skip} skipped (run ${summary.run_id}, ${summary.duration_ms} ms)`,
  );
}
// Explicit exit code: nothing left running may decide it.
process.exit(summary.p0_failed > 0 ? 1 : summary.fail > 0 ? 2 : 0);
