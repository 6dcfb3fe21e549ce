import type { ReactNode } from 'react';
import { ApiError } from '../api.ts';

/** What the endpoint said, and what to do about it. */
export function ErrorNote({ error, what }: { error: unknown; what: string }) {
  const message = error instanceof Error ? error.message : String(error);
  const status = error instanceof ApiError ? error.status : undefined;
  const hint = status === 401
    ? 'Sign in again.'
    : status === 403
    ? 'Your role does not allow this; ask an admin of the tenant, or use an operator session.'
    : status === 400 || status === 409
    ? 'Correct the input and try again.'
    : status === 0
    ? ''
    : 'Try again; if it persists, check the functions logs with the request id.';
  return (
    <div className='error' role='alert'>
      <strong>Could not {what}:</strong> <span className='error-message'>{message}</span>
      {hint && <span className='hint'>{` ${hint}`}</span>}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return <p className='loading' role='status' aria-live='polite'>Loading {what}…</p>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className='empty'>{children}</p>;
}

/** Loading, error or the content of a query. */
export function QueryState<T>(
  { query, what, children }: {
    query: { isPending: boolean; error: unknown; data: T | undefined };
    what: string;
    children: (data: T) => ReactNode;
  },
) {
  if (query.isPending) return <Loading what={what} />;
  if (query.error) return <ErrorNote error={query.error} what={`load ${what}`} />;
  return <>{children(query.data as T)}</>;
}
