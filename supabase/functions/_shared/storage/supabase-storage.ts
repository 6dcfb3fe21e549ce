import { type Clock, systemClock } from '../clock.ts';
import { HttpError } from '../errors.ts';
import { type ArtifactStorage, encodeObjectPath, type SignedObjectUrl } from './storage.ts';

/**
 * Supabase Storage over its REST API, Web fetch only (Node and Deno).
 *
 *     POST {url}/storage/v1/object/{bucket}/{path}         upload, body = the bytes, x-upsert
 *     POST {url}/storage/v1/object/sign/{bucket}/{path}    {"expiresIn": s} -> {"signedURL": "/object/sign/...?token=..."}
 *     DELETE {url}/storage/v1/object/{bucket}              {"prefixes": [path]}
 *
 * Every call carries the service role key as `Authorization: Bearer` and
 * `apikey` (what supabase-js sends), so it bypasses the bucket's RLS. A
 * refused call, an unexpected answer or no answer within the timeout is 503
 * storage_unavailable; the key never appears in an error.
 */
export interface SupabaseStorageOptions {
  /** The project URL (SUPABASE_URL, or STORAGE_URL), without /storage/v1. */
  url: string;
  serviceKey: string;
  bucket: string;
  /** Each call's limit (STORAGE_TIMEOUT_MS). */
  timeoutMs: number;
  fetch: typeof fetch;
  /** Dates a signed URL's expiry (default: the system clock). */
  clock?: Clock;
}

/** Where readiness keeps its probe object (outside every tenant's prefix). */
const storageProbePath = '_switchyard/readiness-probe.txt';
const probeBody = 'switchyard storage probe';

export class SupabaseStorage implements ArtifactStorage {
  readonly kind = 'supabase' as const;
  readonly bucket: string;
  readonly #options: SupabaseStorageOptions;
  readonly #apiUrl: string;

  constructor(options: SupabaseStorageOptions) {
    if (!/^https?:\/\/[^\s]+$/.test(options.url)) throw new Error('SupabaseStorage url must be http(s)');
    this.#options = options;
    this.bucket = options.bucket;
    this.#apiUrl = `${options.url.replace(/\/+$/, '')}/storage/v1`;
  }

  async #call(what: string, path: string, init: RequestInit): Promise<Response> {
    try {
      return await this.#options.fetch(`${this.#apiUrl}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${this.#options.serviceKey}`,
          apikey: this.#options.serviceKey,
          ...init.headers,
        },
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      throw new HttpError(
        'storage_unavailable',
        timedOut
          ? `Storage did not answer ${what} within ${this.#options.timeoutMs} ms`
          : `Storage could not be reached for ${what}`,
      );
    }
  }

  async #refused(what: string, response: Response): Promise<HttpError> {
    const body = await response.text().catch(() => '');
    const why = response.status === 401 || response.status === 403
      ? 'refused the service key'
      : isNotFound(response.status, body)
      ? `has no bucket or object for ${what} (is the "${this.bucket}" bucket migrated?)`
      : `answered ${response.status}`;
    return new HttpError('storage_unavailable', `Storage ${why} on ${what}`);
  }

  async upload(path: string, body: Uint8Array, contentType: string, options: { upsert?: boolean } = {}) {
    const response = await this.#call('upload', `/object/${this.bucket}/${encodeObjectPath(path)}`, {
      method: 'POST',
      headers: {
        'content-type': contentType,
        'x-upsert': options.upsert ? 'true' : 'false',
        'cache-control': 'no-store',
      },
      body: body as Uint8Array<ArrayBuffer>,
    });
    if (!response.ok) throw await this.#refused('upload', response);
    await response.body?.cancel();
  }

  async createSignedUrl(path: string, expiresInSeconds: number): Promise<SignedObjectUrl | undefined> {
    const expiresIn = Math.max(1, Math.floor(expiresInSeconds));
    const response = await this.#call('sign', `/object/sign/${this.bucket}/${encodeObjectPath(path)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ expiresIn }),
    });
    if (!response.ok) {
      const body = await response.clone().text().catch(() => '');
      // Storage answers a missing object with 404, or with 400 and statusCode "404" in the body.
      if (isNotFound(response.status, body) && !/bucket/i.test(body)) return undefined;
      throw await this.#refused('sign', response);
    }
    let signed: unknown;
    try {
      signed = await response.json();
    } catch {
      throw new HttpError('storage_unavailable', 'Storage answered sign with a body that is not JSON');
    }
    const signedUrl = (signed as { signedURL?: unknown } | null)?.signedURL;
    if (typeof signedUrl !== 'string' || !signedUrl.startsWith('/')) {
      throw new HttpError('storage_unavailable', 'Storage answered sign without a signedURL');
    }
    return {
      url: `${this.#apiUrl}${signedUrl}`,
      expiresAt: new Date((this.#options.clock ?? systemClock).now().getTime() + expiresIn * 1000),
    };
  }

  async remove(path: string): Promise<void> {
    const response = await this.#call('remove', `/object/${this.bucket}`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prefixes: [path] }),
    });
    if (!response.ok) throw await this.#refused('remove', response);
    await response.body?.cancel();
  }

  async selfTest(): Promise<{ detail: string }> {
    let signed = await this.createSignedUrl(storageProbePath, 60);
    if (!signed) {
      await this.upload(storageProbePath, new TextEncoder().encode(probeBody), 'text/plain', { upsert: true });
      signed = await this.createSignedUrl(storageProbePath, 60);
      if (!signed) throw new HttpError('storage_unavailable', 'Storage lost the probe object it was just given');
    }
    let downloaded: string;
    try {
      const response = await this.#options.fetch(signed.url, { signal: AbortSignal.timeout(this.#options.timeoutMs) });
      if (!response.ok) {
        await response.body?.cancel();
        throw new HttpError('storage_unavailable', `Storage answered the signed URL with ${response.status}`);
      }
      downloaded = await response.text();
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError('storage_unavailable', 'Storage could not be reached through the signed URL');
    }
    if (downloaded !== probeBody) {
      throw new HttpError('storage_unavailable', 'the signed URL returned other bytes than the probe object');
    }
    return { detail: `signed and downloaded a probe object in bucket "${this.bucket}"` };
  }
}

function isNotFound(status: number, body: string): boolean {
  if (status === 404) return true;
  if (status !== 400) return false;
  try {
    const parsed = JSON.parse(body) as { statusCode?: unknown; error?: unknown };
    return String(parsed.statusCode) === '404' || /not.?found/i.test(String(parsed.error ?? ''));
  } catch {
    return false;
  }
}
