import { type Database, sqlState, type Transaction } from '../db.ts';
import type { CheckOutcome, ReadinessCheck } from './checks.ts';

/** Raised to roll the probe's transaction back whatever happened inside it. */
class RollbackProbe extends Error {}

type Attempt = 'insert' | 'update' | 'delete';

// `where false` still needs the privilege (checked when the statement starts)
// but touches and locks no row; the insert is a real one, as the seed asks.
function statement(attempt: Attempt, table: string, column: string): string {
  if (attempt === 'insert') return `insert into ${table} default values`;
  if (attempt === 'update') return `update ${table} set ${column} = default where false`;
  return `delete from ${table} where false`;
}

/** What anon's attempt came to: refused (42501), or a reason it was not. */
async function attemptAs(
  tx: Transaction,
  table: string,
  column: string,
  attempt: Attempt,
): Promise<string | undefined> {
  try {
    await tx.savepoint(async (sp) => {
      const result = await sp.unsafe(statement(attempt, table, column));
      throw new RollbackProbe(`${attempt} on ${table} succeeded (${result.count} rows)`);
    });
    return `${attempt} on ${table} was not refused`;
  } catch (error) {
    if (error instanceof RollbackProbe) return error.message;
    if (sqlState(error) === '42501') return undefined;
    // Anything else (a NOT NULL or CHECK violation, a trigger) means the
    // statement got past the privilege check and row level security.
    return `${attempt} on ${table} got past privileges and RLS (stopped by SQLSTATE ${sqlState(error) ?? 'unknown'})`;
  }
}

/**
 * Tries, as `anon` with PostgREST's claims, a real insert and an update and
 * delete on each table, in one transaction that is always rolled back.
 * Returns what anon managed to do (empty: every attempt was refused).
 */
export async function probeAnonWrites(db: Database, tables: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  try {
    await db.begin(async (tx) => {
      // A plain column to name in the update, read before becoming anon. `= default`
      // needs no SELECT privilege, so only the UPDATE privilege decides.
      const columns = await tx<{ table_oid: number; column_name: string }[]>`
        select distinct on (a.attrelid) a.attrelid::int8 as table_oid, quote_ident(a.attname) as column_name
        from pg_attribute a
        where a.attrelid = any (${tables as string[]}::regclass[]) and a.attnum > 0 and not a.attisdropped
          and a.attidentity = '' and a.attgenerated = ''
        order by a.attrelid, a.attnum`;
      const oids = await tx<{ oid: number }[]>`select unnest(${tables as string[]}::regclass[])::int8 as oid`;
      await tx`select set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true)`;
      for (const [index, table] of tables.entries()) {
        const column = columns.find((row) => Number(row.table_oid) === Number(oids[index]?.oid))?.column_name ?? 'id';
        for (const attempt of ['insert', 'update', 'delete'] as const) {
          const problem = await attemptAs(tx, table, column, attempt);
          if (problem) problems.push(problem);
        }
      }
      throw new RollbackProbe('rollback');
    });
  } catch (error) {
    if (!(error instanceof RollbackProbe)) throw error;
  }
  return problems;
}

/** `anon` must not write jobs or artifacts (seed: "verify anon cannot insert into jobs/artifacts"). */
export const anonCannotWriteJobsAndArtifacts: ReadinessCheck = {
  name: 'anon_cannot_write_jobs_and_artifacts',
  async run({ deps, capabilities }) {
    const present = await capabilities();
    const tables = [present.jobs && 'public.jobs', present.artifacts && 'public.artifacts'].filter(
      (table): table is string => typeof table === 'string',
    );
    if (tables.length === 0) {
      return { status: 'skip', detail: 'tables public.jobs and public.artifacts do not exist yet (jobs/DLQ issue)' };
    }
    const problems = await probeAnonWrites(deps.db, tables);
    const missing = ['public.jobs', 'public.artifacts'].filter((table) => !tables.includes(table));
    const note = missing.length > 0 ? `; ${missing.join(', ')} not created yet` : '';
    const outcome: CheckOutcome = problems.length > 0
      ? { status: 'fail', detail: `anon can write: ${problems.join('; ')}` }
      : { status: 'pass', detail: `anon refused insert, update and delete on ${tables.join(', ')}${note}` };
    return outcome;
  },
};
