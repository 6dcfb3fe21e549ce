import type { AppDependencies } from '../dependencies.ts';
import { type Capabilities, detectCapabilities } from './capabilities.ts';
import { expectedMigrationVersions } from './migration-manifest.ts';
import type { ReadinessSettings } from './settings.ts';

export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface CheckOutcome {
  status: CheckStatus;
  detail: string;
  /** On a skip: the dependency is optional and not configured, which config allows (it does not hold up a launch). */
  optional?: true;
}

export interface CheckResult extends CheckOutcome {
  name: string;
  duration_ms: number;
}

/** What a check is given: the function's dependencies, the thresholds, and the capabilities probe. */
export interface ReadinessContext {
  deps: AppDependencies;
  settings: ReadinessSettings;
  /** Which optional tables and functions exist; detected once per run and shared by the checks. */
  capabilities(): Promise<Capabilities>;
}

export interface ReadinessCheck {
  name: string;
  run(context: ReadinessContext): Promise<CheckOutcome>;
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Runs every check in parallel, each bounded by the check timeout; a thrown check is a fail. */
export async function runChecks(
  checks: readonly ReadinessCheck[],
  deps: AppDependencies,
  settings: ReadinessSettings,
): Promise<CheckResult[]> {
  let detected: Promise<Capabilities> | undefined;
  const context: ReadinessContext = {
    deps,
    settings,
    capabilities: () => (detected ??= detectCapabilities(deps.db)),
  };
  return await Promise.all(checks.map(async (check) => {
    // A duration for the logs/metrics, not a time of day: the monotonic clock, nothing a test needs to move.
    const started = performance.now();
    let outcome: CheckOutcome;
    try {
      outcome = await withTimeout(check.run(context), settings.checkTimeoutMs, check.name);
    } catch (error) {
      outcome = { status: 'fail', detail: describeFailure(error) };
    }
    return { name: check.name, ...outcome, duration_ms: Math.round(performance.now() - started) };
  }));
}

/** A short reason without connection strings or credentials. */
function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return 'check failed';
  const code = (error as { code?: unknown }).code;
  const message = error.message.replace(/postgres(ql)?:\/\/\S+/g, '[database url]');
  return typeof code === 'string' ? `${code}: ${message}` : message;
}

const databaseReachable: ReadinessCheck = {
  name: 'database_reachable',
  async run({ deps }) {
    await deps.db`select 1`;
    return { status: 'pass', detail: 'select 1 answered' };
  },
};

const migrationsAtHead: ReadinessCheck = {
  name: 'migrations_at_head',
  async run({ deps }) {
    const rows = await deps.db<{ version: string }[]>`select version from supabase_migrations.schema_migrations`;
    const applied = new Set(rows.map((row) => row.version));
    const missing = expectedMigrationVersions.filter((version) => !applied.has(version));
    if (missing.length > 0) return { status: 'fail', detail: `pending migrations: ${missing.join(', ')}` };
    return { status: 'pass', detail: `${expectedMigrationVersions.length} migrations applied` };
  },
};

const rlsOnExposedTables: ReadinessCheck = {
  name: 'rls_on_exposed_tables',
  async run({ deps }) {
    const rows = await deps.db<{ object_name: string }[]>`select object_name from lint.tables_without_rls()`;
    if (rows.length > 0) {
      return {
        status: 'fail',
        detail: `RLS disabled on ${rows.map((r) => r.object_name).join(', ')}`,
      };
    }
    return { status: 'pass', detail: 'every table in an exposed schema has RLS enabled' };
  },
};

export const foundationChecks: readonly ReadinessCheck[] = [databaseReachable, migrationsAtHead, rlsOnExposedTables];
