import { describe, expect, it } from 'vitest';
import type { Clock } from '../../../supabase/functions/_shared/clock.ts';
import { HttpError } from '../../../supabase/functions/_shared/errors.ts';
import { LocalKms } from '../../../supabase/functions/_shared/kms/local-kms.ts';
import { createJsonLogger } from '../../../supabase/functions/_shared/logger.ts';
import { sealSecret, type SecretBinding } from '../../../supabase/functions/_shared/vault/envelope.ts';
import type { KeyStatus, KeyStore, StoredKeyVersion } from '../../../supabase/functions/_shared/vault/key-store.ts';
import { createProviderKeyResolver } from '../../../supabase/functions/_shared/vault/resolver.ts';

const kms = new LocalKms([{ kid: 'unit-1', key: crypto.getRandomValues(new Uint8Array(32)) }]);
const tenantA = '0aaa0000-0000-4000-8000-00000000000a';
const tenantB = '0bbb0000-0000-4000-8000-00000000000b';

/** An in-memory key store with the SQL store's semantics, counting what the resolver asks of it. */
class MemoryKeyStore implements KeyStore {
  versions: (StoredKeyVersion & { graceUntil?: number })[] = [];
  decrypts: { rowId: string; actor: string; requestId?: string }[] = [];
  lookups = 0;
  sweeps = 0;
  failAudit = false;
  constructor(private readonly clock: Clock) {}

  async add(binding: SecretBinding, secret: string, status: KeyStatus = 'active', graceUntil?: number) {
    const version = {
      rowId: crypto.randomUUID(),
      binding,
      sealed: await sealSecret(kms, binding, secret),
      status,
      graceUntil,
    };
    this.versions.push(version);
    return version;
  }

  findActiveVersion(tenantId: string | null, provider: string, label: string) {
    this.lookups += 1;
    const candidates = this.versions.filter((version) =>
      version.status === 'active' && version.binding.provider === provider && version.binding.label === label &&
      (version.binding.tenantId === null || version.binding.tenantId === tenantId)
    );
    return Promise.resolve(candidates.find((version) => version.binding.tenantId !== null) ?? candidates[0]);
  }

  findUsableVersion(keyId: string, version: number) {
    this.lookups += 1;
    const now = this.clock.now().getTime();
    return Promise.resolve(
      this.versions.find((stored) =>
        stored.binding.keyId === keyId && stored.binding.version === version &&
        (stored.status === 'active' || (stored.status === 'grace' && (stored.graceUntil ?? 0) > now))
      ),
    );
  }

  recordDecrypt(rowId: string, actor: string, requestId: string | undefined) {
    if (this.failAudit) return Promise.reject(new Error('audit insert failed'));
    this.decrypts.push({ rowId, actor, requestId });
    return Promise.resolve();
  }

  disableExpiredVersions() {
    this.sweeps += 1;
    return Promise.resolve(0);
  }
}

function setup(options: { cacheTtlMs?: number; maxEntries?: number } = {}) {
  let now = Date.parse('2026-11-23T10:00:00Z');
  const clock: Clock = { now: () => new Date(now) };
  const store = new MemoryKeyStore(clock);
  const logLines: string[] = [];
  const resolver = createProviderKeyResolver(
    { kms, clock, logger: createJsonLogger({ write: (line) => logLines.push(line) }) },
    { store, cacheTtlMs: options.cacheTtlMs ?? 30_000, maxEntries: options.maxEntries, actor: 'unit-test' },
  );
  return { store, resolver, logLines, advance: (ms: number) => (now += ms) };
}

const binding = (tenantId: string | null, provider: string, extra: Partial<SecretBinding> = {}): SecretBinding => ({
  keyId: crypto.randomUUID(),
  tenantId,
  provider,
  label: 'default',
  version: 1,
  ...extra,
});

describe('provider key resolution', () => {
  it("hands out the tenant's active key, else the global one, else null", async () => {
    const { store, resolver } = setup();
    const tenantKey = binding(tenantA, 'openai');
    await store.add(tenantKey, 'tenant-a-openai-secret');
    await store.add(binding(null, 'openai'), 'global-openai-secret');
    await store.add(binding(tenantA, 'openai', { label: 'batch' }), 'tenant-a-batch-secret');

    expect(await resolver.getProviderKey(tenantA, 'openai', { requestId: 'req-1' })).toEqual({
      secret: 'tenant-a-openai-secret',
      keyId: tenantKey.keyId,
      version: 1,
    });
    expect((await resolver.getProviderKey(tenantB, 'openai'))?.secret).toBe('global-openai-secret');
    expect((await resolver.getProviderKey(null, 'openai'))?.secret).toBe('global-openai-secret');
    expect((await resolver.getProviderKey(tenantA, 'openai', { label: 'batch' }))?.secret).toBe(
      'tenant-a-batch-secret',
    );
    expect(await resolver.getProviderKey(tenantA, 'anthropic')).toBeNull();
    expect(store.decrypts.map((entry) => entry.actor)).toEqual(['unit-test', 'unit-test', 'unit-test', 'unit-test']);
    expect(store.decrypts[0].requestId).toBe('req-1');
  });

  it('audits each decrypt, not each cache hit, and decrypts again after the TTL', async () => {
    const { store, resolver, advance } = setup({ cacheTtlMs: 30_000 });
    await store.add(binding(tenantA, 'openai'), 'cached-secret-value');
    for (let i = 0; i < 5; i++) {
      expect((await resolver.getProviderKey(tenantA, 'openai'))?.secret).toBe('cached-secret-value');
    }
    expect(store.decrypts).toHaveLength(1);
    advance(29_999);
    await resolver.getProviderKey(tenantA, 'openai');
    expect(store.decrypts).toHaveLength(1);
    advance(1);
    await resolver.getProviderKey(tenantA, 'openai');
    expect(store.decrypts).toHaveLength(2);
  });

  it('decrypts once for concurrent misses of one key', async () => {
    const { store, resolver } = setup();
    await store.add(binding(tenantA, 'openai'), 'single-flight-secret');
    const answers = await Promise.all(Array.from({ length: 8 }, () => resolver.getProviderKey(tenantA, 'openai')));
    expect(new Set(answers.map((answer) => answer?.secret))).toEqual(new Set(['single-flight-secret']));
    expect(store.decrypts).toHaveLength(1);
    expect(store.lookups).toBe(1);
  });

  it('a rotation reaches the cache within one TTL, or at once through evictKey', async () => {
    const { store, resolver, advance } = setup({ cacheTtlMs: 10_000 });
    const v1 = await store.add(binding(tenantA, 'openai'), 'version-one-secret');
    expect((await resolver.getProviderKey(tenantA, 'openai'))?.version).toBe(1);
    v1.status = 'grace';
    v1.graceUntil = Date.parse('2026-11-23T10:15:00Z');
    await store.add({ ...v1.binding, version: 2 }, 'version-two-secret');
    expect((await resolver.getProviderKey(tenantA, 'openai'))?.version).toBe(1);
    resolver.evictKey(v1.binding.keyId);
    expect(await resolver.getProviderKey(tenantA, 'openai')).toMatchObject({
      secret: 'version-two-secret',
      version: 2,
    });

    // In grace, the old version still decrypts for requests that started on it.
    expect((await resolver.getKeyVersion(v1.binding.keyId, 1))?.secret).toBe('version-one-secret');
    // Disabled: a resolver that has not cached it refuses at once; a cached one within its TTL.
    v1.status = 'disabled';
    expect((await resolver.getKeyVersion(v1.binding.keyId, 1))?.secret).toBe('version-one-secret');
    advance(10_000);
    expect(await resolver.getKeyVersion(v1.binding.keyId, 1)).toBeNull();
  });

  it('keeps at most maxEntries, oldest out first', async () => {
    const { store, resolver } = setup({ maxEntries: 2 });
    for (const provider of ['p-one', 'p-two', 'p-three']) {
      await store.add(binding(tenantA, provider), `${provider}-secret-value`);
      await resolver.getProviderKey(tenantA, provider);
    }
    expect(store.decrypts).toHaveLength(3);
    await resolver.getProviderKey(tenantA, 'p-three');
    await resolver.getProviderKey(tenantA, 'p-two');
    expect(store.decrypts).toHaveLength(3);
    await resolver.getProviderKey(tenantA, 'p-one');
    expect(store.decrypts).toHaveLength(4);
  });

  it('with a TTL of 0 every call decrypts, and the grace sweep runs at most once per interval', async () => {
    const { store, resolver, advance } = setup({ cacheTtlMs: 0 });
    await store.add(binding(tenantA, 'openai'), 'uncached-secret-value');
    await resolver.getProviderKey(tenantA, 'openai');
    await resolver.getProviderKey(tenantA, 'openai');
    expect(store.decrypts).toHaveLength(2);
    expect(store.sweeps).toBe(1);
    advance(5_000);
    await resolver.getProviderKey(tenantA, 'openai');
    expect(store.sweeps).toBe(2);
  });

  it('hands out nothing when the decrypt cannot be audited', async () => {
    const { store, resolver } = setup();
    await store.add(binding(tenantA, 'openai'), 'unaudited-secret-value');
    store.failAudit = true;
    await expect(resolver.getProviderKey(tenantA, 'openai')).rejects.toThrow('audit insert failed');
    store.failAudit = false;
    expect((await resolver.getProviderKey(tenantA, 'openai'))?.secret).toBe('unaudited-secret-value');
  });

  it('a row moved to another key fails its integrity check: a 500 and a log line without the secret', async () => {
    const { store, resolver, logLines } = setup();
    const original = await store.add(binding(tenantA, 'openai'), 'moved-secret-value-123');
    // Row swap: tenant B's row now holds tenant A's sealed secret.
    store.versions.push({
      ...original,
      rowId: crypto.randomUUID(),
      binding: { ...original.binding, tenantId: tenantB, keyId: crypto.randomUUID() },
    });
    original.status = 'disabled';
    const error = await resolver.getProviderKey(tenantB, 'openai').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).code).toBe('internal_error');
    expect(store.decrypts).toHaveLength(0);
    expect(logLines.some((line) => line.includes('secure_key_integrity_failed'))).toBe(true);
    expect(logLines.join('\n')).not.toContain('moved-secret-value-123');
  });
});
