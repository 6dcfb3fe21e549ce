import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeStorageCall {
  method: string;
  operation: 'upload' | 'sign' | 'download' | 'remove' | 'unknown';
  bucket?: string;
  path?: string;
  /** The call carried `Authorization: Bearer <service key>` and `apikey: <service key>`. */
  authorized: boolean;
}

export interface FakeStoredObject {
  bytes: Buffer;
  contentType: string;
}

export interface FakeStorage {
  /** The "project URL": the API is under `${url}/storage/v1`. */
  url: string;
  serviceKey: string;
  calls: FakeStorageCall[];
  /** bucket -> path -> object. */
  objects: Map<string, Map<string, FakeStoredObject>>;
  /** Answer every call with this status instead (0: behave). */
  failWithStatus(status: number): void;
  close(): Promise<void>;
}

/**
 * A loopback stand-in for Supabase Storage speaking the REST calls
 * `_shared/storage/supabase-storage.ts` makes, as the real API answers them:
 *   POST   /storage/v1/object/{bucket}/{path}        upload (x-upsert), 200 {Key, Id}; 400 statusCode 409 when it exists
 *   POST   /storage/v1/object/sign/{bucket}/{path}   {"expiresIn": s} -> 200 {"signedURL": "/object/sign/{bucket}/{path}?token=…"};
 *                                                    400 {"statusCode":"404","error":"not_found"} for a missing object
 *   GET    /storage/v1/object/sign/{bucket}/{path}?token=…   the object, while the token is valid
 *   DELETE /storage/v1/object/{bucket}              {"prefixes": [path]}
 * Uploads, signing and deletes need the service key as bearer and apikey
 * (403 otherwise); only buckets given at start exist.
 */
export async function startFakeStorage(
  options: { buckets?: string[]; serviceKey?: string } = {},
): Promise<FakeStorage> {
  const serviceKey = options.serviceKey ?? `fake-service-key-${randomBytes(8).toString('hex')}`;
  const objects = new Map(
    (options.buckets ?? ['artifacts']).map((bucket) => [bucket, new Map<string, FakeStoredObject>()]),
  );
  const tokens = new Map<string, { bucket: string; path: string; expiresAt: number }>();
  const calls: FakeStorageCall[] = [];
  let failStatus = 0;

  const server = http.createServer((request, response) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://fake.storage');
      const authorized = request.headers.authorization === `Bearer ${serviceKey}` &&
        request.headers.apikey === serviceKey;
      const body = Buffer.concat(chunks);
      const sign = /^\/storage\/v1\/object\/sign\/([^/]+)\/(.+)$/.exec(url.pathname);
      const object = /^\/storage\/v1\/object\/([^/]+)\/(.+)$/.exec(url.pathname);
      const bucketOnly = /^\/storage\/v1\/object\/([^/]+)$/.exec(url.pathname);
      const decode = (path: string) => path.split('/').map(decodeURIComponent).join('/');
      const call: FakeStorageCall = { method: request.method ?? '', operation: 'unknown', authorized };
      calls.push(call);
      if (failStatus) {
        return send(failStatus, { statusCode: String(failStatus), error: 'injected', message: 'injected' });
      }

      if (sign && request.method === 'GET') {
        Object.assign(call, { operation: 'download', bucket: sign[1], path: decode(sign[2]) });
        const grant = tokens.get(url.searchParams.get('token') ?? '');
        if (!grant || grant.bucket !== sign[1] || grant.path !== decode(sign[2]) || grant.expiresAt < Date.now()) {
          return send(400, { statusCode: '403', error: 'InvalidJWT', message: 'invalid signature' });
        }
        const stored = objects.get(grant.bucket)?.get(grant.path);
        if (!stored) return send(400, { statusCode: '404', error: 'not_found', message: 'Object not found' });
        response.writeHead(200, { 'content-type': stored.contentType });
        return response.end(stored.bytes);
      }
      if (sign && request.method === 'POST') {
        const bucket = sign[1];
        const path = decode(sign[2]);
        Object.assign(call, { operation: 'sign', bucket, path });
        if (!authorized) return send(403, { statusCode: '403', error: 'Unauthorized', message: 'invalid key' });
        let expiresIn: unknown;
        try {
          expiresIn = (JSON.parse(body.toString()) as { expiresIn?: unknown }).expiresIn;
        } catch {
          return send(400, { statusCode: '400', error: 'invalid_json', message: 'body is not JSON' });
        }
        if (typeof expiresIn !== 'number' || expiresIn < 1) {
          return send(400, { statusCode: '400', error: 'invalid_request', message: 'expiresIn is required' });
        }
        if (!objects.has(bucket)) {
          return send(400, { statusCode: '404', error: 'Bucket not found', message: 'Bucket not found' });
        }
        if (!objects.get(bucket)?.has(path)) {
          return send(400, { statusCode: '404', error: 'not_found', message: 'Object not found' });
        }
        const token = randomBytes(16).toString('hex');
        tokens.set(token, { bucket, path, expiresAt: Date.now() + expiresIn * 1000 });
        return send(200, { signedURL: `/object/sign/${bucket}/${sign[2]}?token=${token}` });
      }
      if (object && request.method === 'POST') {
        const bucket = object[1];
        const path = decode(object[2]);
        Object.assign(call, { operation: 'upload', bucket, path });
        if (!authorized) return send(403, { statusCode: '403', error: 'Unauthorized', message: 'invalid key' });
        const files = objects.get(bucket);
        if (!files) return send(400, { statusCode: '404', error: 'Bucket not found', message: 'Bucket not found' });
        if (files.has(path) && request.headers['x-upsert'] !== 'true') {
          return send(400, { statusCode: '409', error: 'Duplicate', message: 'The resource already exists' });
        }
        files.set(path, {
          bytes: body,
          contentType: String(request.headers['content-type'] ?? 'application/octet-stream'),
        });
        return send(200, { Key: `${bucket}/${path}`, Id: randomBytes(8).toString('hex') });
      }
      if (bucketOnly && request.method === 'DELETE') {
        const bucket = bucketOnly[1];
        Object.assign(call, { operation: 'remove', bucket });
        if (!authorized) return send(403, { statusCode: '403', error: 'Unauthorized', message: 'invalid key' });
        const prefixes = (JSON.parse(body.toString() || '{}') as { prefixes?: string[] }).prefixes ?? [];
        call.path = prefixes.join(',');
        for (const prefix of prefixes) objects.get(bucket)?.delete(prefix);
        return send(200, prefixes.map((name) => ({ name })));
      }
      return send(404, { statusCode: '404', error: 'not_found', message: 'no such route' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    serviceKey,
    calls,
    objects,
    failWithStatus: (status) => (failStatus = status),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
