import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Empty, ErrorNote, QueryState } from '../components/States.tsx';
import { useConsole } from '../context.ts';

interface TenantDetail {
  id: string;
  name: string;
  slug: string;
  created_at: string;
  members: { user_id: string; role: string; created_at: string }[];
}

export interface ApiKeyItem {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

interface CreatedKey extends ApiKeyItem {
  key: string;
}

export function useApiKeys() {
  const { api, tenant } = useConsole();
  return useQuery({
    queryKey: ['api-keys', tenant.id],
    queryFn: () => api.get<{ items: ApiKeyItem[] }>(`/ops/tenants/${tenant.id}/api-keys`),
  });
}

export function TenantPage() {
  const { api, tenant } = useConsole();
  const queryClient = useQueryClient();
  const detail = useQuery({
    queryKey: ['tenant', tenant.id],
    queryFn: () => api.get<TenantDetail>(`/ops/tenants/${tenant.id}`),
  });
  const keys = useApiKeys();
  const [name, setName] = useState('');
  const [created, setCreated] = useState<CreatedKey>();
  const [copied, setCopied] = useState(false);
  const [confirming, setConfirming] = useState<string>();
  const [member, setMember] = useState({ userId: '', role: 'member' });

  const create = useMutation({
    mutationFn: (keyName: string) =>
      api.send<CreatedKey>('POST', `/ops/tenants/${tenant.id}/api-keys`, { name: keyName }),
    onSuccess: async (key) => {
      setCreated(key);
      setCopied(false);
      setName('');
      await queryClient.invalidateQueries({ queryKey: ['api-keys', tenant.id] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.send<{ id: string }>('DELETE', `/ops/api-keys/${id}`),
    onSuccess: async () => {
      setConfirming(undefined);
      await queryClient.invalidateQueries({ queryKey: ['api-keys', tenant.id] });
    },
  });
  const addMember = useMutation({
    mutationFn: () =>
      api.send('POST', `/ops/tenants/${tenant.id}/members`, { user_id: member.userId.trim(), role: member.role }),
    onSuccess: async () => {
      setMember({ userId: '', role: 'member' });
      await queryClient.invalidateQueries({ queryKey: ['tenant', tenant.id] });
    },
  });

  function submitKey(event: FormEvent) {
    event.preventDefault();
    setCreated(undefined);
    create.mutate(name.trim());
  }

  async function copy(key: string) {
    await navigator.clipboard.writeText(key);
    setCopied(true);
  }

  return (
    <>
      <QueryState query={detail} what='the tenant'>
        {(data) => (
          <section aria-labelledby='members-title'>
            <p>
              <strong>{data.name}</strong> <code>{data.slug}</code> <span className='muted'>({data.id})</span>
            </p>
            <h2 id='members-title'>Members</h2>
            {data.members.length === 0 ? <Empty>No members yet.</Empty> : (
              <table>
                <thead>
                  <tr>
                    <th scope='col'>User</th>
                    <th scope='col'>Role</th>
                    <th scope='col'>Since</th>
                  </tr>
                </thead>
                <tbody>
                  {data.members.map((row) => (
                    <tr key={row.user_id}>
                      <td>
                        <code>{row.user_id}</code>
                      </td>
                      <td>{row.role}</td>
                      <td>{new Date(row.created_at).toLocaleDateString()}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <form
              className='inline-form'
              onSubmit={(event) => {
                event.preventDefault();
                addMember.mutate();
              }}
              aria-label='Add a member'
            >
              <label>
                User id
                <input
                  required
                  value={member.userId}
                  onChange={(e) => setMember({ ...member, userId: e.target.value })}
                />
              </label>
              <label>
                Role
                <select value={member.role} onChange={(e) => setMember({ ...member, role: e.target.value })}>
                  <option value='member'>member</option>
                  <option value='operator'>operator</option>
                  <option value='admin'>admin</option>
                </select>
              </label>
              <button type='submit' disabled={addMember.isPending}>Add member</button>
            </form>
            {addMember.error && <ErrorNote error={addMember.error} what='add the member' />}
          </section>
        )}
      </QueryState>

      <section aria-labelledby='keys-title'>
        <h2 id='keys-title'>API keys</h2>
        <form className='inline-form' onSubmit={submitKey} aria-label='Create an API key'>
          <label>
            Key name
            <input
              required
              maxLength={200}
              value={name}
              onChange={(e) => setName(e.target.value)}
              placeholder='backend'
            />
          </label>
          <button type='submit' disabled={create.isPending}>Create key</button>
        </form>
        {create.error && <ErrorNote error={create.error} what='create the key' />}
        {created && (
          <div className='secret-once' role='status' data-testid='created-key'>
            <p>
              <strong>Copy this key now: it is shown once and cannot be shown again.</strong>
            </p>
            <code data-testid='created-key-value'>{created.key}</code>{' '}
            <button type='button' onClick={() => void copy(created.key)}>{copied ? 'Copied' : 'Copy'}</button>{' '}
            <button type='button' onClick={() => setCreated(undefined)}>I have stored it</button>
          </div>
        )}
        <QueryState query={keys} what='API keys'>
          {(data) =>
            data.items.length === 0 ? <Empty>No API keys yet.</Empty> : (
              <table>
                <thead>
                  <tr>
                    <th scope='col'>Name</th>
                    <th scope='col'>Prefix</th>
                    <th scope='col'>Created</th>
                    <th scope='col'>Status</th>
                    <th scope='col'>Action</th>
                  </tr>
                </thead>
                <tbody>
                  {data.items.map((key) => (
                    <tr key={key.id} data-testid={`api-key-${key.name}`}>
                      <td>{key.name}</td>
                      <td>
                        <code>{key.prefix}…</code>
                      </td>
                      <td>{new Date(key.created_at).toLocaleString()}</td>
                      <td>{key.revoked_at ? `revoked ${new Date(key.revoked_at).toLocaleString()}` : 'active'}</td>
                      <td>
                        {!key.revoked_at && confirming !== key.id && (
                          <button
                            type='button'
                            onClick={() => setConfirming(key.id)}
                          >
                            Revoke
                          </button>
                        )}
                        {confirming === key.id && (
                          <span className='confirm'>
                            Revoke {key.name}? Requests with it fail at once.{' '}
                            <button type='button' className='danger' onClick={() => revoke.mutate(key.id)}>
                              Confirm revoke
                            </button>{' '}
                            <button type='button' onClick={() => setConfirming(undefined)}>Cancel</button>
                          </span>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
        </QueryState>
        {revoke.error && <ErrorNote error={revoke.error} what='revoke the key' />}
      </section>
    </>
  );
}
