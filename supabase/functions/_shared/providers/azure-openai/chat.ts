// Azure speaks the OpenAI chat format; only the URL and auth differ, and the deployment
// (= upstreamModel) in the URL picks the model, so the body carries none.
import type { ChatCompletionRequest } from '../../openai/types.ts';
import type { ChatCallContext, UpstreamRequest } from '../types.ts';
import { jsonPost } from '../http.ts';
import { buildOpenAIChatBody } from '../openai/chat.ts';
import { azureDeploymentUrl, azureHeaders } from './api.ts';

export function buildAzureChatRequest(req: ChatCompletionRequest, ctx: ChatCallContext): UpstreamRequest {
  return jsonPost(
    azureDeploymentUrl(ctx.endpoint, ctx.upstreamModel, 'chat/completions'),
    azureHeaders(ctx.apiKey),
    buildOpenAIChatBody(req, ctx, { includeModel: false }),
    ctx.stream,
  );
}
