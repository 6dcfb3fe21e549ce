import type { Database } from '../db.ts';
import { artifactObjectPath, type ArtifactStorage } from '../storage/storage.ts';
import { createUnavailableStorage } from '../storage/unavailable-storage.ts';
import { addJobArtifact } from './queue.ts';

/** Outputs up to this many bytes stay inline unless the worker's `artifacts.inlineMaxBytes` says otherwise. */
export const defaultInlineMaxBytes = 64 * 1024;

export interface ArtifactSettings {
  /** Where outputs above inlineMaxBytes go; without it (or unavailable) they stay inline, marked so. */
  storage?: ArtifactStorage;
  /** Outputs larger than this go to Storage (default 64 KiB). */
  inlineMaxBytes?: number;
}

/** What a handler stores: JSON content, or an object already in Storage. */
export interface ArtifactInput {
  name?: string;
  /** JSON; a string with a non-JSON contentType (text/csv, ...) is stored as that text. */
  content?: unknown;
  contentType?: string;
  /** An object already in the artifacts bucket: registered as is, nothing uploaded. */
  storagePath?: string;
  sizeBytes?: number;
}

export interface StoredArtifact {
  id: string;
  name: string;
  location: 'inline' | 'storage';
  size_bytes: number | null;
  content_type: string;
  /** Set when an output above the limit stayed inline because Storage is not configured. */
  inline_reason?: 'storage_not_configured';
}

interface LeasedJob {
  id: string;
  leaseToken: string;
  tenantId: string | null;
}

const mimeType = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}(;[ -~]{1,200})?$/i;

/** The bytes an output is, and the content type they carry. */
export function serializeArtifact(content: unknown, contentType?: string): { bytes: Uint8Array; contentType: string } {
  if (contentType !== undefined && !mimeType.test(contentType)) {
    throw new TypeError(`artifact contentType "${contentType.slice(0, 60)}" is not a MIME type`);
  }
  const isJson = contentType === undefined || /^application\/([a-z0-9.+-]*\+)?json\b/i.test(contentType);
  if (!isJson && typeof content !== 'string') {
    throw new TypeError(`artifact content of type ${contentType} must be a string`);
  }
  const text = isJson ? JSON.stringify(content) : content as string;
  if (text === undefined) throw new TypeError('artifact content cannot be stored as JSON');
  return { bytes: new TextEncoder().encode(text), contentType: contentType ?? 'application/json' };
}

/**
 * Stores an output of a job held under its lease. Up to `inlineMaxBytes` it
 * is inline; above, it is uploaded to `<tenant>/<job>/<uuid>-<name>` in the
 * artifacts bucket and recorded by path, or, without Storage, kept inline
 * with `inline_reason = storage_not_configured` (nothing is lost). An upload
 * whose row cannot be written (the lease was lost) is removed again.
 */
export async function storeJobArtifact(
  sql: Database,
  job: LeasedJob,
  input: ArtifactInput,
  settings: ArtifactSettings = {},
): Promise<StoredArtifact> {
  const name = input.name ?? 'output';
  if (input.storagePath !== undefined) {
    if (input.content !== undefined) throw new TypeError('an artifact has content or a storagePath, not both');
    const contentType = input.contentType ?? 'application/octet-stream';
    const id = await addJobArtifact(sql, job.id, job.leaseToken, {
      name,
      storagePath: input.storagePath,
      sizeBytes: input.sizeBytes,
      contentType,
    });
    return { id, name, location: 'storage', size_bytes: input.sizeBytes ?? null, content_type: contentType };
  }
  if (input.content === undefined) throw new TypeError('an artifact needs content or a storagePath');
  const { bytes, contentType } = serializeArtifact(input.content, input.contentType);
  const inlineMaxBytes = settings.inlineMaxBytes ?? defaultInlineMaxBytes;
  const storage = settings.storage ?? unconfigured;
  const size = bytes.length;

  if (size > inlineMaxBytes && storage.kind !== 'unavailable') {
    const path = artifactObjectPath(job.tenantId, job.id, crypto.randomUUID(), name);
    await storage.upload(path, bytes, contentType);
    try {
      const id = await addJobArtifact(sql, job.id, job.leaseToken, {
        name,
        storagePath: path,
        sizeBytes: size,
        contentType,
      });
      return { id, name, location: 'storage', size_bytes: size, content_type: contentType };
    } catch (error) {
      await storage.remove(path).catch(() => {});
      throw error;
    }
  }
  const inlineReason = size > inlineMaxBytes ? 'storage_not_configured' as const : undefined;
  const id = await addJobArtifact(sql, job.id, job.leaseToken, {
    name,
    content: input.content,
    sizeBytes: size,
    contentType,
    inlineReason,
  });
  return {
    id,
    name,
    location: 'inline',
    size_bytes: size,
    content_type: contentType,
    ...(inlineReason ? { inline_reason: inlineReason } : {}),
  };
}

const unconfigured = createUnavailableStorage(['no storage was given to the worker']);
