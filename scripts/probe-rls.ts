// `npm run probe:rls`: as `anon` (the key a browser holds), try to write and
// read jobs, artifacts, secure_keys and usage_records; every attempt must be
// refused. Through PostgREST with @supabase/supabase-js when the URL serves
// one (a Supabase project); the local stack has none, so there the same
// attempts run through SQL as anon (--db-url, or the local stack's DB_URL).
//
//   npm run probe:rls -- [--url <SUPABASE_URL>] [--anon-key K] [--db-url URL] [--json]
//
// Exit code 1 when anon got through anywhere or the probe could not run.
import { parseArgs } from 'node:util';
import { createClient } from '@supabase/supabase-js';
import postgres from 'postgres';
import { probeAnonWrites } from '../supabase/functions/_shared/readiness/anon-writes.ts';
import { resolveTarget, TargetError } from './lib/smoke/target.ts';

const tables = ['jobs', 'artifacts', 'secure_keys', 'usage_records'] as const;

interface Attempt {
  table: string;
  action: 'insert' | 'select' | 'update/delete';
  via: 'postgrest' | 'sql';
  status: 'REFUSED' | 'ALLOWED' | 'ABSENT' | 'ERROR';
  detail: string;
}

const json = process.argv.includes('--json');
function fail(message: string): never {
  console.log(json ? JSON.stringify({ ok: false, error: message }) : `FAIL  probe:rls: ${message}`);
  process.exit(1);
}

function parseOptions() {
  return parseArgs({
    options: {
      url: { type: 'string' },
      'anon-key': { type: 'string' },
      'db-url': { type: 'string' },
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

// --url is the project URL (https://<ref>.supabase.co); the smoke target wants FUNCTIONS_URL.
let target;
try {
  const projectUrl = values.url?.replace(/\/+$/, '');
  target = resolveTarget({
    url: projectUrl ? (projectUrl.endsWith('/functions/v1') ? projectUrl : `${projectUrl}/functions/v1`) : undefined,
    anonKey: values['anon-key'],
    dbUrl: values['db-url'],
  });
} catch (error) {
  if (error instanceof TargetError) fail(error.message.replace('FUNCTIONS_URL', 'SUPABASE_URL'));
  throw error;
}
if (!target.anonKey) fail('no anon key: pass --anon-key or set ANON_KEY');

/** True when the URL serves PostgREST (a Supabase project): its root answers with the OpenAPI description or 401/200. */
async function hasPostgrest(apiUrl: string, anonKey: string): Promise<boolean> {
  try {
    const response = await fetch(`${apiUrl}/rest/v1/`, {
      headers: { apikey: anonKey },
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return response.ok && /swagger|openapi/i.test(text);
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    fail(`cannot reach ${apiUrl}: ${cause?.code ?? (error as Error).message}`);
  }
}

async function throughPostgrest(apiUrl: string, anonKey: string): Promise<Attempt[]> {
  const client = createClient(apiUrl, anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
  const attempts: Attempt[] = [];
  for (const table of tables) {
    const inserted = await client.from(table).insert({}).select();
    attempts.push({
      table,
      action: 'insert',
      via: 'postgrest',
      status: inserted.error
        ? (inserted.error.code === 'PGRST205' || inserted.error.code === '42P01' ? 'ABSENT' : 'REFUSED')
        : 'ALLOWED',
      detail: inserted.error
        ? `${inserted.error.code}: ${inserted.error.message}`
        : `inserted ${inserted.data?.length ?? 0} rows`,
    });
    const read = await client.from(table).select('*').limit(1);
    const rows = read.data?.length ?? 0;
    attempts.push({
      table,
      action: 'select',
      via: 'postgrest',
      status: read.error
        ? (read.error.code === 'PGRST205' || read.error.code === '42P01' ? 'ABSENT' : 'REFUSED')
        : rows === 0
        ? 'REFUSED'
        : 'ALLOWED',
      detail: read.error ? `${read.error.code}: ${read.error.message}` : `${rows} rows visible`,
    });
  }
  return attempts;
}

async function throughSql(databaseUrl: string): Promise<Attempt[]> {
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {}, connect_timeout: 5 });
  const attempts: Attempt[] = [];
  try {
    for (const table of tables) {
      const [exists] = await sql<
        { present: boolean }[]
      >`select to_regclass(${`public.${table}`}) is not null as present`;
      if (!exists.present) {
        attempts.push({
          table,
          action: 'insert',
          via: 'sql',
          status: 'ABSENT',
          detail: `public.${table} does not exist yet`,
        });
        continue;
      }
      // The same probe readiness runs: a real insert plus update/delete, rolled back.
      const problems = await probeAnonWrites(sql, [`public.${table}`]);
      const writes = problems.filter((problem) => !problem.startsWith('update') && !problem.startsWith('delete'));
      attempts.push({
        table,
        action: 'insert',
        via: 'sql',
        status: writes.length > 0 ? 'ALLOWED' : 'REFUSED',
        detail: writes.join('; ') || 'permission denied (42501)',
      });
      const others = problems.filter((problem) => problem.startsWith('update') || problem.startsWith('delete'));
      attempts.push({
        table,
        action: 'update/delete',
        via: 'sql',
        status: others.length > 0 ? 'ALLOWED' : 'REFUSED',
        detail: others.join('; ') || 'permission denied (42501)',
      });
      const visible = await sql.begin(async (tx) => {
        await tx`select set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true)`;
        try {
          // In a savepoint, so a refusal does not abort the transaction.
          const [row] = await tx.savepoint((sp) =>
            sp.unsafe<{ count: number }[]>(`select count(*)::int as count from public.${table}`)
          );
          return `${row.count} rows visible`;
        } catch (error) {
          return `refused: ${(error as { code?: string }).code ?? ''} ${(error as Error).message}`.trim();
        }
      });
      attempts.push({
        table,
        action: 'select',
        via: 'sql',
        status: visible.startsWith('refused') || visible === '0 rows visible' ? 'REFUSED' : 'ALLOWED',
        detail: visible,
      });
    }
  } catch (error) {
    fail(`database: ${(error as Error).message.replace(/postgres(ql)?:\/\/\S+/g, '[database url]')}`);
  } finally {
    await sql.end({ timeout: 2 });
  }
  return attempts;
}

let note: string;
let attempts: Attempt[];
if (await hasPostgrest(target.apiUrl, target.anonKey)) {
  note = `PostgREST at ${target.apiUrl}/rest/v1 with @supabase/supabase-js as anon`;
  attempts = await throughPostgrest(target.apiUrl, target.anonKey);
} else {
  if (!target.databaseUrl) {
    fail(
      `no PostgREST-compatible endpoint at ${target.apiUrl}/rest/v1, and no --db-url to run the same attempts through SQL as anon`,
    );
  }
  note =
    `no PostgREST-compatible endpoint at ${target.apiUrl}/rest/v1 (the local stack has none): the same attempts ran through SQL as anon, rolled back`;
  attempts = await throughSql(target.databaseUrl);
}

const allowed = attempts.filter((attempt) => attempt.status === 'ALLOWED');
const tested = attempts.filter((attempt) => attempt.status !== 'ABSENT');
if (json) console.log(JSON.stringify({ ok: allowed.length === 0 && tested.length > 0, note, attempts }));
else {
  console.log(`probe:rls: ${note}\n`);
  for (const attempt of attempts) {
    const verdict = attempt.status === 'ALLOWED' ? 'FAIL' : attempt.status === 'ABSENT' ? 'SKIP' : 'PASS';
    console.log(
      `${verdict.padEnd(4)}  anon ${attempt.action.padEnd(13)} ${
        attempt.table.padEnd(14)
      } ${attempt.status}: ${attempt.detail}`,
    );
  }
  console.log(`\n${allowed.length === 0 ? 'anon was refused everywhere' : `anon got through ${allowed.length} times`}`);
}
process.exit(allowed.length === 0 && tested.length > 0 ? 0 : 1);
