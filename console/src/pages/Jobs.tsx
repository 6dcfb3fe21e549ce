import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Empty, ErrorNote, QueryState } from '../components/States.tsx';
import { useConsole } from '../context.ts';
import type { RetryDeadLettersResponse } from '../../../supabase/functions/dlq-retry/routes/retry-dead-letters.ts';
import type { GetJobResponse } from '../../../supabase/functions/jobs/routes/get-job.ts';
import type { DeadLetterPage } from '../queries.ts';

const pageSize = 20;

interface Filters {
  kind: string;
  error: string;
  status: 'pending' | 'requeued' | 'all';
  since: string;
  until: string;
}

type RetryAnswer = RetryDeadLettersResponse;

const dateToIso = (value: string, endOfDay: boolean) =>
  value ? new Date(`${value}T${endOfDay ? '23:59:59.999' : '00:00:00.000'}Z`).toISOString() : undefined;

export function JobsPage() {
  const { api, tenant } = useConsole();
  const queryClient = useQueryClient();
  const [draft, setDraft] = useState<Filters>({ kind: '', error: '', status: 'pending', since: '', until: '' });
  const [filters, setFilters] = useState<Filters>(draft);
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [jobId, setJobId] = useState<string>();
  const [reason, setReason] = useState('');
  const [preview, setPreview] = useState<RetryAnswer>();
  const [done, setDone] = useState<RetryAnswer>();
  const cursor = cursors.at(-1);

  const list = useQuery({
    queryKey: ['dlq', tenant.id, filters, cursor],
    queryFn: () =>
      api.get<DeadLetterPage>('/dlq-list', {
        tenant_id: tenant.id,
        kind: filters.kind.trim() || undefined,
        error: filters.error.trim() || undefined,
        status: filters.status,
        since: dateToIso(filters.since, false),
        until: dateToIso(filters.until, true),
        limit: pageSize,
        cursor,
      }),
  });

  const job = useQuery({
    queryKey: ['job', jobId],
    queryFn: () => api.get<GetJobResponse>(`/jobs/${jobId}`),
    enabled: jobId !== undefined,
  });

  const retry = useMutation({
    mutationFn: (dryRun: boolean) =>
      api.send<RetryAnswer>(
        'POST',
        '/dlq-retry',
        { ids: [...selected], reason: reason.trim(), dry_run: dryRun, max: Math.max(selected.size, 1) },
        { 'x-tenant-id': tenant.id, ...(dryRun ? {} : { 'idempotency-key': crypto.randomUUID() }) },
      ),
    onSuccess: async (answer) => {
      if (answer.dry_run) {
        setPreview(answer);
        return;
      }
      setDone(answer);
      setPreview(undefined);
      setSelected(new Set());
      setReason('');
      await queryClient.invalidateQueries({ queryKey: ['dlq'] });
      await queryClient.invalidateQueries({ queryKey: ['dlq-depth'] });
      await queryClient.invalidateQueries({ queryKey: ['job'] });
    },
  });

  function applyFilters(event: FormEvent) {
    event.preventDefault();
    setFilters(draft);
    setCursors([undefined]);
    setSelected(new Set());
    setPreview(undefined);
  }

  /** dlq-retry takes job ids (a requeued job keeps its id). */
  function toggle(id: string) {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
    setPreview(undefined);
    setDone(undefined);
  }

  return (
    <>
      <form className='filters' onSubmit={applyFilters} aria-label='Dead-letter filters'>
        <label>
          Kind <input value={draft.kind} onChange={(e) => setDraft({ ...draft, kind: e.target.value })} />
        </label>
        <label>
          Error contains <input value={draft.error} onChange={(e) => setDraft({ ...draft, error: e.target.value })} />
        </label>
        <label>
          Status
          <select
            value={draft.status}
            onChange={(e) => setDraft({ ...draft, status: e.target.value as Filters['status'] })}
          >
            <option value='pending'>waiting</option>
            <option value='requeued'>requeued</option>
            <option value='all'>all</option>
          </select>
        </label>
        <label>
          Failed from{' '}
          <input type='date' value={draft.since} onChange={(e) => setDraft({ ...draft, since: e.target.value })} />
        </label>
        <label>
          to <input type='date' value={draft.until} onChange={(e) => setDraft({ ...draft, until: e.target.value })} />
        </label>
        <button type='submit'>Apply</button>
      </form>

      <QueryState query={list} what='dead letters'>
        {(page) =>
          page.items.length === 0
            ? <Empty>No dead letters match. Nothing is waiting for a retry.</Empty>
            : (
              <div className='table-scroll'>
                <table className='dlq-table'>
                  <caption className='visually-hidden'>Dead letters, newest first</caption>
                  <thead>
                    <tr>
                      <th scope='col'>Select</th>
                      <th scope='col'>Job</th>
                      <th scope='col'>Kind</th>
                      <th scope='col'>Last error</th>
                      <th scope='col'>Attempts</th>
                      <th scope='col'>Failed at</th>
                      <th scope='col'>Requeued</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.items.map((item) => (
                      <tr key={item.id} data-testid={`dead-letter-${item.job_id}`}>
                        <td>
                          <input
                            type='checkbox'
                            aria-label={`select job ${item.job_id}`}
                            checked={selected.has(item.job_id)}
                            disabled={item.requeued_at !== null}
                            onChange={() => toggle(item.job_id)}
                          />
                        </td>
                        <td>
                          <button type='button' className='link' onClick={() => setJobId(item.job_id)}>
                            {item.job_id.slice(0, 8)}
                          </button>
                        </td>
                        <td>{item.kind}</td>
                        <td className='wrap'>{item.last_error}</td>
                        <td>{item.attempts}</td>
                        <td>{new Date(item.failed_at).toLocaleString()}</td>
                        <td>{item.requeued_at ? `${item.requeued_by ?? ''}: ${item.requeue_reason ?? ''}` : '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                <div className='pager'>
                  <button
                    type='button'
                    disabled={cursors.length === 1}
                    onClick={() => setCursors(cursors.slice(0, -1))}
                  >
                    Previous page
                  </button>
                  <button
                    type='button'
                    disabled={!page.next_cursor}
                    onClick={() => page.next_cursor && setCursors([...cursors, page.next_cursor])}
                  >
                    Next page
                  </button>
                </div>
              </div>
            )}
      </QueryState>

      <section className='panel' aria-labelledby='retry-title'>
        <h2 id='retry-title'>Retry selected ({selected.size})</h2>
        <label>
          Reason (kept in the job's events)
          <input value={reason} onChange={(e) => setReason(e.target.value)} placeholder='upstream fixed, replaying' />
        </label>
        <div className='actions'>
          <button
            type='button'
            disabled={selected.size === 0 || retry.isPending}
            onClick={() => retry.mutate(true)}
          >
            Preview (dry run)
          </button>
          <button
            type='button'
            className='primary'
            disabled={!preview || preview.requeued.length === 0 || retry.isPending}
            onClick={() => retry.mutate(false)}
          >
            Requeue {preview ? preview.requeued.length : ''}
          </button>
        </div>
        {retry.error && <ErrorNote error={retry.error} what='retry' />}
        {preview && (
          <p role='status' data-testid='retry-preview'>
            Dry run: {preview.requeued.length} would be requeued
            {preview.skipped.length > 0 &&
              `, ${preview.skipped.length} skipped (${preview.skipped.map((s) => s.reason).join(', ')})`}.
          </p>
        )}
        {done && (
          <p role='status' data-testid='retry-done'>
            Requeued {done.requeued.length}
            {done.skipped.length > 0 && `, skipped ${done.skipped.length}`}.
          </p>
        )}
      </section>

      {jobId && (
        <section className='panel' aria-labelledby='timeline-title'>
          <h2 id='timeline-title'>Job {jobId}</h2>
          <QueryState query={job} what='the job'>
            {(data) => (
              <>
                <p>
                  {data.kind}: <strong data-testid='job-status'>{data.status}</strong>, attempts {data.attempts} of{' '}
                  {data.max_attempts}
                </p>
                <ol className='timeline' data-testid='job-timeline'>
                  {data.events.map((event, index) => (
                    <li key={index}>
                      <time dateTime={event.at}>{new Date(event.at).toLocaleString()}</time>{' '}
                      <strong>{event.event}</strong> {event.from_status ?? '∅'} → {event.to_status}
                      {event.worker && ` by ${event.worker}`}
                      {event.details !== null && Object.keys(event.details as object).length > 0 && (
                        <code className='details'>{JSON.stringify(event.details)}</code>
                      )}
                    </li>
                  ))}
                </ol>
              </>
            )}
          </QueryState>
          <button type='button' onClick={() => setJobId(undefined)}>Close</button>
        </section>
      )}
    </>
  );
}
