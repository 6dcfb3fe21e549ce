// `npm run load`: a short, bounded load run against the local stack (loopback
// only): P50/P95/P99 latency, throughput and error rate.
//
//   npm run load -- [--connections 10] [--duration 10] [--max-requests 20000]
//                   [--url <FUNCTIONS_URL>] [--path /readiness/ready] [--json]
import { parseArgs } from 'node:util';
import { LoadTargetError, runLoad } from './lib/load.ts';
import { resolveTarget, TargetError } from './lib/smoke/target.ts';

const json = process.argv.includes('--json');
function fail(message: string): never {
  console.log(json ? JSON.stringify({ error: message }) : `FAIL  load: ${message}`);
  process.exit(1);
}

function parseOptions() {
  return parseArgs({
    options: {
      url: { type: 'string' },
      path: { type: 'string', default: '/readiness/ready' },
      connections: { type: 'string', default: '10' },
      duration: { type: 'string', default: '10' },
      'max-requests': { type: 'string', default: '20000' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  }).values;
}
let values: ReturnType<typeof parseOptions>;
try {
  values = parseOptions();
} catch (error) {
  fail((error as Error).message);
}
const number = (name: string, text: string) => {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) fail(`--${name} must be a positive number`);
  return value;
};
const connections = number('connections', values.connections);
const durationSeconds = number('duration', values.duration);
const maxRequests = number('max-requests', values['max-requests']);
if (!values.path.startsWith('/')) fail('--path must start with /');

let functionsUrl: string;
let anonKey: string | undefined;
try {
  const target = resolveTarget({ url: values.url });
  functionsUrl = target.functionsUrl;
  anonKey = target.anonKey;
} catch (error) {
  if (error instanceof TargetError) fail(error.message);
  throw error;
}

try {
  const result = await runLoad({
    url: `${functionsUrl}${values.path}`,
    headers: anonKey ? { apikey: anonKey } : undefined,
    connections,
    durationSeconds,
    maxRequests,
  });
  if (result.requests === 0) fail(`no request got an answer from ${result.url}`);
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(`load: ${result.url}, ${result.connections} connections, ${result.duration_seconds} s`);
    console.log(
      `  requests    ${result.requests} (${result.errors} errors, error rate ${(result.error_rate * 100).toFixed(2)}%)`,
    );
    console.log(`  throughput  ${result.throughput_rps} requests/s`);
    console.log(`  latency     p50 ${result.p50_ms} ms, p95 ${result.p95_ms} ms, p99 ${result.p99_ms} ms`);
  }
  process.exit(0);
} catch (error) {
  if (error instanceof LoadTargetError) fail(error.message);
  throw error;
}
