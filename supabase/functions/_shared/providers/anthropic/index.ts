// Anthropic Messages API adapter. No embeddings endpoint exists, so none is offered.
import type { ProviderAdapter } from '../types.ts';
import { jsonGet, jsonPost } from '../http.ts';
import { anthropicHeaders, anthropicUrl } from './api.ts';
import { buildAnthropicMessagesBody, parseAnthropicMessagesResponse } from './chat.ts';
import { AnthropicStreamTranslator } from './chat-stream.ts';
import { parseAnthropicError } from './errors.ts';

export const anthropicAdapter: ProviderAdapter = {
  kind: 'anthropic',
  supports: { chat: true, embeddings: false, streaming: true, tools: true, multipleChoices: false },
  buildChatRequest: (req, ctx) =>
    jsonPost(
      anthropicUrl(ctx.endpoint, 'v1/messages'),
      anthropicHeaders(ctx.endpoint, ctx.apiKey),
      buildAnthropicMessagesBody(req, ctx),
      ctx.stream,
    ),
  parseChatResponse: parseAnthropicMessagesResponse,
  createStreamTranslator: (ctx) => new AnthropicStreamTranslator(ctx),
  buildHealthProbe: (endpoint, apiKey) =>
    jsonGet(anthropicUrl(endpoint, 'v1/models?limit=1'), anthropicHeaders(endpoint, apiKey)),
  parseError: parseAnthropicError,
};
