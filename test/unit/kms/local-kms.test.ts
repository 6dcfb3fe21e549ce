import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../supabase/functions/_shared/config.ts';
import { HttpError } from '../../../supabase/functions/_shared/errors.ts';
import { createKms } from '../../../supabase/functions/_shared/kms/create-kms.ts';
import { LocalKms, parseMasterKeys } from '../../../supabase/functions/_shared/kms/local-kms.ts';
import { createUnavailableKms } from '../../../supabase/functions/_shared/kms/unavailable-kms.ts';
import { createRuntimeDependencies } from '../../../supabase/functions/_shared/runtime.ts';

const keyA = randomBytes(32).toString('base64');
const keyB = randomBytes(32).toString('base64');

async function expectKmsUnavailable(work: Promise<unknown>, message: RegExp) {
  const error = await work.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(HttpError);
  expect((error as HttpError).code).toBe('kms_unavailable');
  expect((error as HttpError).status).toBe(503);
  expect((error as HttpError).message).toMatch(message);
}

describe('parseMasterKeys', () => {
  it('reads kid:base64 pairs, the first one current', () => {
    const parsed = parseMasterKeys(` new-2:${keyB} , old-1:${keyA}`);
    expect(parsed.problems).toEqual([]);
    expect(parsed.keys.map((key) => key.kid)).toEqual(['new-2', 'old-1']);
    expect(Buffer.from(parsed.keys[1].key).toString('base64')).toBe(keyA);
  });

  it('names every bad entry without its key material, and returns no key at all', () => {
    const short = randomBytes(16).toString('base64');
    const value = `good:${keyA},${keyB},short:${short},bad kid:${keyA},good:${keyB},x:not*base64`;
    const parsed = parseMasterKeys(value);
    expect(parsed.keys).toEqual([]);
    expect(parsed.problems).toEqual([
      'SWITCHYARD_MASTER_KEYS: entry 2 is not kid:base64key',
      'SWITCHYARD_MASTER_KEYS: entry 3 ("short") is not 32 bytes of base64',
      'SWITCHYARD_MASTER_KEYS: entry 4 has an invalid key id (letters, digits, ".", "_", "-")',
      'SWITCHYARD_MASTER_KEYS: entry 5: key id "good" appears twice',
      'SWITCHYARD_MASTER_KEYS: entry 6 ("x") is not 32 bytes of base64',
    ]);
    for (const secret of [keyA, keyB, short]) expect(parsed.problems.join(' ')).not.toContain(secret);
    expect(parseMasterKeys(undefined).problems).toEqual(['SWITCHYARD_MASTER_KEYS is not set']);
  });
});

describe('LocalKms', () => {
  const kms = new LocalKms(parseMasterKeys(`new-2:${keyB},old-1:${keyA}`).keys);

  it('wraps under the current key and unwraps under the key it names', async () => {
    const dataKey = randomBytes(32);
    const wrapped = await kms.wrapDataKey(dataKey);
    expect(wrapped.kekId).toBe('new-2');
    expect(Buffer.from(wrapped.wrappedKey).includes(dataKey)).toBe(false);
    expect(Buffer.from(await kms.unwrapDataKey(wrapped)).equals(dataKey)).toBe(true);
    const underOld = await kms.wrapDataKey(dataKey, 'old-1');
    expect(underOld.kekId).toBe('old-1');
    expect(Buffer.from(await kms.unwrapDataKey(underOld)).equals(dataKey)).toBe(true);
    expect(await kms.selfTest()).toEqual({ kekId: 'new-2' });
    expect(kms.currentKeyId()).toBe('new-2');
  });

  it('answers kms_unavailable for a missing master key, a wrong one, or a relabelled kid', async () => {
    const wrapped = await kms.wrapDataKey(randomBytes(32));
    await expectKmsUnavailable(kms.wrapDataKey(randomBytes(32), 'gone-9'), /master key "gone-9" is not configured/);
    await expectKmsUnavailable(kms.unwrapDataKey({ ...wrapped, kekId: 'gone-9' }), /"gone-9" is not configured/);
    // Same kid, other bytes: what a wrong SWITCHYARD_MASTER_KEYS looks like.
    const wrongKey = new LocalKms([{ kid: 'new-2', key: randomBytes(32) }]);
    await expectKmsUnavailable(wrongKey.unwrapDataKey(wrapped), /could not unwrap a data key \(wrong master key/);
    // The kid is bound into the wrapping: claiming another kid fails even with that kid's key.
    await expectKmsUnavailable(kms.unwrapDataKey({ ...wrapped, kekId: 'old-1' }), /could not unwrap/);
    await expectKmsUnavailable(
      kms.unwrapDataKey({ kekId: 'new-2', wrappedKey: new Uint8Array(5) }),
      /not in a known format/,
    );
  });
});

describe('choosing the KMS from the configuration', () => {
  const base = {
    SUPABASE_DB_URL: 'postgresql://u:p@127.0.0.1:1/x',
    SUPABASE_JWT_SECRET: 's'.repeat(40),
    SUPABASE_ANON_KEY: 'a',
  };

  it('uses the master keys, an external KMS when KMS_URL is set, or the unavailable KMS naming the problem', () => {
    expect(createKms(loadConfig({ ...base, SWITCHYARD_MASTER_KEYS: `k1:${keyA}` }).kms, fetch).kms.kind).toBe('local');
    const external = createKms(
      loadConfig({ ...base, KMS_URL: 'http://127.0.0.1:1', KMS_TOKEN: 't', KMS_KEY_ID: 'kek-1' }).kms,
      fetch,
    );
    expect(external.kms.kind).toBe('http');
    expect(external.kms.currentKeyId()).toBe('kek-1');

    const incomplete = createKms(loadConfig({ ...base, KMS_URL: 'not a url' }).kms, fetch);
    expect(incomplete.kms.kind).toBe('unavailable');
    expect(incomplete.problems).toEqual([
      'KMS_URL is not an http(s) URL',
      'KMS_TOKEN is required with KMS_URL',
      'KMS_KEY_ID is required with KMS_URL',
    ]);
    const none = createKms(loadConfig({ ...base, SWITCHYARD_MASTER_KEYS: '  ' }).kms, fetch);
    expect(none.kms.kind).toBe('unavailable');
    expect(none.problems[0]).toMatch(/^no KMS is configured: set SWITCHYARD_MASTER_KEYS/);
  });

  it('an invalid master key does not stop the isolate: the unavailable KMS, logged by name only', () => {
    const badKey = `k1:${randomBytes(16).toString('base64')}`;
    const lines: string[] = [];
    const originalLog = console.log;
    console.log = (line: string) => lines.push(line);
    try {
      const deps = createRuntimeDependencies({ ...base, SWITCHYARD_MASTER_KEYS: badKey });
      expect(deps.kms.kind).toBe('unavailable');
      expect(() => deps.kms.currentKeyId()).toThrow(HttpError);
      void deps.db.end({ timeout: 0 });
    } finally {
      console.log = originalLog;
    }
    const warning = lines.map((line) => JSON.parse(line)).find((line) => line.event === 'kms_unavailable');
    expect(warning.problems).toEqual(['SWITCHYARD_MASTER_KEYS: entry 1 ("k1") is not 32 bytes of base64']);
    expect(lines.join('\n')).not.toContain(badKey.slice(3));
  });

  it('the unavailable KMS refuses every call with 503 kms_unavailable', async () => {
    const kms = createUnavailableKms(['SWITCHYARD_MASTER_KEYS is not set']);
    expect(() => kms.currentKeyId()).toThrow(/key management is unavailable: SWITCHYARD_MASTER_KEYS is not set/);
    await expectKmsUnavailable(kms.wrapDataKey(randomBytes(32)), /unavailable/);
    await expectKmsUnavailable(kms.unwrapDataKey({ kekId: 'k', wrappedKey: randomBytes(40) }), /unavailable/);
    await expectKmsUnavailable(kms.selfTest(), /unavailable/);
  });
});
