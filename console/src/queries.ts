import { useQuery } from '@tanstack/react-query';
import { useConsole } from './context.ts';
import type { UsageDay, UsageGroup, UsageRow } from './lib/usage.ts';

export interface UsageResponse {
  tenant_id: string;
  group_by: UsageGroup[];
  items: UsageRow[];
}

/** GET /ops/usage once per day (the endpoint sums a range; the days are its ranges), in parallel. */
export function useDailyUsage(days: readonly UsageDay[], groups: readonly UsageGroup[]) {
  const { api, tenant } = useConsole();
  return useQuery({
    queryKey: ['usage-daily', tenant.id, days[0]?.day, days.at(-1)?.day, groups.join(',')],
    queryFn: () =>
      Promise.all(days.map(async (day) => ({
        day: day.day,
        items: (await api.get<UsageResponse>('/ops/usage', {
          tenant_id: tenant.id,
          group_by: groups.join(','),
          from: day.from,
          to: day.to,
        })).items,
      }))),
  });
}

// The endpoints' own response types (type-only imports: nothing of the functions reaches the bundle).
export type {
  DeadLetterItem as DeadLetter,
  ListDeadLettersResponse as DeadLetterPage,
} from '../../supabase/functions/dlq-list/routes/list-dead-letters.ts';
