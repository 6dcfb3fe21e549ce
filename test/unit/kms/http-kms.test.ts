import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HttpError } from '../../../supabase/functions/_shared/errors.ts';
import { HttpKms } from '../../../supabase/functions/_shared/kms/http-kms.ts';
import { openSecret, sealSecret } from '../../../supabase/functions/_shared/vault/envelope.ts';
import { type FakeKms, startFakeKms } from '../../fakes/fake-kms.ts';

let fake: FakeKms;
const arnLikeKeyId = 'arn:aws:kms:eu-west-1:000000000000:key/vault-1';

beforeAll(async () => {
  fake = await startFakeKms({ keyIds: ['kek-1', 'kek-2', arnLikeKeyId] });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.setBehaviour({});
  fake.calls.length = 0;
});

function client(overrides: Partial<ConstructorParameters<typeof HttpKms>[0]> = {}) {
  return new HttpKms({ url: fake.url, token: fake.token, keyId: 'kek-1', timeoutMs: 2_000, fetch, ...overrides });
}

async function refusal(work: Promise<unknown>): Promise<HttpError> {
  const error = await work.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(HttpError);
  expect((error as HttpError).code).toBe('kms_unavailable');
  expect((error as HttpError).message).not.toContain(fake.token);
  return error as HttpError;
}

describe('HttpKms against a fake KMS on loopback', () => {
  it('wraps and unwraps data keys by key id, with the bearer token', async () => {
    const kms = client();
    const dataKey = randomBytes(32);
    const wrapped = await kms.wrapDataKey(dataKey);
    expect(wrapped.kekId).toBe('kek-1');
    expect(Buffer.from(await kms.unwrapDataKey(wrapped)).equals(dataKey)).toBe(true);
    const underArn = await kms.wrapDataKey(dataKey, arnLikeKeyId);
    expect(underArn.kekId).toBe(arnLikeKeyId);
    expect(Buffer.from(await kms.unwrapDataKey(underArn)).equals(dataKey)).toBe(true);
    expect(fake.calls).toEqual([
      { operation: 'encrypt', keyId: 'kek-1', authorized: true },
      { operation: 'decrypt', keyId: 'kek-1', authorized: true },
      { operation: 'encrypt', keyId: arnLikeKeyId, authorized: true },
      { operation: 'decrypt', keyId: arnLikeKeyId, authorized: true },
    ]);
    expect(await kms.selfTest()).toEqual({ kekId: 'kek-1' });
  });

  it('carries envelope encryption: a secret sealed through the external KMS opens again', async () => {
    const kms = client();
    const binding = { keyId: crypto.randomUUID(), tenantId: null, provider: 'openai', label: 'default', version: 1 };
    const sealed = await sealSecret(kms, binding, 'external-kms-secret-value');
    expect(await openSecret(kms, binding, sealed)).toBe('external-kms-secret-value');
  });

  it('answers kms_unavailable for a refused token, an unknown key, errors, bad answers and no answer', async () => {
    const dataKey = randomBytes(32);
    expect((await refusal(client({ token: 'wrong-token' }).wrapDataKey(dataKey))).message)
      .toBe('the KMS refused the token (KMS_TOKEN) on encrypt');
    expect((await refusal(client({ keyId: 'kek-9' }).wrapDataKey(dataKey))).message)
      .toBe('the KMS does not know key "kek-9" on encrypt');
    const wrapped = await client().wrapDataKey(dataKey);
    expect((await refusal(client().unwrapDataKey({ ...wrapped, kekId: 'kek-2' }))).message)
      .toBe('the KMS answered 400 on decrypt');

    fake.setBehaviour({ failWithStatus: 503 });
    expect((await refusal(client().wrapDataKey(dataKey))).message).toBe('the KMS answered 503 on encrypt');
    fake.setBehaviour({ malformed: true });
    expect((await refusal(client().unwrapDataKey(wrapped))).message)
      .toBe('the KMS answered decrypt without a valid plaintext');
    fake.setBehaviour({ delayMs: 1_000 });
    expect((await refusal(client({ timeoutMs: 50 }).wrapDataKey(dataKey))).message)
      .toBe('the KMS did not answer encrypt within 50 ms');
    fake.setBehaviour({});
    expect((await refusal(client({ url: 'http://127.0.0.1:1' }).wrapDataKey(dataKey))).message)
      .toBe('the KMS could not be reached for encrypt');
  });
});
