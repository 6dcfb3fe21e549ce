import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useMemo, useState } from 'react';
import { Empty, QueryState } from '../components/States.tsx';
import { useConsole } from '../context.ts';
import { formatCount, formatUsd, groupLabel, lastUtcDays, toCsv, totals, type UsageGroup } from '../lib/usage.ts';
import type { UsageResponse } from '../queries.ts';
import { useApiKeys } from './Tenant.tsx';

const groupChoices: { value: UsageGroup; label: string }[] = [
  { value: 'provider', label: 'provider' },
  { value: 'model', label: 'model alias' },
  { value: 'upstream_model', label: 'upstream model' },
  { value: 'key', label: 'API key' },
];

interface Range {
  groups: UsageGroup[];
  from: string;
  to: string;
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  URL.revokeObjectURL(url);
}

export function UsagePage() {
  const { api, tenant } = useConsole();
  const keys = useApiKeys();
  const initial = useMemo<Range>(() => {
    const days = lastUtcDays(30, new Date());
    return { groups: ['provider', 'model'], from: days[0].day, to: days.at(-1)!.day };
  }, []);
  const [draft, setDraft] = useState<Range>(initial);
  const [range, setRange] = useState<Range>(initial);
  const usage = useQuery({
    queryKey: ['usage', tenant.id, range],
    queryFn: () =>
      api.get<UsageResponse>('/ops/usage', {
        tenant_id: tenant.id,
        group_by: range.groups.join(','),
        from: range.from ? `${range.from}T00:00:00.000Z` : undefined,
        to: range.to ? `${range.to}T23:59:59.999Z` : undefined,
      }),
  });
  const keyName = (id: string | null | undefined) =>
    id ? keys.data?.items.find((key) => key.id === id)?.name ?? id : id;
  const rows = (usage.data?.items ?? []).map((row) => ({ ...row, key: keyName(row.key) }));

  function apply(event: FormEvent) {
    event.preventDefault();
    setRange(draft);
  }

  function exportCsv() {
    const columns = [
      ...range.groups,
      'requests',
      'prompt_tokens',
      'completion_tokens',
      'cost_usd_micros',
      'cache_hits',
    ] as const;
    download(`usage-${tenant.slug}-${range.from}-${range.to}.csv`, toCsv(rows, columns));
  }

  const sum = totals(rows);
  return (
    <>
      <form className='filters' onSubmit={apply} aria-label='Usage query'>
        <fieldset>
          <legend>Group by</legend>
          {groupChoices.map((choice) => (
            <label key={choice.value}>
              <input
                type='checkbox'
                checked={draft.groups.includes(choice.value)}
                onChange={(e) =>
                  setDraft({
                    ...draft,
                    groups: e.target.checked
                      ? groupChoices.map((c) => c.value).filter((v) => v === choice.value || draft.groups.includes(v))
                      : draft.groups.filter((group) => group !== choice.value),
                  })}
              />
              {choice.label}
            </label>
          ))}
        </fieldset>
        <label>
          From <input type='date' value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
        </label>
        <label>
          To <input type='date' value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
        </label>
        <button type='submit'>Show</button>
        <button type='button' onClick={exportCsv} disabled={rows.length === 0}>Export CSV</button>
      </form>
      <QueryState query={usage} what='usage'>
        {() =>
          rows.length === 0 ? <Empty>No usage in this range.</Empty> : (
            <div className='table-scroll'>
              <table data-testid='usage-table'>
                <caption className='visually-hidden'>Usage grouped by {range.groups.join(', ') || 'nothing'}</caption>
                <thead>
                  <tr>
                    <th scope='col'>{range.groups.join(' / ') || 'all'}</th>
                    <th scope='col'>Requests</th>
                    <th scope='col'>Prompt tokens</th>
                    <th scope='col'>Completion tokens</th>
                    <th scope='col'>Cost</th>
                    <th scope='col'>Cache hits</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((row) => {
                    const label = groupLabel(row, range.groups);
                    return (
                      <tr key={label}>
                        <th scope='row'>{label}</th>
                        <td>{formatCount(row.requests)}</td>
                        <td>{formatCount(row.prompt_tokens)}</td>
                        <td>{formatCount(row.completion_tokens)}</td>
                        <td>{formatUsd(row.cost_usd_micros)}</td>
                        <td>{formatCount(row.cache_hits)}</td>
                      </tr>
                    );
                  })}
                </tbody>
                <tfoot>
                  <tr>
                    <th scope='row'>total</th>
                    <td>{formatCount(sum.requests)}</td>
                    <td colSpan={2}>{formatCount(sum.tokens)} tokens</td>
                    <td>{formatUsd(sum.cost_usd_micros)}</td>
                    <td>{formatCount(sum.cache_hits)}</td>
                  </tr>
                </tfoot>
              </table>
            </div>
          )}
      </QueryState>
    </>
  );
}
