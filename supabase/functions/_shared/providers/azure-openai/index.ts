import type { ProviderAdapter } from '../types.ts';
import { jsonGet } from '../http.ts';
import { OpenAIStreamTranslator, parseOpenAIChatResponse } from '../openai/chat.ts';
import { parseOpenAIEmbeddingsResponse } from '../openai/embeddings.ts';
import { azureHeaders, azureModelsUrl } from './api.ts';
import { buildAzureChatRequest } from './chat.ts';
import { buildAzureEmbeddingsRequest } from './embeddings.ts';
import { AZURE_PROVIDER_NAME, parseAzureError } from './errors.ts';

export const azureOpenAIAdapter: ProviderAdapter = {
  kind: 'azure_openai',
  supports: { chat: true, embeddings: true, streaming: true, tools: true, multipleChoices: true },
  buildChatRequest: buildAzureChatRequest,
  parseChatResponse: (body, ctx) => parseOpenAIChatResponse(body, ctx, AZURE_PROVIDER_NAME),
  createStreamTranslator: (ctx) => new OpenAIStreamTranslator(ctx, AZURE_PROVIDER_NAME),
  buildEmbeddingsRequest: buildAzureEmbeddingsRequest,
  parseEmbeddingsResponse: (body, ctx) => parseOpenAIEmbeddingsResponse(body, ctx, AZURE_PROVIDER_NAME),
  buildHealthProbe: (endpoint, apiKey) => jsonGet(azureModelsUrl(endpoint), azureHeaders(apiKey)),
  parseError: parseAzureError,
};
