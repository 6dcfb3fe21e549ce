import type { Clock } from '../clock.ts';
import type { Caller } from './caller.ts';

type ApiKeyCaller = Extract<Caller, { kind: 'api_key' }>;

interface Entry {
  caller: ApiKeyCaller;
  expiresAt: number;
}

const maxEntries = 10_000;

/**
 * Recently resolved tenant API keys for `ttlMs`: the lookup is one database
 * round trip on every LLM request otherwise. Keyed by the presented key
 * itself, so a hit also skips hashing it (a WebCrypto call per request): the
 * isolate holds a key in memory only while it keeps being presented, at most
 * one TTL after the last request that carried it. Only keys that resolved are
 * kept (a new key works at once). Revoking through this isolate forgets the
 * key at once; other isolates stop accepting it within one TTL. One per
 * isolate, in AppDependencies (`apiKeys`), shared by every function it serves.
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly ttlMs: number, private readonly clock: Clock) {}

  get(presentedKey: string): ApiKeyCaller | undefined {
    const entry = this.entries.get(presentedKey);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.clock.now().getTime()) {
      this.entries.delete(presentedKey);
      return undefined;
    }
    return entry.caller;
  }

  set(presentedKey: string, caller: ApiKeyCaller): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= maxEntries) {
      // Maps iterate in insertion order: drop the oldest.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(presentedKey, { caller, expiresAt: this.clock.now().getTime() + this.ttlMs });
  }

  forgetKey(apiKeyId: string): void {
    for (const [key, entry] of this.entries) if (entry.caller.apiKeyId === apiKeyId) this.entries.delete(key);
  }
}
