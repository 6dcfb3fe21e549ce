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

const silentLogger: Pick<Logger, 'info' | 'warn' | 'error'> = { info() {}, warn() {}, error() {} };

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

/**
 * Claims jobs of the given kinds in batches (as many as there are free
 * slots), runs their handlers with a heartbeat and an AbortSignal that fires
 * at each job's timeout, then completes, fails (retryable or not) or skips
 * each one. Resolves with its counts once `signal` fired and running jobs
 * drained. Works on Node and Deno.
 */
export async function runWorker(options: RunWorkerOptions): Promise<WorkerStats> {
  const { sql, handlers, signal } = options;
  const kinds = [...(options.kinds ?? Object.keys(handlers))];
  if (kinds.length === 0) throw new Error('runWorker: no kinds to claim (give handlers)');
  const missing = kinds.filter((kind) => typeof handlers[kind] !== 'function');
  if (missing.length > 0) throw new Error(`runWorker: no handler for kind(s) ${missing.join(', ')}`);
  const concurrency = Math.floor(positive('concurrency', options.concurrency, 4));
  const leaseSeconds = Math.ceil(positive('leaseSeconds', options.leaseSeconds, 30));
  const pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs, 500);
  const heartbeatIntervalMs = positive('heartbeatIntervalMs', options.heartbeatIntervalMs, (leaseSeconds * 1000) / 3);
  const abortGraceMs = positive('abortGraceMs', options.abortGraceMs, 5_000);
  const drainTimeoutMs = positive('drainTimeoutMs', options.drainTimeoutMs, 30_000);
  const workerId = options.workerId ?? `worker-${crypto.randomUUID().slice(0, 8)}`;
  const artifactSettings: ArtifactSettings = {
    storage: options.artifacts?.storage,
    inlineMaxBytes: options.artifacts?.inlineMaxBytes ?? defaultInlineMaxBytes,
  };
  if (!Number.isInteger(artifactSettings.inlineMaxBytes) || (artifactSettings.inlineMaxBytes as number) < 0) {
    throw new Error('runWorker: artifacts.inlineMaxBytes must be a whole number of bytes');
  }
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

  // The main loop sleeps until the poll interval passes, a job finishes or the signal fires.
  let wakeUp: (() => void) | undefined;
  const wake = () => wakeUp?.();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });
  signal?.addEventListener('abort', wake, { once: true });

  const running = new Set<Promise<void>>();
  const jobControllers = new Set<AbortController>();

  /** Runs a finishing call, retrying transient (connection) failures; a lost lease is final. */
  async function finishWith(job: ClaimedJob, action: () => Promise<void>): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        await action();
        return;
      } catch (error) {
        if (isLeaseLost(error)) {
          stats.leaseLost++;
          emit({ type: 'lease_lost', job, during: 'finish', message: databaseMessage(error) });
          logger.warn('job_lease_lost', { job_id: job.id, kind: job.kind, message: databaseMessage(error) });
          return;
        }
        if (attempt >= 3) {
          // The lease runs out and the reaper retries the job.
          stats.errors++;
          emit({ type: 'error', during: 'finish', job, message: databaseMessage(error) });
          logger.error('job_finish_failed', { job_id: job.id, kind: job.kind, message: databaseMessage(error) });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  }

  // Completions go to the database in batches, one batch in flight (group
  // commit): at low load each job is completed at once, alone; under load the
  // ones that finish while a batch is being written go together in the next.
  const completions: { job: ClaimedJob; result: unknown; done: () => void }[] = [];
  let completing = false;

  function queueCompletion(job: ClaimedJob, result: unknown): Promise<void> {
    return new Promise((done) => {
      completions.push({ job, result, done });
      if (!completing) void flushCompletions();
    });
  }

  async function flushCompletions(): Promise<void> {
    completing = true;
    try {
      while (completions.length > 0) {
        const batch = completions.splice(0, 500);
        try {
          const outcomes = await completeWithRetries(batch);
          const lost = new Set(
            outcomes.filter((outcome) => outcome.status !== 'succeeded').map((outcome) => outcome.id),
          );
          for (const { job } of batch) {
            if (lost.has(job.id)) {
              const message = `cannot complete job ${job.id}: its lease is no longer held`;
              stats.leaseLost++;
              emit({ type: 'lease_lost', job, during: 'finish', message });
              logger.warn('job_lease_lost', { job_id: job.id, kind: job.kind, message });
            } else {
              stats.succeeded++;
              emit({ type: 'succeeded', job });
            }
          }
        } catch (error) {
          // The leases run out and the reaper retries these jobs.
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
      completing = false;
    }
  }

  async function completeWithRetries(batch: readonly { job: ClaimedJob; result: unknown }[]) {
    for (let attempt = 1;; attempt++) {
      try {
        return await completeJobs(
          sql,
          batch.map(({ job, result }) => ({ id: job.id, leaseToken: job.leaseToken, result })),
        );
      } catch (error) {
        // complete_jobs is idempotent per lease: a retry after an unanswered
        // commit reports those jobs lease_lost, never completes them twice.
        if (attempt >= 3) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  }

  async function fail(job: ClaimedJob, message: string, retryable: boolean, retryInSeconds?: number) {
    await finishWith(job, async () => {
      const status = await failJob(sql, job.id, job.leaseToken, message.slice(0, 4000), { retryable, retryInSeconds });
      if (status === 'failed_dlq') stats.deadLettered++;
      else stats.retried++;
      emit({ type: 'failed', job, status, error: message });
    });
  }

  async function runJob(job: ClaimedJob): Promise<void> {
    const controller = new AbortController();
    jobControllers.add(controller);
    let leaseLost: string | undefined;
    const timeout = setTimeout(
      () => controller.abort(new JobTimeoutError(job.timeoutSeconds)),
      job.timeoutSeconds * 1000,
    );
    let heartbeatInFlight = false;
    const heartbeat = setInterval(async () => {
      if (heartbeatInFlight || leaseLost !== undefined) return;
      heartbeatInFlight = true;
      try {
        await heartbeatJob(sql, job.id, job.leaseToken, leaseSeconds);
      } catch (error) {
        if (isLeaseLost(error)) {
          leaseLost = databaseMessage(error);
          controller.abort(new JobLeaseLostError(leaseLost));
        } else {
          emit({ type: 'error', during: 'heartbeat', job, message: databaseMessage(error) });
          logger.warn('job_heartbeat_failed', { job_id: job.id, message: databaseMessage(error) });
        }
      } finally {
        heartbeatInFlight = false;
      }
    }, heartbeatIntervalMs);

    const context: JobContext = {
      signal: controller.signal,
      workerId,
      heartbeat: () => heartbeatJob(sql, job.id, job.leaseToken, leaseSeconds),
      addArtifact: async (artifact) => (await storeJobArtifact(sql, job, artifact, artifactSettings)).id,
    };
    let outcome: HandlerOutcome;
    try {
      const handler = handlers[job.kind];
      outcome = await settle(Promise.resolve().then(() => handler(job, context)), controller.signal, abortGraceMs);
    } finally {
      clearTimeout(timeout);
      clearInterval(heartbeat);
      jobControllers.delete(controller);
    }

    if (leaseLost !== undefined) {
      // Another worker or the reaper has the job now: report nothing.
      stats.leaseLost++;
      emit({ type: 'lease_lost', job, during: 'heartbeat', message: leaseLost });
      logger.warn('job_lease_lost', { job_id: job.id, kind: job.kind, message: leaseLost });
      return;
    }
    const abortReason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;

    if (outcome.type === 'value') {
      let serialized: string | undefined;
      try {
        serialized = JSON.stringify(outcome.value);
      } catch (error) {
        // Retrying would produce the same value: straight to the DLQ, saying why.
        await fail(job, `the handler's result cannot be stored as JSON: ${errorText(error)}`, false);
        return;
      }
      let result = outcome.value;
      if (serialized !== undefined && byteLength(serialized) > (artifactSettings.inlineMaxBytes as number)) {
        // A large result lives beside the job (in Storage when configured), not in the jobs table.
        try {
          const stored = await storeJobArtifact(sql, job, { name: 'result', content: outcome.value }, artifactSettings);
          result = { artifact: stored };
        } catch (error) {
          if (isLeaseLost(error)) {
            stats.leaseLost++;
            emit({ type: 'lease_lost', job, during: 'finish', message: databaseMessage(error) });
            return;
          }
          await fail(job, `the result could not be stored as an artifact: ${errorText(error)}`, true);
          return;
        }
      }
      await queueCompletion(job, result);
      return;
    }
    if (outcome.type === 'abandoned') {
      const reason = `${errorText(abortReason)}; the handler did not stop within ${abortGraceMs} ms`;
      stats.abandoned++;
      emit({ type: 'abandoned', job, reason });
      logger.warn('job_handler_abandoned', { job_id: job.id, kind: job.kind, reason });
      await fail(job, reason, true);
      return;
    }

    const error = outcome.error;
    if (error instanceof SkipJob) {
      await finishWith(job, async () => {
        await skipJob(sql, job.id, job.leaseToken, error.message);
        stats.skipped++;
        emit({ type: 'skipped', job, reason: error.message });
      });
    } else if (error instanceof AbortJob) {
      await fail(job, error.message, false);
    } else if (error instanceof RetryJob) {
      await fail(job, error.message, true, error.retryInSeconds);
    } else if (abortReason instanceof JobTimeoutError || abortReason instanceof WorkerShutdownError) {
      // The handler stopped because its signal fired: say why, not how it stopped.
      await fail(job, abortReason.message, true, abortReason instanceof WorkerShutdownError ? 0 : undefined);
    } else {
      await fail(job, errorText(error), true);
    }
  }

  let claimFailures = 0;
  while (!signal?.aborted) {
    const free = concurrency - running.size;
    if (free <= 0) {
      await sleep(pollIntervalMs);
      continue;
    }
    let jobs: ClaimedJob[];
    try {
      jobs = await claimJobs(sql, { worker: workerId, kinds, batchSize: free, leaseSeconds });
      claimFailures = 0;
    } catch (error) {
      claimFailures++;
      stats.errors++;
      emit({ type: 'error', during: 'claim', message: databaseMessage(error) });
      logger.warn('job_claim_failed', { worker: workerId, message: databaseMessage(error) });
      await sleep(Math.min(pollIntervalMs * 2 ** claimFailures, 30_000));
      continue;
    }
    for (const job of jobs) {
      stats.claimed++;
      emit({ type: 'claimed', job });
      const task: Promise<void> = runJob(job)
        .catch((error: unknown) => {
          stats.errors++;
          logger.error('job_worker_failed', { job_id: job.id, message: errorText(error) });
        })
        .finally(() => {
          running.delete(task);
          wake();
        });
      running.add(task);
    }
    if (jobs.length < free) await sleep(pollIntervalMs);
  }

  // Drain: no new claims; running jobs finish, or get their signal after drainTimeoutMs.
  if (running.size > 0) {
    logger.info('job_worker_draining', { worker: workerId, running: running.size });
    const shutdown = setTimeout(() => {
      for (const controller of jobControllers) controller.abort(new WorkerShutdownError());
    }, drainTimeoutMs);
    while (running.size > 0) await Promise.all([...running]);
    clearTimeout(shutdown);
  }
  signal?.removeEventListener('abort', wake);
  logger.info('job_worker_stopped', { worker: workerId, ...stats });
  return stats;
}
