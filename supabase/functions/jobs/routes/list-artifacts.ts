import { Hono } from 'hono';
import { z } from 'zod';
import { type Caller, databaseIdentityOf } from '../../_shared/auth/caller.ts';
import { type Database, type Transaction, withIdentity } from '../../_shared/db.ts';
import type { AppDependencies } from '../../_shared/dependencies.ts';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { readParams } from '../../_shared/validation.ts';
import { visibleJob } from '../job-view.ts';

const jobIdParams = z.object({ id: z.uuid('must be a UUID') });

interface ArtifactRow {
  id: string;
  name: string;
  storage_path: string | null;
  content: unknown;
  size_bytes: string | number | null;
  content_type: string;
  inline_reason: string | null;
  created_at: string;
}

export interface ArtifactView {
  id: string;
  name: string;
  location: 'inline' | 'storage';
  content_type: string;
  size_bytes: number | null;
  created_at: string;
  /** Inline artifacts: the output itself. */
  content?: unknown;
  /** Inline artifacts above the inline limit: why they are not in Storage. */
  inline_reason?: string;
  /** Storage artifacts: a signed URL valid until url_expires_at (null when the object is gone). */
  url?: string | null;
  url_expires_at?: string | null;
}

export interface ListArtifactsResponse {
  job_id: string;
  /** Whether this deployment has Storage; `not_configured`: every artifact here is inline. */
  storage: 'configured' | 'not_configured';
  artifacts: ArtifactView[];
}

async function selectArtifacts(tx: Transaction | Database, jobId: string): Promise<ArtifactRow[]> {
  return await tx<ArtifactRow[]>`
    select id, name, storage_path, content, size_bytes, content_type, inline_reason, created_at
    from public.artifacts where job_id = ${jobId} order by created_at, id`;
}

/** The job's artifacts if the caller may see the job (else 404): users through RLS, API keys for their tenant. */
async function visibleArtifacts(db: Database, caller: Caller, jobId: string): Promise<ArtifactRow[]> {
  await visibleJob(db, caller, jobId, false);
  if (caller.kind === 'user') {
    return await withIdentity(db, databaseIdentityOf(caller), (tx) => selectArtifacts(tx, jobId));
  }
  return await selectArtifacts(db, jobId);
}

/**
 * GET /jobs/:id/artifacts: the job's outputs, oldest first. Inline ones carry
 * their content; Storage ones a signed URL valid ARTIFACT_URL_TTL_SECONDS.
 * Storage not configured: `storage: "not_configured"`, and 503
 * storage_unavailable if an artifact of this job lives in Storage anyway.
 */
export function listArtifactsRoute(deps: AppDependencies) {
  const app = new Hono<AppEnv>();
  app.get('/:id/artifacts', async (c) => {
    const { id } = readParams(c, jobIdParams);
    const rows = await visibleArtifacts(deps.db, c.get('caller'), id);
    const configured = deps.storage.kind !== 'unavailable';
    const stored = rows.filter((row) => row.storage_path !== null);
    if (stored.length > 0 && !configured) {
      throw new HttpError(
        'storage_unavailable',
        `${stored.length} artifact(s) of job ${id} are in Storage, which is not configured here`,
        { details: { artifact_ids: stored.map((row) => row.id) } },
      );
    }
    const ttl = deps.config.artifacts.urlTtlSeconds;
    const artifacts = await Promise.all(rows.map(async (row): Promise<ArtifactView> => {
      const base = {
        id: row.id,
        name: row.name,
        content_type: row.content_type,
        size_bytes: row.size_bytes === null ? null : Number(row.size_bytes),
        created_at: row.created_at,
      };
      if (row.storage_path === null) {
        return {
          ...base,
          location: 'inline',
          content: row.content,
          ...(row.inline_reason ? { inline_reason: row.inline_reason } : {}),
        };
      }
      const signed = await deps.storage.createSignedUrl(row.storage_path, ttl);
      return {
        ...base,
        location: 'storage',
        url: signed?.url ?? null,
        url_expires_at: signed?.expiresAt.toISOString() ?? null,
      };
    }));
    c.header('cache-control', 'no-store');
    const body: ListArtifactsResponse = {
      job_id: id,
      storage: configured ? 'configured' : 'not_configured',
      artifacts,
    };
    return c.json(body);
  });
  return app;
}
