// Embeddings for OpenAI-format upstreams: pass-through with the upstream model.
import type { EmbeddingsRequest, EmbeddingsResponse } from '../../openai/types.ts';
import type { EmbeddingsCallContext } from '../types.ts';
import { readUpstreamBody } from '../upstream-body.ts';
import { openAIEmbeddingsResponseSchema } from './wire.ts';

export function buildOpenAIEmbeddingsBody(
  req: EmbeddingsRequest,
  ctx: EmbeddingsCallContext,
  options: { includeModel: boolean },
): Record<string, unknown> {
  const { model: _publicModel, ...rest } = req;
  return options.includeModel ? { ...rest, model: ctx.upstreamModel } : rest;
}

export function parseOpenAIEmbeddingsResponse(
  body: unknown,
  ctx: EmbeddingsCallContext,
  provider: string,
): EmbeddingsResponse {
  const parsed = readUpstreamBody(openAIEmbeddingsResponseSchema, body, provider);
  // some compatible servers omit usage; zero is what they reported
  const promptTokens = parsed.usage?.prompt_tokens ?? 0;
  return {
    object: 'list',
    data: parsed.data.map((item) => ({ object: 'embedding', index: item.index, embedding: item.embedding })),
    model: ctx.publicModel,
    usage: { prompt_tokens: promptTokens, total_tokens: parsed.usage?.total_tokens ?? promptTokens },
  };
}
