/**
 * Object storage for job artifacts: the private Supabase Storage bucket
 * `artifacts` (migration 20261123000900_artifacts.sql), reached over its REST API with the
 * service role key. Clients never get the key: they get short-lived signed
 * URLs. Where Storage is not configured the unavailable implementation
 * answers 503 storage_unavailable and artifacts stay inline.
 */

export type ArtifactStorageKind = 'supabase' | 'unavailable';

export interface SignedObjectUrl {
  /** Absolute URL anyone holding it may GET until it expires. */
  url: string;
  expiresAt: Date;
}

export interface ArtifactStorage {
  readonly kind: ArtifactStorageKind;
  /** The bucket objects go to (`artifacts`). */
  readonly bucket: string;
  /** Uploads an object; an existing object at the path is an error unless `upsert`. */
  upload(path: string, body: Uint8Array, contentType: string, options?: { upsert?: boolean }): Promise<void>;
  /** A signed URL for an existing object, valid `expiresInSeconds`; undefined when there is no such object. */
  createSignedUrl(path: string, expiresInSeconds: number): Promise<SignedObjectUrl | undefined>;
  /** Deletes an object (no error when it is gone already). */
  remove(path: string): Promise<void>;
  /** Signs a probe object (uploading it once), downloads it through the URL and compares (readiness). */
  selfTest(): Promise<{ detail: string }>;
}

/** The bucket the migration creates. */
export const artifactsBucket = 'artifacts';

/** Object path of a job's artifact: `<tenant_id | system>/<job_id>/<artifact_id>-<safe name>`. */
export function artifactObjectPath(tenantId: string | null, jobId: string, artifactId: string, name: string): string {
  const safeName = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100) || 'output';
  return `${tenantId ?? 'system'}/${jobId}/${artifactId}-${safeName}`;
}

/** Each path segment URL-encoded, the slashes kept (Storage object names contain them). */
export function encodeObjectPath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}
