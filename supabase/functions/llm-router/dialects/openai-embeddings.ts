// POST /v1/embeddings in OpenAI's format: the pipeline's embeddings dialect.
import { HttpError } from '../../_shared/errors.ts';
import { parseEmbeddingsRequest } from '../../_shared/openai/schemas.ts';
import type { EmbeddingsRequest, EmbeddingsResponse } from '../../_shared/openai/types.ts';
import { getProviderAdapter } from '../../_shared/providers/registry.ts';
import type { EmbeddingsCallContext } from '../../_shared/providers/types.ts';
import { countInputTokens } from '../../_shared/router/tokens.ts';
import type { Attempt, Dialect } from '../pipeline.ts';
import { validated } from './common.ts';

function embeddingsContext(
  { request, candidate, apiKey, requestId }: Attempt<EmbeddingsRequest>,
): EmbeddingsCallContext {
  const { provider, model } = candidate;
  const endpoint = { kind: provider.kind, baseUrl: provider.baseUrl, apiVersion: provider.apiVersion };
  return { upstreamModel: model.upstreamModel, publicModel: request.alias, apiKey, endpoint, requestId };
}

function embeddingsAdapter(attempt: Attempt<EmbeddingsRequest>) {
  const adapter = getProviderAdapter(attempt.candidate.provider.kind);
  if (!adapter.buildEmbeddingsRequest || !adapter.parseEmbeddingsResponse) {
    const message = `${attempt.candidate.provider.kind} providers have no embeddings API`;
    throw new HttpError('unsupported_parameter', message, { param: 'model' });
  }
  return adapter as Required<Pick<typeof adapter, 'buildEmbeddingsRequest' | 'parseEmbeddingsResponse'>>;
}

export const openAIEmbeddings: Dialect<EmbeddingsRequest, EmbeddingsResponse> = {
  name: 'openai_embeddings',
  parse(body) {
    const wire = validated(parseEmbeddingsRequest(body));
    const promptTokens = countInputTokens(wire.input);
    return { wire, alias: wire.model, requires: ['embeddings'], promptTokens, maxOutputTokens: 0, stream: false };
  },
  withMaxTokens: (wire) => wire,
  upstreamRequest: (attempt) =>
    embeddingsAdapter(attempt).buildEmbeddingsRequest(attempt.request.wire, embeddingsContext(attempt)),
  answer: (body, attempt) =>
    embeddingsAdapter(attempt).parseEmbeddingsResponse(body, embeddingsContext(attempt), attempt.request.wire),
  usage: (answer) => ({ promptTokens: answer.usage?.prompt_tokens, completionTokens: 0 }),
  render: (c, answer) => c.json(answer),
};
