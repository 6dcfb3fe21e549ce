import type { EmbeddingsRequest } from '../../openai/types.ts';
import type { EmbeddingsCallContext, UpstreamRequest } from '../types.ts';
import { jsonPost } from '../http.ts';
import { buildOpenAIEmbeddingsBody } from '../openai/embeddings.ts';
import { azureDeploymentUrl, azureHeaders } from './api.ts';

export function buildAzureEmbeddingsRequest(req: EmbeddingsRequest, ctx: EmbeddingsCallContext): UpstreamRequest {
  return jsonPost(
    azureDeploymentUrl(ctx.endpoint, ctx.upstreamModel, 'embeddings'),
    azureHeaders(ctx.apiKey),
    buildOpenAIEmbeddingsBody(req, ctx, { includeModel: false }),
  );
}
