// `npm run readiness`: the go/no-go report. Every `/ready` check, the smoke
// phases, the database lint gate (the functions pgTAP asserts empty), and a
// short bounded load run judged against ops/launch-thresholds.json, in one
// Markdown table with PASS/FAIL/SKIP and a final GO / NO-GO, plus JSON.
//
//   npm run readiness -- [--url <FUNCTIONS_URL>] [--json] [--out report.md] [--thresholds file]
//                        [--chaos] [--no-load] [--strict] [smoke credential flags, see scripts/smoke.ts]
//
// GO needs no FAIL and no required item skipped (a capability not deployed
// is not launched). Exit code: 1 on any FAIL (or bad input), else 0; with
// --strict a NO-GO exits 1 too. `--out x.md` also writes x.json.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { z } from 'zod';
import { type LoadResult, LoadTargetError, runLoad } from './lib/load.ts';
import { repoRoot } from './lib/paths.ts';
import type { Phase } from './lib/smoke/checks.ts';
import { runSmoke } from './lib/smoke/runner.ts';
import { resolveTarget, type SmokeTarget, TargetError } from './lib/smoke/target.ts';

type Status = 'PASS' | 'FAIL' | 'SKIP';

interface Row {
  area: 'ready' | 'smoke' | 'lint' | 'load';
  check: string;
  status: Status;
  detail: string;
  /** A required item that is skipped makes the verdict NO-GO. */
  required: boolean;
}

const thresholdsSchema = z.object({
  load: z.object({
    path: z.string().startsWith('/'),
    connections: z.number().int().min(1).max(64),
    duration_seconds: z.number().positive().max(60),
    max_requests: z.number().int().positive(),
    p95_ms_max: z.number().positive(),
    error_rate_max: z.number().min(0).max(1),
    throughput_rps_min: z.number().min(0),
  }),
  smoke: z.object({
    phases: z.array(z.enum(['P0', 'P1'])).min(1),
    chaos: z.boolean(),
    retries: z.number().int().min(0).max(10),
  }),
});
type Thresholds = z.infer<typeof thresholdsSchema>;

const json = process.argv.includes('--json');
function fail(message: string): never {
  console.log(json ? JSON.stringify({ verdict: 'NO-GO', error: message }) : `FAIL  readiness: ${message}`);
  process.exit(1);
}

function parseOptions() {
  return parseArgs({
    options: {
      url: { type: 'string' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      thresholds: { type: 'string', default: path.join(repoRoot, 'ops', 'launch-thresholds.json') },
      chaos: { type: 'boolean', default: false },
      'no-load': { type: 'boolean', default: false },
      strict: { type: 'boolean', default: false },
      'anon-key': { type: 'string' },
      'service-key': { type: 'string' },
      'jwt-secret': { type: 'string' },
      'test-key': { type: 'string' },
      'db-url': { type: 'string' },
      model: { type: 'string' },
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

async function loadThresholds(file: string): Promise<Thresholds> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    fail(`cannot read thresholds ${file}: ${(error as Error).message}`);
  }
  const parsed = thresholdsSchema.safeParse(raw);
  if (!parsed.success) {
    fail(`thresholds ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

async function readyRows(target: SmokeTarget): Promise<Row[]> {
  let response: Response;
  try {
    response = await fetch(`${target.functionsUrl}/readiness/ready`, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return [{
      area: 'ready',
      check: '/readiness/ready',
      status: 'FAIL',
      detail: `cannot reach: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
      required: true,
    }];
  }
  const body = await response.json().catch(() => undefined) as {
    checks?: { name: string; status: string; detail: string; optional?: boolean }[];
  } | undefined;
  if (!body?.checks) {
    return [{
      area: 'ready',
      check: '/readiness/ready',
      status: 'FAIL',
      detail: `answered ${response.status} without checks`,
      required: true,
    }];
  }
  return body.checks.map((check) => ({
    area: 'ready',
    check: check.name,
    status: check.status.toUpperCase() as Status,
    // A skip readiness marks optional (a dependency config leaves out) does not hold up GO.
    detail: check.optional ? `${check.detail} (optional)` : check.detail,
    required: !check.optional,
  }));
}

// The lint functions that supabase/tests/database/001_lint_gate.test.sql asserts empty.
const lintFunctions = [
  'tables_without_rls',
  'definer_functions_without_search_path',
  'views_without_security_invoker',
  'anon_table_writes',
  'anon_executable_functions',
  'policies_with_per_row_auth_calls',
  'unindexed_foreign_keys',
];

async function lintRows(target: SmokeTarget): Promise<Row[]> {
  if (!target.databaseUrl) {
    return [{
      area: 'lint',
      check: 'lint gate',
      status: 'SKIP',
      detail: 'needs direct database access (--db-url)',
      required: true,
    }];
  }
  const sql = postgres(target.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const rows: Row[] = [];
    for (const name of lintFunctions) {
      try {
        const found = await sql.unsafe<{ object_name: string }[]>(`select object_name from lint.${name}()`);
        rows.push({
          area: 'lint',
          check: name,
          status: found.length === 0 ? 'PASS' : 'FAIL',
          detail: found.length === 0 ? 'empty' : found.slice(0, 5).map((row) => row.object_name).join(', '),
          required: true,
        });
      } catch (error) {
        rows.push({
          area: 'lint',
          check: name,
          status: 'FAIL',
          detail: (error as Error).message.replace(/postgres(ql)?:\/\/\S+/g, '[database url]'),
          required: true,
        });
      }
    }
    return rows;
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function loadRows(
  target: SmokeTarget,
  thresholds: Thresholds['load'],
): Promise<{ rows: Row[]; result?: LoadResult }> {
  let result: LoadResult;
  try {
    result = await runLoad({
      url: `${target.functionsUrl}${thresholds.path}`,
      headers: target.anonKey ? { apikey: target.anonKey } : undefined,
      connections: thresholds.connections,
      durationSeconds: thresholds.duration_seconds,
      maxRequests: thresholds.max_requests,
    });
  } catch (error) {
    if (error instanceof LoadTargetError) {
      return { rows: [{ area: 'load', check: 'load run', status: 'SKIP', detail: error.message, required: true }] };
    }
    return {
      rows: [{ area: 'load', check: 'load run', status: 'FAIL', detail: (error as Error).message, required: true }],
    };
  }
  const row = (check: string, ok: boolean, detail: string): Row => ({
    area: 'load',
    check,
    status: ok ? 'PASS' : 'FAIL',
    detail,
    required: true,
  });
  return {
    result,
    rows: [
      row(
        'p95 latency',
        result.p95_ms <= thresholds.p95_ms_max,
        `${result.p95_ms} ms (max ${thresholds.p95_ms_max}); p50 ${result.p50_ms}, p99 ${result.p99_ms}`,
      ),
      row(
        'error rate',
        result.error_rate <= thresholds.error_rate_max,
        `${(result.error_rate * 100).toFixed(2)}% of ${result.requests} (max ${
          (thresholds.error_rate_max * 100).toFixed(2)
        }%)`,
      ),
      row(
        'throughput',
        result.throughput_rps >= thresholds.throughput_rps_min,
        `${result.throughput_rps} req/s at ${result.connections} connections (min ${thresholds.throughput_rps_min})`,
      ),
    ],
  };
}

function markdown(report: { url: string; at: string; verdict: string; reasons: string[]; rows: Row[] }): string {
  const escape = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
  return [
    `# Switchyard go/no-go report`,
    '',
    `Target: ${report.url}  `,
    `Generated: ${report.at}`,
    '',
    '| area | check | status | detail |',
    '| --- | --- | --- | --- |',
    ...report.rows.map((row) => `| ${row.area} | ${escape(row.check)} | ${row.status} | ${escape(row.detail)} |`),
    '',
    `**Verdict: ${report.verdict}**`,
    ...(report.reasons.length > 0 ? ['', ...report.reasons.map((reason) => `- ${escape(reason)}`)] : []),
    '',
  ].join('\n');
}

const thresholds = await loadThresholds(values.thresholds);
let target: SmokeTarget;
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
  if (error instanceof TargetError) fail(error.message);
  throw error;
}

const rows: Row[] = [...await readyRows(target)];
const phases: Phase[] = [
  ...thresholds.smoke.phases,
  ...(values.chaos || thresholds.smoke.chaos ? ['chaos' as const] : []),
];
const smoke = await runSmoke(target, { phases, retries: thresholds.smoke.retries, timeoutMs: 15_000 });
rows.push(...smoke.results.map((result): Row => ({
  area: 'smoke',
  check: `${result.id} ${result.name}`,
  status: result.status,
  detail: result.detail,
  // P0 is the launch bar; P1 and chaos are recommended (seed: "Recommended" items are tracked, not blocking).
  required: result.phase === 'P0',
})));
rows.push(...await lintRows(target));
let load: LoadResult | undefined;
if (values['no-load']) {
  rows.push({ area: 'load', check: 'load run', status: 'SKIP', detail: 'skipped with --no-load', required: true });
} else {
  const outcome = await loadRows(target, thresholds.load);
  rows.push(...outcome.rows);
  load = outcome.result;
}

const failed = rows.filter((row) => row.status === 'FAIL');
const skippedRequired = rows.filter((row) => row.status === 'SKIP' && row.required);
const reasons = [
  ...failed.map((row) => `FAIL ${row.area} ${row.check}: ${row.detail}`),
  ...skippedRequired.map((row) => `SKIP ${row.area} ${row.check}: ${row.detail}`),
];
const verdict = reasons.length === 0 ? 'GO' : 'NO-GO';
const report = {
  url: target.functionsUrl,
  at: new Date().toISOString(),
  verdict,
  reasons,
  counts: {
    pass: rows.filter((row) => row.status === 'PASS').length,
    fail: failed.length,
    skip: rows.filter((row) => row.status === 'SKIP').length,
  },
  thresholds,
  load,
  rows,
};
const text = markdown(report);
if (values.out) {
  await writeFile(values.out, text);
  await writeFile(values.out.replace(/\.md$/i, '') + '.json', `${JSON.stringify(report, null, 2)}\n`);
}
console.log(json ? JSON.stringify(report) : text);
process.exit(failed.length > 0 || (values.strict && verdict !== 'GO') ? 1 : 0);
