import { useQuery } from '@tanstack/react-query';
import { Empty, QueryState } from '../components/States.tsx';
import { useConsole } from '../context.ts';

interface ReputationRow {
  tenant_id: string | null;
  scope: 'global' | 'tenant';
  domain: string;
  provider: string;
  upstream_model: string;
  score: number;
  sample_count: number;
  signal_requests: number;
  signal_failures: number;
  updated_at: string;
}

/** Model reputation as quality routing reads it. Policies, targets and provider health have no read endpoint yet. */
export function RoutingPage() {
  const { api, tenant } = useConsole();
  const reputation = useQuery({
    queryKey: ['reputation', tenant.id],
    queryFn: () => api.get<{ items: ReputationRow[] }>('/ops/reputation', { tenant_id: tenant.id }),
  });
  return (
    <>
      <p className='note'>
        Model reputation (global and this tenant's) as the <code>quality</code> strategy and <code>min_reputation</code>
        {' '}
        read it. Routing policies, their targets and weights, and provider health are not shown yet: no endpoint reads
        them (they are in <code>routing_policies</code> and <code>provider_health</code>).
      </p>
      <QueryState query={reputation} what='model reputation'>
        {(data) =>
          data.items.length === 0
            ? <Empty>No reputation yet: it grows from feedback and request outcomes.</Empty>
            : (
              <div className='table-scroll'>
                <table>
                  <thead>
                    <tr>
                      <th scope='col'>Scope</th>
                      <th scope='col'>Domain</th>
                      <th scope='col'>Provider / model</th>
                      <th scope='col'>Score</th>
                      <th scope='col'>Samples</th>
                      <th scope='col'>Failures / requests</th>
                      <th scope='col'>Updated</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.items.map((row) => (
                      <tr key={`${row.scope}-${row.domain}-${row.provider}-${row.upstream_model}`}>
                        <td>{row.scope}</td>
                        <td>{row.domain || 'any'}</td>
                        <td>{row.provider} / {row.upstream_model}</td>
                        <td>
                          <meter min={0} max={1} value={row.score} aria-label='score' /> {row.score.toFixed(2)}
                        </td>
                        <td>{row.sample_count.toFixed(1)}</td>
                        <td>{Number(row.signal_failures).toFixed(1)} / {Number(row.signal_requests).toFixed(1)}</td>
                        <td>{new Date(row.updated_at).toLocaleString()}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
      </QueryState>
    </>
  );
}
