import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.tsx';
import { loadConfig } from './config.ts';
import { sessionFromFragment } from './session.ts';
import './styles.css';

// A sign-in link carries its token in the fragment (never sent to a server): take it, then drop it from the address bar.
const linked = sessionFromFragment(location.hash);
if (linked) history.replaceState(null, '', `${location.pathname}${location.search}#/overview`);

const queryClient = new QueryClient({
  defaultOptions: {
    queries: { retry: false, refetchOnWindowFocus: false, staleTime: 10_000 },
    mutations: { retry: false },
  },
});

void loadConfig().then((config) =>
  createRoot(document.getElementById('root')!).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <App config={config} initialSession={linked} />
      </QueryClientProvider>
    </StrictMode>,
  )
);
