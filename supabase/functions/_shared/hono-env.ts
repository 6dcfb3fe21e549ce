import type { RequestIdVariables } from 'hono/request-id';
import type { Caller } from './auth/caller.ts';

/** Typed context variables shared by every function (`c.get('caller')`). */
export type AppEnv = {
  Variables: RequestIdVariables & {
    caller: Caller;
  };
};
