import { createContext, useContext } from 'react';
import type { ApiClient } from './api.ts';
import type { ConsoleConfig } from './config.ts';
import type { Session } from './session.ts';

export interface TenantItem {
  id: string;
  name: string;
  slug: string;
  created_at: string;
  /** The caller's role in it; null for the service role. */
  role: 'member' | 'admin' | 'operator' | null;
}

export interface ConsoleContextValue {
  config: ConsoleConfig;
  session: Session;
  api: ApiClient;
  tenant: TenantItem;
}

export const ConsoleContext = createContext<ConsoleContextValue | undefined>(undefined);

export function useConsole(): ConsoleContextValue {
  const value = useContext(ConsoleContext);
  if (!value) throw new Error('useConsole outside the signed-in console');
  return value;
}
