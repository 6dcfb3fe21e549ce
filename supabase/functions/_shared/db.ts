import postgres from 'postgres';
import type { Config } from './config.ts';

/** The database handle every function receives: a `postgres` connection pool. */
export type Database = postgres.Sql;
export type Transaction = postgres.TransactionSql;

export function createDatabase(config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'databasePrepare'>): Database {
  return postgres(config.databaseUrl, {
    max: config.databasePoolMax,
    prepare: config.databasePrepare,
    idle_timeout: 30,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: 'switchyard-functions' },
  });
}

/** The database role and JWT claims a transaction runs under, as PostgREST sets them. */
export interface DatabaseIdentity {
  role: 'service_role' | 'authenticated';
  claims: Record<string, unknown>;
}

/**
 * Runs `work` in a transaction as the given role with `request.jwt.claims`
 * set, so RLS policies and auth.uid() see the caller exactly as they would
 * behind PostgREST.
 */
export function withIdentity<T>(
  db: Database,
  identity: DatabaseIdentity,
  work: (tx: Transaction) => Promise<T>,
): Promise<T> {
  return db.begin(async (tx) => {
    await tx`select set_config('role', ${identity.role}, true), set_config('request.jwt.claims', ${
      JSON.stringify(identity.claims)
    }, true)`;
    return await work(tx);
  }) as Promise<T>;
}

/** SQLSTATE of a database error, if it is one. */
export function sqlState(error: unknown): string | undefined {
  if (error && typeof error === 'object' && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
