import type { TenantContext } from '../auth/tenant.ts';
import type { Database } from '../db.ts';
import type { DialectName } from './ledger.ts';
import { HttpError } from '../errors.ts';
import type { ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse } from '../openai/types.ts';

// Fields that do not change the answer, left out of the cache key.
const ignoredFields = new Set(['stream', 'stream_options', 'user']);

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, field]) => field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** SHA-256 (hex) of the normalized request. */
export async function responseCacheKey(request: ChatCompletionRequest): Promise<string> {
  const relevant = Object.fromEntries(Object.entries(request).filter(([key]) => !ignoredFields.has(key)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonicalJson(relevant)));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * How long to cache this request's answer, in seconds, or 0 for no caching.
 * The `x-switchyard-cache` header opts in (`on` = the default TTL, or a number
 * of seconds) or out (`off`); otherwise the routing policy decides.
 */
export function cacheTtlSeconds(
  header: string | undefined,
  policyTtl: number | null | undefined,
  defaultTtl: number,
): number {
  if (header === undefined) return policyTtl ?? 0;
  const value = header.trim().toLowerCase();
  if (value === 'off' || value === '0') return 0;
  if (value === 'on') return defaultTtl;
  if (/^\d{1,5}$/.test(value) && Number(value) <= 86_400) return Number(value);
  throw new HttpError('validation_failed', 'x-switchyard-cache: use on, off, or a TTL of 1 to 86400 seconds', {
    param: 'x-switchyard-cache',
  });
}

export async function findCachedResponse<Answer = ChatCompletionResponse>(
  db: Database,
  tenantId: string,
  key: string,
): Promise<Answer | undefined> {
  // A read only: hits are counted in usage_records, not on this (hot) row.
  const [row] = await db<{ response: Answer }[]>`
    select response from public.response_cache
    where tenant_id = ${tenantId} and cache_key = ${key} and expires_at > now()`;
  return row?.response;
}

export async function storeCachedResponse(
  db: Database,
  tenantId: string,
  key: string,
  alias: string,
  response: unknown,
  ttlSeconds: number,
): Promise<void> {
  const stored = JSON.parse(JSON.stringify(response)) as Parameters<typeof db.json>[0];
  await db`
    insert into public.response_cache (tenant_id, cache_key, model_alias, response, expires_at)
    values (${tenantId}, ${key}, ${alias}, ${db.json(stored)}, now() + make_interval(secs => ${ttlSeconds}))
    on conflict (tenant_id, cache_key) do update
      set response = excluded.response, created_at = now(), expires_at = excluded.expires_at`;
}

export interface CacheHit {
  requestId: string;
  tenant: TenantContext;
  alias: string;
  dialect: DialectName;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
}

/**
 * Records a cache hit as a usage record at zero cost (record_cache_hit);
 * false when the request id is already used.
 */
export async function recordCacheHit(db: Database, hit: CacheHit): Promise<boolean> {
  const { tenant } = hit;
  const [recorded] = await db<{ hit: unknown }[]>`
    select public.record_cache_hit(${hit.requestId}, ${tenant.tenantId}, ${tenant.apiKeyId ?? null}, ${
    tenant.userId ?? null
  },
      ${hit.alias}, ${hit.promptTokens}, ${hit.completionTokens}, ${Math.round(hit.latencyMs)}, ${hit.dialect}) as hit`;
  return recorded?.hit != null;
}

/** A cached answer as the chunks a stream would have carried (one per choice, then usage if asked). */
export function cachedResponseAsChunks(response: ChatCompletionResponse, includeUsage: boolean): ChatCompletionChunk[] {
  const base = {
    id: response.id,
    object: 'chat.completion.chunk' as const,
    created: response.created,
    model: response.model,
  };
  const chunks: ChatCompletionChunk[] = response.choices.map((choice) => ({
    ...base,
    choices: [{
      index: choice.index,
      delta: {
        role: 'assistant',
        content: choice.message.content ?? null,
        ...(choice.message.tool_calls
          ? {
            tool_calls: choice.message.tool_calls.map((call, index) => ({
              index,
              id: call.id,
              type: 'function' as const,
              function: { name: call.function.name, arguments: call.function.arguments },
            })),
          }
          : {}),
      },
      finish_reason: choice.finish_reason,
      logprobs: null,
    }],
  }));
  if (includeUsage && response.usage) chunks.push({ ...base, choices: [], usage: response.usage });
  return chunks;
}
