/**
 * What a handler can say instead of returning a result. Throw one of these
 * from a handler; any other error is a retryable failure.
 */

/** Try again later: retry_scheduled (after `retryInSeconds`, else the kind's backoff) while attempts remain. */
export class RetryJob extends Error {
  readonly retryInSeconds?: number;
  constructor(message = 'handler asked for a retry', options: { retryInSeconds?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'RetryJob';
    this.retryInSeconds = options.retryInSeconds;
  }
}

/** Do not run this job: cancelled, no retry, no dead letter. */
export class SkipJob extends Error {
  constructor(reason = 'handler skipped the job') {
    super(reason);
    this.name = 'SkipJob';
  }
}

/** Give up now: straight to the dead-letter queue, whatever attempts remain. */
export class AbortJob extends Error {
  constructor(message = 'handler aborted the job', options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AbortJob';
  }
}

/** The reason a job's AbortSignal fires when its timeout runs out. */
export class JobTimeoutError extends Error {
  constructor(readonly timeoutSeconds: number) {
    super(`job timed out after ${timeoutSeconds}s`);
    this.name = 'JobTimeoutError';
  }
}

/** The reason a job's AbortSignal fires when its lease was lost (reaped, re-claimed). */
export class JobLeaseLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobLeaseLostError';
  }
}

/** The reason a job's AbortSignal fires when the worker stops before the job finished. */
export class WorkerShutdownError extends Error {
  constructor() {
    super('worker shut down before the job finished');
    this.name = 'WorkerShutdownError';
  }
}
