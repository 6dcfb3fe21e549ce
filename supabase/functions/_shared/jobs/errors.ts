import { sqlState } from '../db.ts';

/**
 * SQLSTATEs the job functions raise (see the jobs migrations), and what each
 * means to a caller.
 */
export const jobSqlStates = {
  illegalTransition: 'SYJ01',
  leaseNotHeld: 'SYJ02',
  jobNotFound: 'SYJ03',
  unknownKind: 'SYJ04',
  notCancellable: 'SYJ05',
  eventsAppendOnly: 'SYJ06',
  idempotencyKeyReused: 'SYJ07',
  invalidArgument: '22023',
  /** insufficient_privilege: a user is not an operator or admin of the tenant (requeue_dead_letters). */
  notOperator: '42501',
} as const;

/** The job was reaped, re-claimed, finished or cancelled: this worker's token no longer holds it. */
export function isLeaseLost(error: unknown): boolean {
  return sqlState(error) === jobSqlStates.leaseNotHeld;
}

export function isJobNotFound(error: unknown): boolean {
  return sqlState(error) === jobSqlStates.jobNotFound;
}

/** The database's message for a job-function error, or a generic one. */
export function databaseMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
