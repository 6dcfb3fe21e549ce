import type { ReadinessCheck } from './checks.ts';

/** Dead letters not requeued yet, counted only up to just past the threshold. */
export const dlqDepthUnderThreshold: ReadinessCheck = {
  name: 'dlq_depth_under_threshold',
  async run({ deps, settings, capabilities }) {
    if (!(await capabilities()).jobDeadLetters) {
      return { status: 'skip', detail: 'table public.job_dead_letters does not exist yet (jobs/DLQ issue)' };
    }
    const limit = settings.dlqMaxDepth;
    const [row] = await deps.db<{ depth: number }[]>`
      select count(*)::int as depth
      from (select 1 from public.job_dead_letters where requeued_at is null limit ${limit + 1}) pending`;
    if (row.depth > limit) {
      return { status: 'fail', detail: `more than ${limit} dead letters waiting (limit ${limit})` };
    }
    return { status: 'pass', detail: `${row.depth} dead letters waiting (limit ${limit})` };
  },
};
