// The job queue's TypeScript side: typed calls to the SQL job functions and
// the worker loop. Runs on Node and Deno; give it a `postgres` pool.
export {
  type ArtifactInput,
  type ArtifactSettings,
  defaultInlineMaxBytes,
  serializeArtifact,
  type StoredArtifact,
  storeJobArtifact,
} from './artifacts.ts';
export { databaseMessage, isJobNotFound, isLeaseLost, jobSqlStates } from './errors.ts';
export { AbortJob, JobLeaseLostError, JobTimeoutError, RetryJob, SkipJob, WorkerShutdownError } from './outcomes.ts';
export {
  addJobArtifact,
  type ArtifactRecord,
  cancelJob,
  type ClaimedJob,
  claimJobs,
  type ClaimOptions,
  completeJob,
  completeJobs,
  type Completion,
  type EnqueueItem,
  enqueueJob,
  enqueueJobs,
  type EnqueueOptions,
  failJob,
  type FailOptions,
  heartbeatJob,
  type JobKindDefinition,
  type JobStatus,
  reapExpiredJobs,
  registerJobKind,
  skipJob,
} from './queue.ts';
export {
  type JobContext,
  type JobHandler,
  runWorker,
  type RunWorkerOptions,
  type WorkerEvent,
  type WorkerStats,
} from './worker.ts';
