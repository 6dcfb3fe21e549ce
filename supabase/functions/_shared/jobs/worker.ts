import type { Database } from '../db.ts';
import type { Logger } from '../logger.ts';
import { databaseMessage, isLeaseLost } from './errors.ts';
import { AbortJob, JobLeaseLostError, JobTimeoutError, RetryJob, SkipJob, WorkerShutdownError } from './outcomes.ts';
import { type ArtifactInput, type ArtifactSettings, defaultInlineMaxBytes, storeJobArtifact } from './artifacts.ts';
import { type ClaimedJob, claimJobs, completeJobs, failJob, heartbeatJob, skipJob } from './queue.ts';

/** What a handler gets besides the job: its AbortSignal and the lease it runs under. */
export interface JobContext {
  /** Fires at the job's timeout, when its lease is lost, or when the worker stops and the drain time is up. */
  readonly signal: AbortSignal;
  readonly workerId: string;
  /** Extends the lease now (the worker also does it on its own while the handler runs). */
  heartbeat(): Promise<Date>;
  /**
   * Stores an output of this job and returns its id: inline up to the
   * worker's `artifacts.inlineMaxBytes`, above it uploaded to Storage (or,
   * without Storage, inline marked storage_not_configured); a `storagePath`
   * registers an object already in the bucket, under this job's
   * `<tenant id or system>/<job id>/` prefix (the database refuses others).
   */
  addArtifact(artifact: ArtifactInput): Promise<string>;
}

/**
 * Runs one job. Return a JSON-serialisable result to complete it; throw
 * RetryJob, SkipJob or AbortJob to say retry, skip (cancel) or abort (DLQ);
 * any other error is a retryable failure.
 */
export type JobHandler = (job: ClaimedJob, context: JobContext) => unknown;

export type WorkerEvent =
  | { type: 'claimed'; job: ClaimedJob }
  | { type: 'succeeded'; job: ClaimedJob }
  | { type: 'failed'; job: ClaimedJob; status: 'retry_scheduled' | 'failed_dlq'; error: string }
  | { type: 'skipped'; job: ClaimedJob; reason: string }
  | { type: 'lease_lost'; job: ClaimedJob; during: 'heartbeat' | 'finish'; message: string }
  | { type: 'abandoned'; job: ClaimedJob; reason: string }
  | { type: 'error'; during: 'claim' | 'heartbeat' | 'finish'; message: string; job?: ClaimedJob };

export interface WorkerStats {
  claimed: number;
  succeeded: number;
  retried: number;
  deadLettered: number;
  skipped: number;
  leaseLost: number;
  abandoned: number;
  errors: number;
}

export interface RunWorkerOptions {
  /** A `postgres` pool whose role may execute the job functions (service_role or the owner). */
  sql: Database;
  /** One handler per job kind. */
  handlers: Readonly<Record<string, JobHandler>>;
  /** Kinds to claim (default: every kind in `handlers`); each needs a handler. */
  kinds?: readonly string[];
  /** Jobs run at once (default 4). Claims ask for as many jobs as there are free slots. */
  concurrency?: number;
  /** Lease length per claim and per heartbeat (default 30 s). */
  leaseSeconds?: number;
  /** Stops claiming when it fires; running jobs drain (see drainTimeoutMs), then runWorker resolves. */
  signal?: AbortSignal;
  /** Recorded on the jobs and their events (default: worker-<random>). */
  workerId?: string;
  /** Wait between claims when the queue is empty (default 500 ms). */
  pollIntervalMs?: number;
  /** Heartbeat period while a handler runs (default: a third of the lease). */
  heartbeatIntervalMs?: number;
  /** After a job's signal fires, how long its handler gets to stop before the job is failed anyway (default 5 s). */
  abortGraceMs?: number;
  /** On shutdown, how long running jobs get before their signals fire (default 30 s). */
  drainTimeoutMs?: number;
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Every claim, outcome and error, for metrics and tests. */
  onEvent?: (event: WorkerEvent) => void;
  /**
   * Where outputs above `inlineMaxBytes` (default 64 KiB) go: artifacts the
   * handler adds, and a result that large, which is stored as the artifact
   * `result` while the job's result points to it. Without a configured
   * storage they stay inline, marked storage_not_configured.
   */
  artifacts?: ArtifactSettings;
}

type HandlerOutcome =
  | { type: 'value'; value: unknown }
  | { type: 'error'; error: unknown }
  | { type: 'abandoned' };

type WorkerLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

const silentLogger: WorkerLogger = { info() {}, warn() {}, error() {} };

/** The validated options of one runWorker call. */
interface WorkerSettings {
  readonly kinds: string[];
  readonly concurrency: number;
  readonly leaseSeconds: number;
  readonly pollIntervalMs: number;
  readonly heartbeatIntervalMs: number;
  readonly abortGraceMs: number;
  readonly drainTimeoutMs: number;
  readonly workerId: string;
  readonly artifacts: ArtifactSettings & { inlineMaxBytes: number };
}

/** What every part of one worker run shares: the pool, its settings, its counts and where it reports. */
interface WorkerRun {
  readonly sql: Database;
  readonly handlers: Readonly<Record<string, JobHandler>>;
  readonly settings: WorkerSettings;
  readonly stats: WorkerStats;
  readonly logger: WorkerLogger;
  emit(event: WorkerEvent): void;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const result = value ?? fallback;
  if (!Number.isFinite(result) || result <= 0) throw new Error(`runWorker: ${name} must be a positive number`);
  return result;
}

const byteLength = (text: string) => new TextEncoder().encode(text).length;

function errorText(error: unknown): string {
  if (error instanceof Error) return (error.name && error.name !== 'Error' ? `${error.name}: ` : '') + error.message;
  return String(error);
}

const backoff = (attempt: number) => new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));

/**
 * Claims jobs of the given kinds in batches (as many as there are free
 * slots), runs their handlers with a heartbeat and an AbortSignal that fires
 * at each job's timeout, then completes, fails (retryable or not) or skips
 * each one. Resolves with its counts once `signal` fired and running jobs
 * drained. Works on Node and Deno.
 */
export async function runWorker(options: RunWorkerOptions): Promise<WorkerStats> {
  const run = startRun(options);
  const { signal } = options;
  const { concurrency, pollIntervalMs } = run.settings;
  const sleeper = wakeableSleep(signal);
  const completions = new CompletionQueue(run);
  const running = new Set<Promise<void>>();
  const jobControllers = new Set<AbortController>();

  let claimFailures = 0;
  while (!signal?.aborted) {
    const free = concurrency - running.size;
    if (free <= 0) {
      await sleeper.sleep(pollIntervalMs);
      continue;
    }
    const jobs = await claim(run, free);
    if (jobs === undefined) {
      claimFailures++;
      await sleeper.sleep(Math.min(pollIntervalMs * 2 ** claimFailures, 30_000));
      continue;
    }
    claimFailures = 0;
    for (const job of jobs) {
      const task: Promise<void> = runJob(run, job, jobControllers, completions)
        .catch((error: unknown) => {
          run.stats.errors++;
          run.logger.error('job_worker_failed', { job_id: job.id, message: errorText(error) });
        })
        .finally(() => {
          running.delete(task);
          sleeper.wake();
        });
      running.add(task);
    }
    if (jobs.length < free) await sleeper.sleep(pollIntervalMs);
  }

  await drain(run, running, jobControllers);
  sleeper.dispose();
  run.logger.info('job_worker_stopped', { worker: run.settings.workerId, ...run.stats });
  return run.stats;
}

/** Validates the options and sets up the counts and the event reporter of one run. */
function startRun(options: RunWorkerOptions): WorkerRun {
  const { handlers } = options;
  const kinds = [...(options.kinds ?? Object.keys(handlers))];
  if (kinds.length === 0) throw new Error('runWorker: no kinds to claim (give handlers)');
  const missing = kinds.filter((kind) => typeof handlers[kind] !== 'function');
  if (missing.length > 0) throw new Error(`runWorker: no handler for kind(s) ${missing.join(', ')}`);
  const leaseSeconds = Math.ceil(positive('leaseSeconds', options.leaseSeconds, 30));
  const inlineMaxBytes = options.artifacts?.inlineMaxBytes ?? defaultInlineMaxBytes;
  if (!Number.isInteger(inlineMaxBytes) || inlineMaxBytes < 0) {
    throw new Error('runWorker: artifacts.inlineMaxBytes must be a whole number of bytes');
  }
  const settings: WorkerSettings = {
    kinds,
    concurrency: Math.floor(positive('concurrency', options.concurrency, 4)),
    leaseSeconds,
    pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs, 500),
    heartbeatIntervalMs: positive('heartbeatIntervalMs', options.heartbeatIntervalMs, (leaseSeconds * 1000) / 3),
    abortGraceMs: positive('abortGraceMs', options.abortGraceMs, 5_000),
    drainTimeoutMs: positive('drainTimeoutMs', options.drainTimeoutMs, 30_000),
    workerId: options.workerId ?? `worker-${crypto.randomUUID().slice(0, 8)}`,
    artifacts: { storage: options.artifacts?.storage, inlineMaxBytes },
  };
  const logger = options.logger ?? silentLogger;
  const stats: WorkerStats = {
    claimed: 0,
    succeeded: 0,
    retried: 0,
    deadLettered: 0,
    skipped: 0,
    leaseLost: 0,
    abandoned: 0,
    errors: 0,
  };
  const emit = (event: WorkerEvent) => {
    try {
      options.onEvent?.(event);
    } catch (error) {
      logger.warn('job_worker_event_listener_failed', { message: errorText(error) });
    }
  };
  return { sql: options.sql, handlers, settings, stats, logger, emit };
}

/**
 * A sleep that ends early when `wake()` is called (a job finished) or the
 * signal fires. `dispose()` removes its listener from the long-lived signal.
 */
function wakeableSleep(signal: AbortSignal | undefined) {
  let wakeUp: (() => void) | undefined;
  const wake = () => wakeUp?.();
  signal?.addEventListener('abort', wake, { once: true });
  return {
    wake,
    sleep: (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wakeUp = undefined;
          resolve();
        }
        wakeUp = done;
      }),
    dispose: () => signal?.removeEventListener('abort', wake),
  };
}

// ---- claim ----

/** Claims up to `free` jobs; undefined when the claim failed (reported; the caller backs off). */
async function claim(run: WorkerRun, free: number): Promise<ClaimedJob[] | undefined> {
  const { workerId, kinds, leaseSeconds } = run.settings;
  let jobs: ClaimedJob[];
  try {
    jobs = await claimJobs(run.sql, { worker: workerId, kinds, batchSize: free, leaseSeconds });
  } catch (error) {
    run.stats.errors++;
    run.emit({ type: 'error', during: 'claim', message: databaseMessage(error) });
    run.logger.warn('job_claim_failed', { worker: workerId, message: databaseMessage(error) });
    return undefined;
  }
  for (const job of jobs) {
    run.stats.claimed++;
    run.emit({ type: 'claimed', job });
  }
  return jobs;
}

// ---- one job: run the handler under a lease, then finish it ----

async function runJob(
  run: WorkerRun,
  job: ClaimedJob,
  jobControllers: Set<AbortController>,
  completions: CompletionQueue,
): Promise<void> {
  const controller = new AbortController();
  jobControllers.add(controller);
  const timeout = setTimeout(
    () => controller.abort(new JobTimeoutError(job.timeoutSeconds)),
    job.timeoutSeconds * 1000,
  );
  const lease = keepLease(run, job, controller);
  let outcome: HandlerOutcome;
  try {
    outcome = await runHandler(run, job, controller.signal);
  } finally {
    clearTimeout(timeout);
    lease.stop();
    jobControllers.delete(controller);
  }

  const leaseLost = lease.lostMessage();
  if (leaseLost !== undefined) {
    // Another worker or the reaper has the job now: report nothing.
    reportLeaseLost(run, job, 'heartbeat', leaseLost);
    return;
  }
  const abortReason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
  if (outcome.type === 'value') await finishWithValue(run, job, outcome.value, completions);
  else if (outcome.type === 'abandoned') await finishAbandoned(run, job, abortReason);
  else await finishWithError(run, job, outcome.error, abortReason);
}

/**
 * Extends the job's lease every heartbeat interval while its handler runs. A
 * lost lease aborts the handler (JobLeaseLostError) and is remembered; other
 * heartbeat failures are reported and the next beat tries again.
 */
function keepLease(run: WorkerRun, job: ClaimedJob, controller: AbortController) {
  let lost: string | undefined;
  let inFlight = false;
  const interval = setInterval(async () => {
    if (inFlight || lost !== undefined) return;
    inFlight = true;
    try {
      await heartbeatJob(run.sql, job.id, job.leaseToken, run.settings.leaseSeconds);
    } catch (error) {
      if (isLeaseLost(error)) {
        lost = databaseMessage(error);
        controller.abort(new JobLeaseLostError(lost));
      } else {
        run.emit({ type: 'error', during: 'heartbeat', job, message: databaseMessage(error) });
        run.logger.warn('job_heartbeat_failed', { job_id: job.id, message: databaseMessage(error) });
      }
    } finally {
      inFlight = false;
    }
  }, run.settings.heartbeatIntervalMs);
  return { stop: () => clearInterval(interval), lostMessage: () => lost };
}

/** Calls the job's handler with its context and waits for its outcome (or gives up on it, see settle). */
function runHandler(run: WorkerRun, job: ClaimedJob, signal: AbortSignal): Promise<HandlerOutcome> {
  const { sql, settings } = run;
  const context: JobContext = {
    signal,
    workerId: settings.workerId,
    heartbeat: () => heartbeatJob(sql, job.id, job.leaseToken, settings.leaseSeconds),
    addArtifact: async (artifact) => (await storeJobArtifact(sql, job, artifact, settings.artifacts)).id,
  };
  const handler = run.handlers[job.kind];
  return settle(Promise.resolve().then(() => handler(job, context)), signal, settings.abortGraceMs);
}

/** Resolves with the handler's outcome, or 'abandoned' when it ignores its fired signal for graceMs. */
function settle(work: Promise<unknown>, signal: AbortSignal, graceMs: number): Promise<HandlerOutcome> {
  return new Promise((resolve) => {
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      graceTimer = setTimeout(() => resolve({ type: 'abandoned' }), graceMs);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => resolve({ type: 'value', value }),
      (error: unknown) => resolve({ type: 'error', error }),
    ).finally(() => {
      if (graceTimer !== undefined) clearTimeout(graceTimer);
      signal.removeEventListener('abort', onAbort);
    });
  });
}

// ---- finishing: complete, fail (retry or dead-letter), skip ----

/** Completes the job with the handler's value, storing a large one as the artifact `result`. */
async function finishWithValue(
  run: WorkerRun,
  job: ClaimedJob,
  value: unknown,
  completions: CompletionQueue,
): Promise<void> {
  let serialized: string | undefined;
  try {
    serialized = JSON.stringify(value);
  } catch (error) {
    // Retrying would produce the same value: straight to the DLQ, saying why.
    await fail(run, job, `the handler's result cannot be stored as JSON: ${errorText(error)}`, false);
    return;
  }
  let result = value;
  if (serialized !== undefined && byteLength(serialized) > run.settings.artifacts.inlineMaxBytes) {
    // A large result lives beside the job (in Storage when configured), not in the jobs table.
    try {
      const stored = await storeJobArtifact(run.sql, job, { name: 'result', content: value }, run.settings.artifacts);
      result = { artifact: stored };
    } catch (error) {
      if (isLeaseLost(error)) {
        run.stats.leaseLost++;
        run.emit({ type: 'lease_lost', job, during: 'finish', message: databaseMessage(error) });
        return;
      }
      await fail(run, job, `the result could not be stored as an artifact: ${errorText(error)}`, true);
      return;
    }
  }
  await completions.add(job, result);
}

/** The handler ignored its fired signal for the grace time: a retryable failure saying so. */
async function finishAbandoned(run: WorkerRun, job: ClaimedJob, abortReason: unknown): Promise<void> {
  const reason = `${errorText(abortReason)}; the handler did not stop within ${run.settings.abortGraceMs} ms`;
  run.stats.abandoned++;
  run.emit({ type: 'abandoned', job, reason });
  run.logger.warn('job_handler_abandoned', { job_id: job.id, kind: job.kind, reason });
  await fail(run, job, reason, true);
}

/** Maps what the handler threw to skip, dead-letter (AbortJob) or retry. */
async function finishWithError(run: WorkerRun, job: ClaimedJob, error: unknown, abortReason: unknown): Promise<void> {
  if (error instanceof SkipJob) {
    await finishWith(run, job, async () => {
      await skipJob(run.sql, job.id, job.leaseToken, error.message);
      run.stats.skipped++;
      run.emit({ type: 'skipped', job, reason: error.message });
    });
  } else if (error instanceof AbortJob) {
    await fail(run, job, error.message, false);
  } else if (error instanceof RetryJob) {
    await fail(run, job, error.message, true, error.retryInSeconds);
  } else if (abortReason instanceof JobTimeoutError || abortReason instanceof WorkerShutdownError) {
    // The handler stopped because its signal fired: say why, not how it stopped.
    await fail(run, job, abortReason.message, true, abortReason instanceof WorkerShutdownError ? 0 : undefined);
  } else {
    await fail(run, job, errorText(error), true);
  }
}

/** Fails the job: retried later when `retryable` and attempts remain, dead-lettered otherwise. */
async function fail(run: WorkerRun, job: ClaimedJob, message: string, retryable: boolean, retryInSeconds?: number) {
  await finishWith(run, job, async () => {
    const status = await failJob(run.sql, job.id, job.leaseToken, message.slice(0, 4000), {
      retryable,
      retryInSeconds,
    });
    if (status === 'failed_dlq') run.stats.deadLettered++;
    else run.stats.retried++;
    run.emit({ type: 'failed', job, status, error: message });
  });
}

/** Runs a finishing call, retrying transient (connection) failures; a lost lease is final. */
async function finishWith(run: WorkerRun, job: ClaimedJob, action: () => Promise<void>): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await action();
      return;
    } catch (error) {
      if (isLeaseLost(error)) {
        reportLeaseLost(run, job, 'finish', databaseMessage(error));
        return;
      }
      if (attempt >= 3) {
        // The lease runs out and the reaper retries the job.
        run.stats.errors++;
        run.emit({ type: 'error', during: 'finish', job, message: databaseMessage(error) });
        run.logger.error('job_finish_failed', { job_id: job.id, kind: job.kind, message: databaseMessage(error) });
        return;
      }
      await backoff(attempt);
    }
  }
}

function reportLeaseLost(run: WorkerRun, job: ClaimedJob, during: 'heartbeat' | 'finish', message: string): void {
  run.stats.leaseLost++;
  run.emit({ type: 'lease_lost', job, during, message });
  run.logger.warn('job_lease_lost', { job_id: job.id, kind: job.kind, message });
}

/**
 * Completions go to the database in batches, one batch in flight (group
 * commit): at low load each job is completed at once, alone; under load the
 * ones that finish while a batch is being written go together in the next.
 */
class CompletionQueue {
  readonly #run: WorkerRun;
  readonly #pending: { job: ClaimedJob; result: unknown; done: () => void }[] = [];
  #flushing = false;

  constructor(run: WorkerRun) {
    this.#run = run;
  }

  /** Resolves once the job's completion was written (or reported as failed or lease-lost). */
  add(job: ClaimedJob, result: unknown): Promise<void> {
    return new Promise((done) => {
      this.#pending.push({ job, result, done });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, 500);
        try {
          this.#report(batch, await this.#completeWithRetries(batch));
        } catch (error) {
          // The leases run out and the reaper retries these jobs.
          const { stats, emit, logger } = this.#run;
          for (const { job } of batch) {
            stats.errors++;
            emit({ type: 'error', during: 'finish', job, message: databaseMessage(error) });
          }
          logger.error('job_complete_failed', { jobs: batch.length, message: databaseMessage(error) });
        } finally {
          for (const { done } of batch) done();
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  #report(batch: readonly { job: ClaimedJob }[], outcomes: readonly { id: string; status: string }[]): void {
    const lost = new Set(outcomes.filter((outcome) => outcome.status !== 'succeeded').map((outcome) => outcome.id));
    for (const { job } of batch) {
      if (lost.has(job.id)) {
        reportLeaseLost(this.#run, job, 'finish', `cannot complete job ${job.id}: its lease is no longer held`);
      } else {
        this.#run.stats.succeeded++;
        this.#run.emit({ type: 'succeeded', job });
      }
    }
  }

  async #completeWithRetries(batch: readonly { job: ClaimedJob; result: unknown }[]) {
    for (let attempt = 1;; attempt++) {
      try {
        return await completeJobs(
          this.#run.sql,
          batch.map(({ job, result }) => ({ id: job.id, leaseToken: job.leaseToken, result })),
        );
      } catch (error) {
        // complete_jobs is idempotent per lease: a retry after an unanswered
        // commit reports those jobs lease_lost, never completes them twice.
        if (attempt >= 3) throw error;
        await backoff(attempt);
      }
    }
  }
}

// ---- shutdown ----

/** No new claims: running jobs finish, or get their signal (WorkerShutdownError) after drainTimeoutMs. */
async function drain(run: WorkerRun, running: Set<Promise<void>>, jobControllers: Set<AbortController>) {
  if (running.size === 0) return;
  run.logger.info('job_worker_draining', { worker: run.settings.workerId, running: running.size });
  const shutdown = setTimeout(() => {
    for (const controller of jobControllers) controller.abort(new WorkerShutdownError());
  }, run.settings.drainTimeoutMs);
  while (running.size > 0) await Promise.all([...running]);
  clearTimeout(shutdown);
}
