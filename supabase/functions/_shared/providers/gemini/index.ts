import type { ProviderAdapter } from '../types.ts';
import { jsonGet, jsonPost } from '../http.ts';
import { geminiHeaders, geminiModelsUrl, geminiModelUrl } from './api.ts';
import { buildGeminiGenerateContentBody, parseGeminiGenerateContentResponse } from './chat.ts';
import { GeminiStreamTranslator } from './chat-stream.ts';
import { buildGeminiBatchEmbedBody, parseGeminiBatchEmbedResponse } from './embeddings.ts';
import { parseGeminiError } from './errors.ts';

export const geminiAdapter: ProviderAdapter = {
  kind: 'gemini',
  supports: { chat: true, embeddings: true, streaming: true, tools: true, multipleChoices: true },
  buildChatRequest: (req, ctx) =>
    jsonPost(
      geminiModelUrl(ctx.endpoint, ctx.upstreamModel, ctx.stream ? 'streamGenerateContent?alt=sse' : 'generateContent'),
      geminiHeaders(ctx.apiKey),
      buildGeminiGenerateContentBody(req),
      ctx.stream,
    ),
  parseChatResponse: parseGeminiGenerateContentResponse,
  createStreamTranslator: (ctx) => new GeminiStreamTranslator(ctx),
  buildEmbeddingsRequest: (req, ctx) =>
    jsonPost(
      geminiModelUrl(ctx.endpoint, ctx.upstreamModel, 'batchEmbedContents'),
      geminiHeaders(ctx.apiKey),
      buildGeminiBatchEmbedBody(req, ctx),
    ),
  parseEmbeddingsResponse: parseGeminiBatchEmbedResponse,
  buildHealthProbe: (endpoint, apiKey) => jsonGet(geminiModelsUrl(endpoint), geminiHeaders(apiKey)),
  parseError: parseGeminiError,
};
