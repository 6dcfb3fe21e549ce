import { useQuery } from '@tanstack/react-query';
import { useMemo } from 'react';
import { fetchReadiness } from '../api.ts';
import { StackedBars } from '../components/Chart.tsx';
import { ErrorNote, Loading, QueryState } from '../components/States.tsx';
import { useConsole } from '../context.ts';
import { dailySeries, formatCount, formatUsd, lastUtcDays, totals, type UsageGroup } from '../lib/usage.ts';
import { type DeadLetterPage, useDailyUsage } from '../queries.ts';

const overviewDays = 14;
const byProviderAndModel: UsageGroup[] = ['provider', 'model'];

export function OverviewPage() {
  const { api, tenant, config } = useConsole();
  const days = useMemo(() => lastUtcDays(overviewDays, new Date()), []);
  const usage = useDailyUsage(days, byProviderAndModel);
  const deadLetters = useQuery({
    queryKey: ['dlq-depth', tenant.id],
    queryFn: () => api.get<DeadLetterPage>('/dlq-list', { tenant_id: tenant.id, status: 'pending', limit: 200 }),
  });
  const readiness = useQuery({ queryKey: ['readiness'], queryFn: () => fetchReadiness(config) });

  const all = usage.data?.flatMap((day) => day.items) ?? [];
  const sum = totals(all);
  const series = useMemo(() => {
    const data = usage.data ?? [];
    return {
      requests: dailySeries(data, byProviderAndModel, 'requests'),
      tokens: dailySeries(data, byProviderAndModel, 'tokens'),
      cost: dailySeries(data, byProviderAndModel, 'cost_usd_micros'),
    };
  }, [usage.data]);

  return (
    <>
      <p className='muted'>{tenant.name}, the last {overviewDays} days (UTC), by provider and model.</p>
      <section className='stats' aria-label='Totals'>
        <Stat label='Requests' value={usage.data ? formatCount(sum.requests) : '…'} testId='stat-requests' />
        <Stat label='Tokens' value={usage.data ? formatCount(sum.tokens) : '…'} testId='stat-tokens' />
        <Stat label='Cost' value={usage.data ? formatUsd(sum.cost_usd_micros) : '…'} testId='stat-cost' />
        <Stat label='Cache hits' value={usage.data ? formatCount(sum.cache_hits) : '…'} testId='stat-cache-hits' />
        <Stat
          label='Dead letters waiting'
          testId='stat-dlq'
          value={deadLetters.data
            ? `${deadLetters.data.items.length}${deadLetters.data.next_cursor ? '+' : ''}`
            : deadLetters.error
            ? 'not allowed'
            : '…'}
        />
        <Stat
          label='Readiness'
          testId='stat-readiness'
          value={readiness.data
            ? (readiness.data.status === 'ready' ? 'GO' : 'NO-GO')
            : readiness.error
            ? 'unknown'
            : '…'}
        />
      </section>
      {deadLetters.error && <ErrorNote error={deadLetters.error} what='read the dead-letter queue' />}
      {readiness.error && <ErrorNote error={readiness.error} what='read readiness' />}
      <p className='note'>
        Rejections (402 over budget, 429 over rate) are counted per function instance in <code>/metrics</code>{' '}
        (Prometheus, <code>switchyard_budget_rejections_total</code>,{' '}
        <code>switchyard_rate_limit_rejections_total</code>), not per tenant: see the Grafana dashboard in{' '}
        <code>ops/</code>.
      </p>
      {usage.isPending ? <Loading what='usage' /> : (
        <QueryState query={usage} what='usage'>
          {() => (
            <div className='charts'>
              <StackedBars title='Requests per day' series={series.requests} format={formatCount} />
              <StackedBars title='Tokens per day' series={series.tokens} format={formatCount} />
              <StackedBars title='Cost per day' series={series.cost} format={formatUsd} />
            </div>
          )}
        </QueryState>
      )}
    </>
  );
}

function Stat({ label, value, testId }: { label: string; value: string; testId: string }) {
  return (
    <div className='stat'>
      <span className='stat-label'>{label}</span>
      <span className='stat-value' data-testid={testId}>{value}</span>
    </div>
  );
}
