import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../supabase/functions/_shared/config.ts';
import { serializeArtifact } from '../../../supabase/functions/_shared/jobs/artifacts.ts';
import { createStorage } from '../../../supabase/functions/_shared/storage/create-storage.ts';
import { artifactObjectPath, encodeObjectPath } from '../../../supabase/functions/_shared/storage/storage.ts';
import { SupabaseStorage } from '../../../supabase/functions/_shared/storage/supabase-storage.ts';

const minimal = {
  SUPABASE_DB_URL: 'postgresql://postgres:postgres@127.0.0.1:54322/postgres',
  SUPABASE_JWT_SECRET: 's'.repeat(40),
  SUPABASE_ANON_KEY: 'anon',
};

describe('Storage configuration', () => {
  it('is off by default, with 300 s URLs, even where SUPABASE_URL is set', () => {
    const config = loadConfig({ ...minimal, SUPABASE_URL: 'http://127.0.0.1:54321', SUPABASE_SERVICE_ROLE_KEY: 'k' });
    expect(config.storage).toEqual({
      enabled: false,
      url: 'http://127.0.0.1:54321',
      serviceKey: 'k',
      timeoutMs: 5_000,
    });
    expect(config.artifacts).toEqual({ urlTtlSeconds: 300 });
    const setup = createStorage(config.storage, fetch);
    expect(setup.storage.kind).toBe('unavailable');
    expect(setup.problems).toEqual([]);
  });

  it('takes STORAGE_URL over SUPABASE_URL and a secret key when there is no service role JWT', () => {
    const config = loadConfig({
      ...minimal,
      STORAGE_ENABLED: 'true',
      SUPABASE_URL: 'https://ref.supabase.co',
      STORAGE_URL: 'https://storage.example.com',
      SUPABASE_SECRET_KEYS: 'sb_secret_a,sb_secret_b',
      ARTIFACT_URL_TTL_SECONDS: '60',
    });
    expect(config.storage).toMatchObject({
      enabled: true,
      url: 'https://storage.example.com',
      serviceKey: 'sb_secret_a',
    });
    expect(config.artifacts).toEqual({ urlTtlSeconds: 60 });
    expect(createStorage(config.storage, fetch).storage.kind).toBe('supabase');
  });

  it('refuses malformed values naming the variable', () => {
    for (
      const [name, value] of [
        ['STORAGE_ENABLED', 'yes'],
        ['STORAGE_URL', 'not a url'],
        ['ARTIFACT_URL_TTL_SECONDS', '0'],
      ]
    ) {
      let thrown: unknown;
      try {
        loadConfig({ ...minimal, [name]: value });
      } catch (error) {
        thrown = error;
      }
      expect(thrown, name).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).problems.join(';')).toContain(name);
    }
  });

  it('enabled without a URL or key: the unavailable storage, naming what is missing (names only)', async () => {
    const setup = createStorage({ enabled: true, timeoutMs: 1_000 }, fetch);
    expect(setup.storage.kind).toBe('unavailable');
    expect(setup.problems).toEqual([
      'STORAGE_ENABLED=true needs STORAGE_URL or SUPABASE_URL',
      'STORAGE_ENABLED=true needs a service key (SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS)',
    ]);
    await expect(setup.storage.createSignedUrl('a/b', 60)).rejects.toMatchObject({
      code: 'storage_unavailable',
      status: 503,
    });
  });
});

describe('object paths and bytes', () => {
  it('names objects <tenant>/<job>/<id>-<safe name>, so no name escapes its folder', () => {
    expect(artifactObjectPath('t', 'j', 'i', 'report.csv')).toBe('t/j/i-report.csv');
    expect(artifactObjectPath(null, 'j', 'i', '../../etc/passwd')).toBe('system/j/i-etc_passwd');
    expect(artifactObjectPath('t', 'j', 'i', '...')).toBe('t/j/i-output');
    expect(encodeObjectPath('t/j/a b#?.txt')).toBe('t/j/a%20b%23%3F.txt');
  });

  it('serializes JSON as JSON and text as itself, and refuses what it cannot store', () => {
    expect(new TextDecoder().decode(serializeArtifact({ a: 'é' }).bytes)).toBe('{"a":"é"}');
    expect(serializeArtifact({ a: 'é' }).bytes.length).toBe(10);
    expect(serializeArtifact('a,b\n1,2', 'text/csv')).toMatchObject({ contentType: 'text/csv' });
    expect(new TextDecoder().decode(serializeArtifact('a,b', 'text/csv').bytes)).toBe('a,b');
    expect(new TextDecoder().decode(serializeArtifact('x', 'application/json').bytes)).toBe('"x"');
    expect(() => serializeArtifact({ a: 1 }, 'text/csv')).toThrow('must be a string');
    expect(() => serializeArtifact('x', 'not a type')).toThrow('is not a MIME type');
    expect(() => serializeArtifact(undefined)).toThrow('cannot be stored as JSON');
  });
});

describe('SupabaseStorage', () => {
  const storageWith = (answer: (url: string, init: RequestInit) => Response) => {
    const calls: { url: string; init: RequestInit }[] = [];
    const storage = new SupabaseStorage({
      url: 'https://ref.supabase.co/',
      serviceKey: 'service-key',
      bucket: 'artifacts',
      timeoutMs: 1_000,
      clock: { now: () => new Date('2030-01-01T00:00:00.000Z') },
      fetch: (input, init) => {
        calls.push({ url: String(input), init: init ?? {} });
        return Promise.resolve(answer(String(input), init ?? {}));
      },
    });
    return { storage, calls };
  };

  it('signs with the service key and turns the relative signedURL into an absolute one', async () => {
    const { storage, calls } = storageWith(() =>
      Response.json({ signedURL: '/object/sign/artifacts/t/j/x?token=abc' })
    );
    const signed = await storage.createSignedUrl('t/j/x', 90);
    expect(signed?.url).toBe('https://ref.supabase.co/storage/v1/object/sign/artifacts/t/j/x?token=abc');
    expect(calls[0].url).toBe('https://ref.supabase.co/storage/v1/object/sign/artifacts/t/j/x');
    expect(calls[0].init.method).toBe('POST');
    expect(calls[0].init.body).toBe('{"expiresIn":90}');
    expect(signed?.expiresAt.toISOString()).toBe('2030-01-01T00:01:30.000Z');
    expect(calls[0].init.headers).toMatchObject({ authorization: 'Bearer service-key', apikey: 'service-key' });
  });

  it('answers a missing object with undefined, and a missing bucket, a refusal or a bad body with 503', async () => {
    const missing = storageWith(() =>
      Response.json({ statusCode: '404', error: 'not_found', message: 'Object not found' }, { status: 400 })
    );
    expect(await missing.storage.createSignedUrl('t/j/x', 60)).toBeUndefined();
    const noBucket = storageWith(() =>
      Response.json({ statusCode: '404', error: 'Bucket not found' }, { status: 400 })
    );
    await expect(noBucket.storage.createSignedUrl('t/j/x', 60)).rejects.toMatchObject({ code: 'storage_unavailable' });
    const refused = storageWith(() => new Response('{}', { status: 403 }));
    await expect(refused.storage.upload('t/j/x', new Uint8Array([1]), 'text/plain')).rejects.toMatchObject({
      code: 'storage_unavailable',
      message: 'Storage refused the service key on upload',
    });
    const malformed = storageWith(() => Response.json({ url: 'elsewhere' }));
    await expect(malformed.storage.createSignedUrl('t/j/x', 60)).rejects.toMatchObject({
      message: 'Storage answered sign without a signedURL',
    });
  });
});
