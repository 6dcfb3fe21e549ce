import { useQuery, useQueryClient } from '@tanstack/react-query';
import { type ReactNode, useEffect, useMemo, useState } from 'react';
import { createApiClient } from './api.ts';
import { ErrorNote, Loading } from './components/States.tsx';
import type { ConsoleConfig } from './config.ts';
import { ConsoleContext, type TenantItem } from './context.ts';
import { BudgetsPage } from './pages/Budgets.tsx';
import { JobsPage } from './pages/Jobs.tsx';
import { OverviewPage } from './pages/Overview.tsx';
import { ReadinessPage } from './pages/Readiness.tsx';
import { RoutingPage } from './pages/Routing.tsx';
import { SignIn } from './pages/SignIn.tsx';
import { TenantPage } from './pages/Tenant.tsx';
import { UsagePage } from './pages/Usage.tsx';
import { VaultPage } from './pages/Vault.tsx';
import { type Session, sessionLabel, sessionToken } from './session.ts';

const pages = [
  { path: 'overview', title: 'Overview', render: (_config: ConsoleConfig) => <OverviewPage /> },
  { path: 'usage', title: 'Usage', render: (_config: ConsoleConfig) => <UsagePage /> },
  { path: 'jobs', title: 'Jobs and DLQ', render: (_config: ConsoleConfig) => <JobsPage /> },
  { path: 'tenant', title: 'Tenant and API keys', render: (_config: ConsoleConfig) => <TenantPage /> },
  { path: 'budgets', title: 'Budgets', render: (_config: ConsoleConfig) => <BudgetsPage /> },
  { path: 'vault', title: 'Key vault', render: (_config: ConsoleConfig) => <VaultPage /> },
  { path: 'routing', title: 'Routing', render: (_config: ConsoleConfig) => <RoutingPage /> },
  { path: 'readiness', title: 'Readiness', render: (config: ConsoleConfig) => <ReadinessPage config={config} /> },
] as const;

function currentPath(): string {
  const path = location.hash.replace(/^#\/?/, '');
  return pages.some((page) => page.path === path) ? path : 'overview';
}

function useHashPath(): string {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const update = () => setPath(currentPath());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return path;
}

export function App({ config, initialSession }: { config?: ConsoleConfig; initialSession?: Session }) {
  const [session, setSession] = useState<Session | undefined>(initialSession);
  const queryClient = useQueryClient();
  if (!config) {
    return (
      <main className='centered'>
        <h1>Switchyard console</h1>
        <div className='error' role='alert'>
          This console does not know which project to talk to. Serve a <code>config.json</code> beside index.html{' '}
          (<code>
            {'{"functionsUrl": "https://<ref>.supabase.co/functions/v1", "anonKey": "…", "supabaseUrl": "https://<ref>.supabase.co"}'}
          </code>) or build with <code>SWITCHYARD_CONSOLE_FUNCTIONS_URL</code> and{' '}
          <code>SWITCHYARD_CONSOLE_ANON_KEY</code>.
        </div>
      </main>
    );
  }
  if (!session) return <SignIn config={config} onSignedIn={setSession} />;
  const signOut = () => {
    if (session.kind === 'supabase') void session.client.auth.signOut();
    queryClient.clear();
    setSession(undefined);
  };
  return <Shell config={config} session={session} signOut={signOut} />;
}

function Shell({ config, session, signOut }: { config: ConsoleConfig; session: Session; signOut: () => void }) {
  const api = useMemo(() => createApiClient(config, () => sessionToken(session)), [config, session]);
  const path = useHashPath();
  const tenants = useQuery({
    queryKey: ['tenants'],
    queryFn: () => api.get<{ items: TenantItem[] }>('/ops/tenants', { limit: 1000 }),
  });
  const [tenantId, setTenantId] = useState<string | undefined>();
  const tenant = tenants.data?.items.find((item) => item.id === tenantId) ?? tenants.data?.items[0];
  const page = pages.find((candidate) => candidate.path === path) ?? pages[0];

  let content: ReactNode;
  if (tenants.isPending) content = <Loading what='your tenants' />;
  else if (tenants.error) content = <ErrorNote error={tenants.error} what='load your tenants' />;
  else if (!tenant && page.path !== 'readiness') {
    content = (
      <p className='empty'>
        {session.kind === 'service'
          ? 'There are no tenants yet. Create one with POST /ops/tenants (README, Quick start).'
          : 'You are not a member of any tenant. Ask an admin of a tenant to add you.'}
      </p>
    );
  } else {
    content = tenant
      ? (
        <ConsoleContext.Provider value={{ config, session, api, tenant }}>
          {page.render(config)}
        </ConsoleContext.Provider>
      )
      : <ReadinessPage config={config} />;
  }

  return (
    <div className='shell'>
      <a className='skip-link' href='#main'>Skip to content</a>
      <header className='topbar'>
        <span className='brand'>Switchyard</span>
        {tenants.data && tenants.data.items.length > 0 && (
          <label className='tenant-picker'>
            <span>Tenant</span>
            <select value={tenant?.id} onChange={(event) => setTenantId(event.target.value)} aria-label='Tenant'>
              {tenants.data.items.map((item) => (
                <option key={item.id} value={item.id}>{item.name}{item.role ? ` (${item.role})` : ''}</option>
              ))}
            </select>
          </label>
        )}
        <span className='who' data-testid='signed-in-as'>{sessionLabel(session)}</span>
        <button type='button' onClick={signOut}>Sign out</button>
      </header>
      <nav aria-label='Pages' className='nav'>
        <ul>
          {pages.map((item) => (
            <li key={item.path}>
              <a href={`#/${item.path}`} aria-current={item.path === page.path ? 'page' : undefined}>{item.title}</a>
            </li>
          ))}
        </ul>
      </nav>
      <main id='main' tabIndex={-1}>
        <h1>{page.title}</h1>
        {content}
      </main>
    </div>
  );
}
