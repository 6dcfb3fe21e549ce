import type { Caller } from '../_shared/auth/caller.ts';
import { databaseIdentityOf } from '../_shared/auth/caller.ts';
import { type Database, type Transaction, withIdentity } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';

/** A job as the API shows it: everything but its lease token. */
export interface JobView {
  id: string;
  tenant_id: string | null;
  kind: string;
  status: string;
  payload: unknown;
  priority: number;
  run_at: string;
  attempts: number;
  max_attempts: number;
  timeout_seconds: number;
  worker: string | null;
  lease_expires_at: string | null;
  idempotency_key: string | null;
  last_error: string | null;
  result: unknown;
  created_at: string;
  updated_at: string;
}

export interface JobEventView {
  event: string;
  from_status: string | null;
  to_status: string;
  attempt: number;
  worker: string | null;
  details: unknown;
  at: string;
}

async function selectJob(tx: Transaction | Database, id: string, tenantId?: string): Promise<JobView | undefined> {
  const [job] = await tx<JobView[]>`
    select id, tenant_id, kind, status, payload, priority, run_at, attempts, max_attempts, timeout_seconds, worker,
           lease_expires_at, idempotency_key, last_error, result, created_at, updated_at
    from public.jobs
    where id = ${id} ${tenantId ? tx`and tenant_id = ${tenantId}` : tx``}`;
  return job;
}

async function selectEvents(tx: Transaction | Database, id: string): Promise<JobEventView[]> {
  return await tx<JobEventView[]>`
    select event, from_status, to_status, attempt, worker, details, at
    from public.job_events where job_id = ${id} order by id`;
}

/** The job by id, whoever owns it (service callers only). */
export async function jobById(db: Database, id: string): Promise<JobView> {
  const job = await selectJob(db, id);
  if (!job) throw new HttpError('not_found', `job ${id} not found`);
  return job;
}

/**
 * The job (and, when asked, its events) if the caller may see it, else a
 * 404: users through RLS (members of its tenant), API keys for their own
 * tenant, the service role always.
 */
export async function visibleJob(
  db: Database,
  caller: Caller,
  id: string,
  withEvents: boolean,
): Promise<JobView & { events?: JobEventView[] }> {
  const read = async (tx: Transaction | Database, tenantId?: string) => {
    const job = await selectJob(tx, id, tenantId);
    if (!job) throw new HttpError('not_found', `job ${id} not found`);
    return withEvents ? { ...job, events: await selectEvents(tx, id) } : job;
  };
  switch (caller.kind) {
    case 'user':
      return await withIdentity(db, databaseIdentityOf(caller), (tx) => read(tx));
    case 'api_key':
      return await read(db, caller.tenantId);
    case 'service_role':
      return await read(db);
  }
}
