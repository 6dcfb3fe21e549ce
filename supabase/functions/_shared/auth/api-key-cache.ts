import type { Caller } from './caller.ts';

type ApiKeyCaller = Extract<Caller, { kind: 'api_key' }>;

interface Entry {
  caller: ApiKeyCaller;
  expiresAt: number;
}

const maxEntries = 10_000;

/**
 * Recently resolved tenant API keys, by hash, for `ttlMs`: the lookup is one
 * database round trip on every LLM request otherwise. Only keys that resolved
 * are kept (a new key works at once). Revoking through this isolate forgets
 * the key at once; other isolates stop accepting it within one TTL.
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly ttlMs: number, private readonly now: () => number) {}

  get(keyHash: string): ApiKeyCaller | undefined {
    const entry = this.entries.get(keyHash);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(keyHash);
      return undefined;
    }
    return entry.caller;
  }

  set(keyHash: string, caller: ApiKeyCaller): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= maxEntries) {
      // Maps iterate in insertion order: drop the oldest.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(keyHash, { caller, expiresAt: this.now() + this.ttlMs });
  }

  forgetKey(apiKeyId: string): void {
    for (const [hash, entry] of this.entries) if (entry.caller.apiKeyId === apiKeyId) this.entries.delete(hash);
  }
}

/** One cache per isolate, shared by every function it serves. */
let isolateCache: ApiKeyCache | undefined;
export function isolateApiKeyCache(ttlMs: number): ApiKeyCache {
  isolateCache ??= new ApiKeyCache(ttlMs, () => Date.now());
  return isolateCache;
}

/** Called after a revocation in this isolate. */
export function forgetRevokedApiKey(apiKeyId: string): void {
  isolateCache?.forgetKey(apiKeyId);
}
