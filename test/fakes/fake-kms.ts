import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeKmsCall {
  operation: string;
  keyId: string;
  authorized: boolean;
}

export interface FakeKmsBehaviour {
  /** Answer after this long (to exercise the client's timeout). */
  delayMs?: number;
  /** Answer every call with this status instead. */
  failWithStatus?: number;
  /** Answer 200 with a body that is not the wire format. */
  malformed?: boolean;
}

export interface FakeKms {
  url: string;
  token: string;
  keyIds: string[];
  calls: FakeKmsCall[];
  setBehaviour(behaviour: FakeKmsBehaviour): void;
  close(): Promise<void>;
}

/**
 * A loopback stand-in for an external KMS speaking the wire format of
 * `_shared/kms/http-kms.ts`: `POST /v1/keys/{id}/encrypt {plaintext}` and
 * `POST /v1/keys/{id}/decrypt {ciphertext}`, bearer token required. Each key
 * is a random AES-256-GCM key; the ciphertext is iv | data | tag.
 */
export async function startFakeKms(options: { keyIds?: string[]; token?: string } = {}): Promise<FakeKms> {
  const token = options.token ?? randomBytes(16).toString('hex');
  const keys = new Map((options.keyIds ?? ['fake-kek-1']).map((id) => [id, randomBytes(32)]));
  const calls: FakeKmsCall[] = [];
  let behaviour: FakeKmsBehaviour = {};

  const server = http.createServer((request, response) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    let raw = '';
    request.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    request.on('end', async () => {
      const match = /^\/v1\/keys\/([^/]+)\/(encrypt|decrypt)$/.exec(request.url ?? '');
      if (request.method !== 'POST' || !match) return send(404, { error: { code: 'not_found' } });
      const keyId = decodeURIComponent(match[1]);
      const operation = match[2];
      const authorized = request.headers.authorization === `Bearer ${token}`;
      calls.push({ operation, keyId, authorized });
      if (behaviour.delayMs) await new Promise((resolve) => setTimeout(resolve, behaviour.delayMs));
      if (response.destroyed) return;
      if (behaviour.failWithStatus) return send(behaviour.failWithStatus, { error: { code: 'injected' } });
      if (behaviour.malformed) return send(200, { unexpected: true });
      if (!authorized) return send(401, { error: { code: 'unauthorized' } });
      const key = keys.get(keyId);
      if (!key) return send(404, { error: { code: 'unknown_key' } });
      let body: { plaintext?: string; ciphertext?: string };
      try {
        body = JSON.parse(raw);
      } catch {
        return send(400, { error: { code: 'invalid_json' } });
      }
      if (operation === 'encrypt') {
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', key, iv);
        const data = Buffer.concat([cipher.update(Buffer.from(body.plaintext ?? '', 'base64')), cipher.final()]);
        const sealed = Buffer.concat([iv, data, cipher.getAuthTag()]);
        return send(200, { key_id: keyId, ciphertext: sealed.toString('base64') });
      }
      try {
        const sealed = Buffer.from(body.ciphertext ?? '', 'base64');
        const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
        decipher.setAuthTag(sealed.subarray(sealed.length - 16));
        const plain = Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
        return send(200, { plaintext: plain.toString('base64') });
      } catch {
        return send(400, { error: { code: 'decrypt_failed' } });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    keyIds: [...keys.keys()],
    calls,
    setBehaviour: (next) => {
      behaviour = next;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
