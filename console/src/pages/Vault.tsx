import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Empty, ErrorNote, QueryState } from '../components/States.tsx';
import { useConsole } from '../context.ts';

interface KeyVersion {
  version: number;
  status: 'active' | 'grace' | 'disabled';
  last4: string;
  kek_id: string;
  created_at: string;
  grace_until: string | null;
  disabled_at: string | null;
}

interface VaultKey {
  id: string;
  tenant_id: string | null;
  provider: string;
  label: string;
  active_version: number | null;
  created_at: string;
  versions: KeyVersion[];
}

interface AuditEntry {
  id: string;
  action: string;
  version: number | null;
  actor: string;
  request_id: string | null;
  at: string;
}

const when = (value: string | null) => (value ? new Date(value).toLocaleString() : '—');

export function VaultPage() {
  const { api, tenant, session } = useConsole();
  const queryClient = useQueryClient();
  const [scope, setScope] = useState<'tenant' | 'global'>('tenant');
  const keys = useQuery({
    queryKey: ['vault', scope, tenant.id],
    queryFn: () => api.get<{ items: VaultKey[] }>('/keys', { tenant_id: scope === 'global' ? 'global' : tenant.id }),
  });
  const [adding, setAdding] = useState({ provider: '', label: 'default', secret: '' });
  const add = useMutation({
    mutationFn: (body: { provider: string; label: string; secret: string; tenant_id?: string }) =>
      api.send<VaultKey>('POST', '/keys', body),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['vault'] }),
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const body = {
      provider: adding.provider.trim(),
      label: adding.label.trim() || 'default',
      secret: adding.secret,
      ...(scope === 'tenant' ? { tenant_id: tenant.id } : {}),
    };
    // The secret leaves the page's state as soon as it is sent: it is never shown again.
    setAdding({ ...adding, secret: '' });
    add.mutate(body);
  }

  return (
    <>
      <fieldset className='segmented'>
        <legend>Keys of</legend>
        <label>
          <input type='radio' name='vault-scope' checked={scope === 'tenant'} onChange={() => setScope('tenant')} />
          {tenant.name}
        </label>
        <label>
          <input type='radio' name='vault-scope' checked={scope === 'global'} onChange={() => setScope('global')} />
          global (every tenant without its own)
        </label>
      </fieldset>
      <QueryState query={keys} what='provider keys'>
        {(data) =>
          data.items.length === 0
            ? <Empty>No provider keys here yet.</Empty>
            : data.items.map((key) => <VaultKeyCard key={key.id} vaultKey={key} />)}
      </QueryState>
      <form className='panel inline-form' onSubmit={submit} aria-label='Store a provider key'>
        <h2>Store a provider key</h2>
        <label>
          Provider
          <input
            required
            value={adding.provider}
            onChange={(e) => setAdding({ ...adding, provider: e.target.value })}
            placeholder='openai'
          />
        </label>
        <label>
          Label
          <input value={adding.label} onChange={(e) => setAdding({ ...adding, label: e.target.value })} />
        </label>
        <label>
          Secret
          <input
            type='password'
            autoComplete='off'
            required
            value={adding.secret}
            onChange={(e) => setAdding({ ...adding, secret: e.target.value })}
          />
        </label>
        <button type='submit' disabled={add.isPending}>Store encrypted</button>
        {scope === 'global' && session.kind !== 'service' && (
          <p className='muted'>
            Global keys need the service role.
          </p>
        )}
      </form>
      {add.error && <ErrorNote error={add.error} what='store the key' />}
    </>
  );
}

function VaultKeyCard({ vaultKey }: { vaultKey: VaultKey }) {
  const { api } = useConsole();
  const queryClient = useQueryClient();
  const [secret, setSecret] = useState('');
  const [grace, setGrace] = useState('900');
  const [showAudit, setShowAudit] = useState(false);
  const audit = useQuery({
    queryKey: ['vault-audit', vaultKey.id],
    queryFn: () => api.get<{ items: AuditEntry[] }>(`/keys/${vaultKey.id}/audit`, { limit: 50 }),
    enabled: showAudit,
  });
  const refresh = async () => {
    await queryClient.invalidateQueries({ queryKey: ['vault'] });
    await queryClient.invalidateQueries({ queryKey: ['vault-audit', vaultKey.id] });
  };
  const rotate = useMutation({
    mutationFn: (body: { secret: string; grace_seconds: number }) =>
      api.send('POST', `/keys/${vaultKey.id}/rotate`, body),
    onSuccess: refresh,
  });
  const disable = useMutation({
    mutationFn: ({ version, force }: { version: number; force: boolean }) =>
      api.send('POST', `/keys/${vaultKey.id}/versions/${version}/disable`, {
        force,
        reason: 'disabled from the console',
      }),
    onSuccess: refresh,
  });

  function submitRotation(event: FormEvent) {
    event.preventDefault();
    const body = { secret, grace_seconds: Number(grace) };
    setSecret('');
    rotate.mutate(body);
  }

  return (
    <article
      className='panel vault-key'
      aria-label={`${vaultKey.provider} ${vaultKey.label}`}
      data-testid={`vault-${vaultKey.id}`}
    >
      <h2>
        {vaultKey.provider} <span className='muted'>/ {vaultKey.label}</span>
      </h2>
      <p className='muted'>active version {vaultKey.active_version ?? 'none'}</p>
      <table>
        <thead>
          <tr>
            <th scope='col'>Version</th>
            <th scope='col'>Status</th>
            <th scope='col'>Last 4</th>
            <th scope='col'>Master key</th>
            <th scope='col'>Grace until</th>
            <th scope='col'>Disabled</th>
            <th scope='col'>Action</th>
          </tr>
        </thead>
        <tbody>
          {vaultKey.versions.map((version) => (
            <tr key={version.version}>
              <td>{version.version}</td>
              <td>{version.status}</td>
              <td>
                <code>…{version.last4}</code>
              </td>
              <td>{version.kek_id}</td>
              <td>{when(version.grace_until)}</td>
              <td>{when(version.disabled_at)}</td>
              <td>
                {version.status !== 'disabled' && (
                  <button
                    type='button'
                    onClick={() => disable.mutate({ version: version.version, force: version.status === 'active' })}
                  >
                    Disable v{version.version}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {disable.error && <ErrorNote error={disable.error} what='disable the version' />}
      <form
        className='inline-form'
        onSubmit={submitRotation}
        aria-label={`Rotate ${vaultKey.provider} ${vaultKey.label}`}
      >
        <label>
          New secret
          <input
            type='password'
            autoComplete='off'
            required
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
          />
        </label>
        <label>
          Grace for the old version (seconds)
          <input inputMode='numeric' pattern='\d+' value={grace} onChange={(e) => setGrace(e.target.value)} />
        </label>
        <button type='submit' disabled={rotate.isPending}>Rotate</button>
      </form>
      {rotate.error && <ErrorNote error={rotate.error} what='rotate' />}
      <button type='button' aria-expanded={showAudit} onClick={() => setShowAudit(!showAudit)}>
        {showAudit ? 'Hide audit log' : 'Show audit log'}
      </button>
      {showAudit && (
        <QueryState query={audit} what='the audit log'>
          {(data) => (
            <ol className='timeline' data-testid={`audit-${vaultKey.id}`}>
              {data.items.map((entry) => (
                <li key={entry.id}>
                  <time dateTime={entry.at}>{when(entry.at)}</time> <strong>{entry.action}</strong>
                  {entry.version !== null && ` v${entry.version}`} by {entry.actor}
                </li>
              ))}
            </ol>
          )}
        </QueryState>
      )}
    </article>
  );
}
