import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export type AsymmetricAlgorithm = 'ES256' | 'RS256';

export interface SigningKey {
  kid: string;
  alg: AsymmetricAlgorithm;
  privateJwk: JWK;
}

export interface FakeJwksServer {
  url: string;
  keys: SigningKey[];
  close(): Promise<void>;
}

async function createSigningKey(
  alg: AsymmetricAlgorithm,
  kid: string,
): Promise<{ signing: SigningKey; publicJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { signing: { kid, alg, privateJwk: { ...(await exportJWK(privateKey)), kid, alg } }, publicJwk };
}

/**
 * A loopback stand-in for Supabase Auth's JWKS endpoint
 * (`/auth/v1/.well-known/jwks.json`). `POST /keys {"alg"}` publishes a new key
 * (a rotation) and returns its private JWK; `GET /stats` counts fetches.
 */
export async function startFakeJwksServer(): Promise<FakeJwksServer> {
  const published: JWK[] = [];
  const keys: SigningKey[] = [];
  let fetches = 0;
  for (const [alg, kid] of [['ES256', 'es-initial'], ['RS256', 'rs-initial']] as const) {
    const { signing, publicJwk } = await createSigningKey(alg, kid);
    keys.push(signing);
    published.push(publicJwk);
  }

  const server = http.createServer((request, response) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (request.method === 'GET' && request.url === '/auth/v1/.well-known/jwks.json') {
      fetches += 1;
      return send(200, { keys: published });
    }
    if (request.method === 'GET' && request.url === '/stats') return send(200, { fetches });
    if (request.method === 'POST' && request.url === '/keys') {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', async () => {
        const alg = (JSON.parse(body || '{}') as { alg?: AsymmetricAlgorithm }).alg ?? 'ES256';
        const { signing, publicJwk } = await createSigningKey(alg, `rotated-${crypto.randomUUID().slice(0, 8)}`);
        keys.push(signing);
        published.push(publicJwk);
        send(201, signing);
      });
      return;
    }
    send(404, { error: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    keys,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
