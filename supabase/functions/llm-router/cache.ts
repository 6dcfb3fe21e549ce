import type { Context } from 'hono';
import type { TenantContext } from '../_shared/auth/tenant.ts';
import { cachedResponseAsChunks } from '../_shared/economics/response-cache.ts';
import type { AppEnv } from '../_shared/hono-env.ts';
import type { ChatCompletionRequest, ChatCompletionResponse } from '../_shared/openai/types.ts';
import { requestIdAlreadyUsed } from '../_shared/request-id.ts';
import { encodeSseEvent } from '../_shared/sse.ts';
import type { RouterServices } from './services.ts';

/**
 * Answers from the response cache: no upstream call, no reservation, a usage
 * record marked as a cache hit at zero cost. A streaming request gets the
 * stored answer as SSE chunks.
 */
export async function answerFromCache(
  c: Context<AppEnv>,
  services: RouterServices,
  tenant: TenantContext,
  request: ChatCompletionRequest,
  cached: ChatCompletionResponse,
  started: number,
): Promise<Response> {
  const requestId = c.get('requestId');
  const response: ChatCompletionResponse = {
    ...cached,
    id: `chatcmpl-${requestId}`,
    created: Math.floor(services.deps.clock.now().getTime() / 1000),
    model: request.model,
  };
  const [recorded] = await services.deps.db<{ hit: unknown }[]>`
    select public.record_cache_hit(${requestId}, ${tenant.tenantId}, ${tenant.apiKeyId ?? null}, ${
    tenant.userId ?? null
  },
      ${request.model}, ${response.usage?.prompt_tokens ?? 0}, ${response.usage?.completion_tokens ?? 0},
      ${Math.round(services.deps.clock.now().getTime() - started)}) as hit`;
  // No row: the id is already used (a reservation or another usage record has it).
  if (recorded?.hit == null) throw requestIdAlreadyUsed();
  c.header('x-switchyard-cache', 'hit');
  c.header('x-switchyard-route-reason', 'cache');
  if (!request.stream) return c.json(response);
  const body = cachedResponseAsChunks(response, request.stream_options?.include_usage === true)
    .map((chunk) => new TextDecoder().decode(encodeSseEvent(JSON.stringify(chunk))))
    .join('') + new TextDecoder().decode(encodeSseEvent('[DONE]'));
  c.header('content-type', 'text/event-stream; charset=utf-8');
  c.header('cache-control', 'no-cache');
  return c.body(body, 200);
}
