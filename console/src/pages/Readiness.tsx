import { useQuery } from '@tanstack/react-query';
import { fetchReadiness } from '../api.ts';
import { QueryState } from '../components/States.tsx';
import type { ConsoleConfig } from '../config.ts';

/** GET /readiness/ready: every check and the go/no-go verdict, refreshed every 30 s. */
export function ReadinessPage({ config }: { config: ConsoleConfig }) {
  const readiness = useQuery({
    queryKey: ['readiness'],
    queryFn: () => fetchReadiness(config),
    refetchInterval: 30_000,
  });
  return (
    <QueryState query={readiness} what='readiness'>
      {(report) => (
        <>
          <p className={`verdict ${report.status === 'ready' ? 'go' : 'no-go'}`} data-testid='readiness-verdict'>
            {report.status === 'ready' ? 'GO: every required check passes' : 'NO-GO: a check fails'}
          </p>
          <div className='table-scroll'>
            <table>
              <thead>
                <tr>
                  <th scope='col'>Check</th>
                  <th scope='col'>Status</th>
                  <th scope='col'>Detail</th>
                  <th scope='col'>ms</th>
                </tr>
              </thead>
              <tbody>
                {report.checks.map((check) => (
                  <tr key={check.name} className={`check-${check.status}`}>
                    <th scope='row'>{check.name}</th>
                    <td>{check.status}{check.optional ? ' (optional)' : ''}</td>
                    <td className='wrap'>{check.detail}</td>
                    <td>{check.duration_ms ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </QueryState>
  );
}
