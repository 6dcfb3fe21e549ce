import { type FormEvent, useState } from 'react';
import type { ConsoleConfig } from '../config.ts';
import { serviceSession, type Session } from '../session.ts';

/**
 * Supabase Auth (email and password) where the project has it; a pasted
 * service key for a break-glass session, in memory only; locally, the link
 * `npm start` prints signs in without this page.
 */
export function SignIn({ config, onSignedIn }: { config: ConsoleConfig; onSignedIn: (session: Session) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [serviceKey, setServiceKey] = useState('');
  const [authError, setAuthError] = useState<string>();
  const [keyError, setKeyError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function signInWithPassword(event: FormEvent) {
    event.preventDefault();
    if (!config.supabaseUrl) return;
    setBusy(true);
    setAuthError(undefined);
    // supabase-js is loaded only for this sign-in: the break-glass and link sessions never need it.
    const { createClient } = await import('@supabase/supabase-js');
    const client = createClient(config.supabaseUrl, config.anonKey);
    const { data, error } = await client.auth.signInWithPassword({ email, password });
    setBusy(false);
    if (error || !data.session) {
      setAuthError(error?.message ?? 'no session came back');
      return;
    }
    setPassword('');
    onSignedIn({ kind: 'supabase', client, email: data.user?.email ?? email });
  }

  function signInWithServiceKey(event: FormEvent) {
    event.preventDefault();
    const session = serviceSession(serviceKey);
    if (typeof session === 'string') {
      setKeyError(session);
      return;
    }
    setServiceKey('');
    onSignedIn(session);
  }

  return (
    <main className='centered signin'>
      <h1>Switchyard console</h1>
      <p className='muted'>
        Project: <code>{config.functionsUrl}</code>
      </p>
      {config.supabaseUrl
        ? (
          <form onSubmit={signInWithPassword} aria-labelledby='signin-auth'>
            <h2 id='signin-auth'>Sign in</h2>
            <label>
              Email
              <input
                type='email'
                autoComplete='username'
                required
                value={email}
                onChange={(e) => setEmail(e.target.value)}
              />
            </label>
            <label>
              Password
              <input
                type='password'
                autoComplete='current-password'
                required
                value={password}
                onChange={(e) => setPassword(e.target.value)}
              />
            </label>
            {authError && <div className='error' role='alert'>Sign-in refused: {authError}</div>}
            <button type='submit' disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
          </form>
        )
        : (
          <p className='note'>
            This project has no Supabase Auth URL configured. On the local stack, open the sign-in link that{' '}
            <code>npm start</code> printed.
          </p>
        )}
      <form onSubmit={signInWithServiceKey} aria-labelledby='signin-service'>
        <h2 id='signin-service'>Break-glass: service key</h2>
        <p className='muted'>
          Full operator access to every tenant. The key stays in this tab's memory only: a reload signs you out.
        </p>
        <label>
          Service key
          <input
            type='password'
            autoComplete='off'
            spellCheck={false}
            required
            value={serviceKey}
            onChange={(e) => {
              setServiceKey(e.target.value);
              setKeyError(undefined);
            }}
          />
        </label>
        {keyError && <div className='error' role='alert'>{keyError}</div>}
        <button type='submit'>Use service key</button>
      </form>
    </main>
  );
}
