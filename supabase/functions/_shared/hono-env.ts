import type { RequestIdVariables } from 'hono/request-id';
import type { Caller } from './auth/caller.ts';
import type { ErrorFormat } from './errors.ts';

/** Typed context variables shared by every function (`c.get('caller')`). */
export type AppEnv = {
  Variables: RequestIdVariables & {
    caller: Caller;
    /** The error shape of this route, when it differs from its function's (answerErrorsAs). */
    errorFormat?: ErrorFormat;
  };
};
