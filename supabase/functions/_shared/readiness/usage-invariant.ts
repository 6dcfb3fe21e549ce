import type { ReadinessCheck } from './checks.ts';

/** Budget conservation holds: `usage_invariant_violations()` returns no row. */
export const usageInvariantHolds: ReadinessCheck = {
  name: 'usage_invariant_holds',
  async run({ deps, settings, capabilities }) {
    if (!(await capabilities()).usageInvariant) {
      return {
        status: 'skip',
        detail: 'function public.usage_invariant_violations() does not exist yet (tenant-economics issue)',
      };
    }
    // The server stops the scan too when the check gives up.
    const rows = await deps.db.begin(async (tx) => {
      await tx`select set_config('statement_timeout', ${String(settings.checkTimeoutMs)}, true)`;
      return await tx<{ kind: string; violations: number }[]>`
        select kind, count(*)::int as violations from public.usage_invariant_violations() group by kind order by kind`;
    });
    if (rows.length > 0) {
      return { status: 'fail', detail: `violations: ${rows.map((row) => `${row.kind} ${row.violations}`).join(', ')}` };
    }
    return { status: 'pass', detail: 'usage_invariant_violations() is empty' };
  },
};
