import type { Database } from '../db.ts';

/**
 * Typed calls to the job functions in SQL (supabase/migrations/*_jobs.sql).
 * Every invariant lives there; these only name the parameters. `sql` is a
 * `postgres` connection pool (Node or Deno) connected as a role that may
 * execute them (service_role, or the database owner).
 */

export type JobStatus = 'queued' | 'assigned' | 'succeeded' | 'retry_scheduled' | 'failed_dlq' | 'cancelled';

export interface JobKindDefinition {
  kind: string;
  description?: string;
  maxAttempts?: number;
  timeoutSeconds?: number;
  backoffBaseSeconds?: number;
  backoffCapSeconds?: number;
}

export interface EnqueueOptions {
  tenantId?: string | null;
  runAt?: Date | null;
  priority?: number;
  maxAttempts?: number | null;
  idempotencyKey?: string | null;
  timeoutSeconds?: number | null;
}

export interface ClaimedJob {
  id: string;
  kind: string;
  payload: unknown;
  /** 1 on the first attempt. */
  attempt: number;
  leaseToken: string;
  leaseExpiresAt: Date;
  timeoutSeconds: number;
  maxAttempts: number;
  tenantId: string | null;
}

interface ClaimedRow {
  id: string;
  kind: string;
  payload: unknown;
  attempt: number;
  lease_token: string;
  lease_expires_at: Date;
  timeout_seconds: number;
  max_attempts: number;
  tenant_id: string | null;
}

/**
 * A jsonb parameter as text (cast `::text::jsonb` in SQL): with prepared
 * statements postgres.js would JSON-encode a string bound to a jsonb
 * parameter a second time. undefined is SQL null.
 */
const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));

export async function registerJobKind(sql: Database, definition: JobKindDefinition): Promise<void> {
  await sql`
    select public.register_job_kind(${definition.kind}, ${definition.description ?? ''}, ${definition.maxAttempts ?? 5},
      ${definition.timeoutSeconds ?? 300}, ${definition.backoffBaseSeconds ?? 1}, ${
    definition.backoffCapSeconds ?? 3600
  })`;
}

/** Enqueues one job; the same (tenant, idempotency key) returns the existing job's id. */
export async function enqueueJob(
  sql: Database,
  kind: string,
  payload: unknown,
  options: EnqueueOptions = {},
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    select public.enqueue_job(${kind}, ${json(payload ?? {})}::text::jsonb, ${options.tenantId ?? null}::uuid, ${
    options.runAt ?? null
  }::timestamptz,
      ${options.priority ?? 0}::integer, ${options.maxAttempts ?? null}::integer, ${
    options.idempotencyKey ?? null
  }::text,
      ${options.timeoutSeconds ?? null}::integer) as id`;
  return row.id;
}

export interface EnqueueItem extends EnqueueOptions {
  kind: string;
  payload: unknown;
}

/** Enqueues many jobs in one statement; ids in input order. */
export async function enqueueJobs(sql: Database, items: readonly EnqueueItem[]): Promise<string[]> {
  if (items.length === 0) return [];
  const body = items.map((item) => ({
    kind: item.kind,
    payload: item.payload ?? {},
    tenant_id: item.tenantId ?? undefined,
    run_at: item.runAt?.toISOString(),
    priority: item.priority,
    max_attempts: item.maxAttempts ?? undefined,
    idempotency_key: item.idempotencyKey ?? undefined,
    timeout_seconds: item.timeoutSeconds ?? undefined,
  }));
  const rows = await sql<{ id: string }[]>`select id from public.enqueue_jobs(${
    JSON.stringify(body)
  }::text::jsonb) order by ordinality`;
  return rows.map((row) => row.id);
}

export interface ClaimOptions {
  worker: string;
  /** Kinds to claim; all kinds when omitted. */
  kinds?: readonly string[] | null;
  batchSize?: number;
  leaseSeconds?: number;
}

/** Claims due jobs (FOR UPDATE SKIP LOCKED) and leases them to `worker`. */
export async function claimJobs(sql: Database, options: ClaimOptions): Promise<ClaimedJob[]> {
  const rows = await sql<ClaimedRow[]>`
    select * from public.claim_jobs(${options.worker}, ${options.kinds ? [...options.kinds] : null}::text[],
      ${options.batchSize ?? 10}::integer, ${options.leaseSeconds ?? 30}::integer)`;
  return rows.map((row) => ({
    id: row.id,
    kind: row.kind,
    payload: row.payload,
    attempt: row.attempt,
    leaseToken: row.lease_token,
    leaseExpiresAt: row.lease_expires_at,
    timeoutSeconds: row.timeout_seconds,
    maxAttempts: row.max_attempts,
    tenantId: row.tenant_id,
  }));
}

/** Extends a lease; raises SYJ02 (see isLeaseLost) when the lease is no longer held. */
export async function heartbeatJob(
  sql: Database,
  id: string,
  leaseToken: string,
  extendSeconds: number,
): Promise<Date> {
  const [row] = await sql<{ expires: Date }[]>`
    select public.heartbeat_job(${id}::uuid, ${leaseToken}::uuid, ${extendSeconds}::integer) as expires`;
  return row.expires;
}

/** The only way to succeeded; raises SYJ02 when the lease is no longer held. */
export async function completeJob(sql: Database, id: string, leaseToken: string, result?: unknown): Promise<void> {
  await sql`select public.complete_job(${id}::uuid, ${leaseToken}::uuid, ${json(result)}::text::jsonb)`;
}

export interface Completion {
  id: string;
  leaseToken: string;
  result?: unknown;
}

/** Completes many jobs in one statement; per job: succeeded or lease_lost. */
export async function completeJobs(
  sql: Database,
  completions: readonly Completion[],
): Promise<{ id: string; status: 'succeeded' | 'lease_lost' }[]> {
  if (completions.length === 0) return [];
  const items = completions.map((item) => ({ id: item.id, lease_token: item.leaseToken, result: item.result ?? null }));
  return await sql<{ id: string; status: 'succeeded' | 'lease_lost' }[]>`
    select id, status from public.complete_jobs(${JSON.stringify(items)}::text::jsonb)`;
}

export interface FailOptions {
  retryable?: boolean;
  retryInSeconds?: number | null;
}

/** Records a failed attempt; returns the new status (retry_scheduled or failed_dlq). */
export async function failJob(
  sql: Database,
  id: string,
  leaseToken: string,
  error: string,
  options: FailOptions = {},
): Promise<'retry_scheduled' | 'failed_dlq'> {
  const [row] = await sql<{ status: 'retry_scheduled' | 'failed_dlq' }[]>`
    select public.fail_job(${id}::uuid, ${leaseToken}::uuid, ${error}, ${options.retryable ?? true}::boolean,
      ${options.retryInSeconds ?? null}::integer) as status`;
  return row.status;
}

/** The handler skipped the job: cancelled. */
export async function skipJob(sql: Database, id: string, leaseToken: string, reason: string): Promise<void> {
  await sql`select public.skip_job(${id}::uuid, ${leaseToken}::uuid, ${reason})`;
}

/** An artifact row as add_job_artifact takes it: exactly one of storagePath and content. */
export interface ArtifactRecord {
  name?: string;
  /** Object path in the artifacts bucket, for an output already in Storage. */
  storagePath?: string;
  /** The output inline (JSON). */
  content?: unknown;
  /** Bytes of the output; computed from the JSON for inline content when omitted. */
  sizeBytes?: number;
  /** Default application/json. */
  contentType?: string;
  /** Why an output above the inline limit stayed inline. */
  inlineReason?: 'storage_not_configured';
}

/** Stores an output of a job held under this lease (the row only: uploads are storeJobArtifact's). */
export async function addJobArtifact(
  sql: Database,
  jobId: string,
  leaseToken: string,
  artifact: ArtifactRecord,
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    select public.add_job_artifact(
      job_id => ${jobId}::uuid,
      lease_token => ${leaseToken}::uuid,
      storage_path => ${artifact.storagePath ?? null}::text,
      content => ${artifact.content === undefined ? null : JSON.stringify(artifact.content)}::text::jsonb,
      name => ${artifact.name ?? 'output'}::text,
      size_bytes => ${artifact.sizeBytes ?? null}::bigint,
      content_type => ${artifact.contentType ?? null}::text,
      inline_reason => ${artifact.inlineReason ?? null}::text) as id`;
  return row.id;
}

/** Cancels a queued or retry_scheduled job. */
export async function cancelJob(sql: Database, id: string, reason?: string): Promise<void> {
  await sql`select public.cancel_job(${id}::uuid, ${reason ?? null}::text)`;
}

/** Moves jobs whose lease expired to retry_scheduled or failed_dlq; returns how many. */
export async function reapExpiredJobs(sql: Database): Promise<number> {
  const [row] = await sql<{ reaped: number }[]>`select public.reap_expired_jobs() as reaped`;
  return row.reaped;
}
