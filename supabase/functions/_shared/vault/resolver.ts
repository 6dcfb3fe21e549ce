import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db.ts';
import { HttpError } from '../errors.ts';
import type { Kms } from '../kms/kms.ts';
import type { Logger } from '../logger.ts';
import { openSecret, SecretIntegrityError } from './envelope.ts';
import { createSqlKeyStore, type KeyStore, type StoredKeyVersion } from './key-store.ts';

/** A decrypted provider key: hand it to the upstream call, never to a log or a response. */
export interface ProviderKey {
  secret: string;
  /** The logical key (secure_keys.key_id). */
  keyId: string;
  version: number;
}

export interface ProviderKeyLookupOptions {
  /** Recorded in the decrypt audit. */
  requestId?: string;
  /** Default 'default'. */
  label?: string;
}

export interface ProviderKeyResolver {
  /**
   * The tenant's active key for the provider (label 'default' unless asked),
   * else the global one; null when neither exists. Decrypts on a cache miss
   * (audited), answers from the cache otherwise.
   */
  getProviderKey(
    tenantId: string | null,
    provider: string,
    options?: ProviderKeyLookupOptions,
  ): Promise<ProviderKey | null>;
  /**
   * One version while it is active or in grace (a request that started on it
   * may finish on it); null once it is disabled or its grace is over.
   */
  getKeyVersion(keyId: string, version: number, options?: { requestId?: string }): Promise<ProviderKey | null>;
  /** Drops this key's cached secrets (a rotation or disable in this isolate); other isolates follow within the TTL. */
  evictKey(keyId: string): void;
  clear(): void;
}

export interface ProviderKeyResolverDependencies {
  kms: Kms;
  clock: Clock;
  logger: Logger;
  /** Needed unless `options.store` is given. */
  db?: Database;
  /** `vault.cacheTtlMs` is the default TTL. */
  config?: Pick<Config, 'vault'>;
}

export interface ProviderKeyResolverOptions {
  /** How long a decrypted key (or the absence of one) is reused; 0 disables the cache. Default: config, else 30 s. */
  cacheTtlMs?: number;
  /** Most cached entries; the oldest go first. Default 256. */
  maxEntries?: number;
  /** Who the decrypt audit names. Default 'llm-router'. */
  actor?: string;
  /** Least time between two lazy grace-expiry sweeps. Default: the TTL, at least 5 s. */
  sweepIntervalMs?: number;
  store?: KeyStore;
}

function noDatabase(): never {
  throw new Error('createProviderKeyResolver needs deps.db or options.store');
}

interface CacheEntry {
  value: ProviderKey | null;
  keyId: string | null;
  expiresAt: number;
}

/**
 * The key resolver the LLM router uses. Every isolate keeps a small bounded
 * cache with a short TTL, so a rotation or a disable reaches every isolate
 * within one TTL without a database round trip per request; each decrypt
 * (not each cache hit) writes a `decrypt` row to secure_keys_audit, and a
 * secret is never handed out unless that row was written.
 */
export function createProviderKeyResolver(
  deps: ProviderKeyResolverDependencies,
  options: ProviderKeyResolverOptions = {},
): ProviderKeyResolver {
  const ttlMs = options.cacheTtlMs ?? deps.config?.vault.cacheTtlMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 256;
  const actor = options.actor ?? 'llm-router';
  const sweepIntervalMs = options.sweepIntervalMs ?? Math.max(ttlMs, 5_000);
  const store = options.store ?? createSqlKeyStore(deps.db ?? noDatabase());

  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<ProviderKey | null>>();
  let lastSweepAt = Number.NEGATIVE_INFINITY;
  const now = () => deps.clock.now().getTime();

  function cached(cacheKey: string): CacheEntry | undefined {
    const entry = cache.get(cacheKey);
    if (!entry) return undefined;
    if (entry.expiresAt <= now()) {
      cache.delete(cacheKey);
      return undefined;
    }
    return entry;
  }

  function remember(cacheKey: string, value: ProviderKey | null) {
    if (ttlMs <= 0) return;
    if (cache.size >= maxEntries) {
      const at = now();
      for (const [key, entry] of cache) if (entry.expiresAt <= at) cache.delete(key);
      // Still full: drop the oldest entries (a Map iterates in insertion order).
      for (const key of cache.keys()) {
        if (cache.size < maxEntries) break;
        cache.delete(key);
      }
    }
    cache.set(cacheKey, { value, keyId: value?.keyId ?? null, expiresAt: now() + ttlMs });
  }

  /** One load per cache key at a time: a cold cache under load decrypts (and audits) once. */
  function once(cacheKey: string, load: () => Promise<ProviderKey | null>): Promise<ProviderKey | null> {
    const pending = inFlight.get(cacheKey);
    if (pending) return pending;
    const started = load().then((value) => {
      remember(cacheKey, value);
      return value;
    }).finally(() => inFlight.delete(cacheKey));
    inFlight.set(cacheKey, started);
    return started;
  }

  async function sweepExpiredGrace() {
    if (now() - lastSweepAt < sweepIntervalMs) return;
    lastSweepAt = now();
    try {
      await store.disableExpiredVersions();
    } catch (error) {
      // Readers already treat expired grace as disabled; the sweep only tidies rows and audit.
      deps.logger.warn('key_grace_sweep_failed', { error_name: error instanceof Error ? error.name : 'unknown' });
    }
  }

  async function decrypt(stored: StoredKeyVersion, requestId: string | undefined): Promise<ProviderKey> {
    let secret: string;
    try {
      secret = await openSecret(deps.kms, stored.binding, stored.sealed);
    } catch (error) {
      if (error instanceof SecretIntegrityError) {
        deps.logger.error('secure_key_integrity_failed', {
          request_id: requestId,
          key_id: stored.binding.keyId,
          version: stored.binding.version,
        });
        throw new HttpError('internal_error', 'a stored provider key failed its integrity check');
      }
      throw error;
    }
    await store.recordDecrypt(stored.rowId, actor, requestId);
    return { secret, keyId: stored.binding.keyId, version: stored.binding.version };
  }

  return {
    async getProviderKey(tenantId, provider, lookup = {}) {
      const label = lookup.label ?? 'default';
      const cacheKey = `provider\u0000${tenantId ?? ''}\u0000${provider}\u0000${label}`;
      const hit = cached(cacheKey);
      if (hit) return hit.value;
      return await once(cacheKey, async () => {
        await sweepExpiredGrace();
        const stored = await store.findActiveVersion(tenantId, provider, label);
        return stored ? await decrypt(stored, lookup.requestId) : null;
      });
    },

    async getKeyVersion(keyId, version, lookup = {}) {
      const cacheKey = `version\u0000${keyId}\u0000${version}`;
      const hit = cached(cacheKey);
      if (hit) return hit.value;
      return await once(cacheKey, async () => {
        const stored = await store.findUsableVersion(keyId, version);
        return stored ? await decrypt(stored, lookup.requestId) : null;
      });
    },

    evictKey(keyId) {
      for (const [key, entry] of cache) if (entry.keyId === keyId) cache.delete(key);
    },

    clear() {
      cache.clear();
    },
  };
}
