// OpenAI and any OpenAI-compatible base URL (vLLM, Ollama, Groq, Together).
import type { ProviderAdapter, ProviderKind } from '../types.ts';
import { jsonGet, jsonPost } from '../http.ts';
import { openAIHeaders, openAIUrl } from './api.ts';
import { buildOpenAIChatBody, OpenAIStreamTranslator, parseOpenAIChatResponse } from './chat.ts';
import { buildOpenAIEmbeddingsBody, parseOpenAIEmbeddingsResponse } from './embeddings.ts';
import { parseOpenAIError } from './errors.ts';

export function createOpenAIAdapter(kind: Extract<ProviderKind, 'openai' | 'openai_compatible'>): ProviderAdapter {
  const provider = kind === 'openai' ? 'OpenAI' : 'The OpenAI-compatible upstream';
  return {
    kind,
    supports: { chat: true, embeddings: true, streaming: true, tools: true, multipleChoices: true },
    buildChatRequest: (req, ctx) =>
      jsonPost(
        openAIUrl(ctx.endpoint, 'chat/completions'),
        openAIHeaders(ctx.apiKey),
        buildOpenAIChatBody(req, ctx, { includeModel: true }),
        ctx.stream,
      ),
    parseChatResponse: (body, ctx) => parseOpenAIChatResponse(body, ctx, provider),
    createStreamTranslator: (ctx) => new OpenAIStreamTranslator(ctx, provider),
    buildEmbeddingsRequest: (req, ctx) =>
      jsonPost(
        openAIUrl(ctx.endpoint, 'embeddings'),
        openAIHeaders(ctx.apiKey),
        buildOpenAIEmbeddingsBody(req, ctx, { includeModel: true }),
      ),
    parseEmbeddingsResponse: (body, ctx) => parseOpenAIEmbeddingsResponse(body, ctx, provider),
    buildHealthProbe: (endpoint, apiKey) => jsonGet(openAIUrl(endpoint, 'models'), openAIHeaders(apiKey)),
    parseError: (status, bodyText, headers, nowMs) => parseOpenAIError(provider, status, bodyText, headers, nowMs),
  };
}
