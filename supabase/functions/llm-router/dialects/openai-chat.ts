// POST /v1/chat/completions in OpenAI's format, streamed or not: the pipeline's chat dialect.
import { cachedResponseAsChunks, responseCacheKey } from '../../_shared/economics/response-cache.ts';
import { parseChatCompletionRequest } from '../../_shared/openai/schemas.ts';
import type { ChatCompletionRequest, ChatCompletionResponse } from '../../_shared/openai/types.ts';
import { getProviderAdapter } from '../../_shared/providers/registry.ts';
import type { ChatCallContext } from '../../_shared/providers/types.ts';
import type { ModelCapability } from '../../_shared/router/catalog.ts';
import { isInvalidJson, isRefusal } from '../../_shared/router/quality-signals.ts';
import { countPromptTokens, countTextTokens, hasImages } from '../../_shared/router/tokens.ts';
import type { Attempt, Dialect } from '../pipeline.ts';
import { chatCallContext, chatTokenUsage, mapped, validated } from './common.ts';
import { chatStreamSource, sseResponse } from './openai-chat-stream.ts';

function requiredCapabilities(request: ChatCompletionRequest): ModelCapability[] {
  const requires: ModelCapability[] = ['chat'];
  if (request.stream) requires.push('stream');
  if (request.tools && request.tools.length > 0) requires.push('tools');
  if (hasImages(request.messages)) requires.push('vision');
  if (request.response_format && request.response_format.type !== 'text') requires.push('json');
  return requires;
}

/** What an adapter needs to call this candidate for this request. */
export function chatContext(attempt: Attempt<ChatCompletionRequest>): ChatCallContext {
  return chatCallContext(attempt, attempt.request.wire.stream_options?.include_usage === true);
}

const adapterOf = (attempt: Attempt<ChatCompletionRequest>) => getProviderAdapter(attempt.candidate.provider.kind);

export const openAIChat: Dialect<ChatCompletionRequest, ChatCompletionResponse> = {
  name: 'openai_chat',
  parse(body) {
    const wire = validated(parseChatCompletionRequest(body));
    const promptTokens = countPromptTokens(wire.messages, wire.tools);
    const maxOutputTokens = wire.max_completion_tokens ?? wire.max_tokens;
    const stream = wire.stream === true;
    return { wire, alias: wire.model, requires: requiredCapabilities(wire), promptTokens, maxOutputTokens, stream };
  },
  withMaxTokens: (wire, maxTokens) => ({ ...wire, max_tokens: maxTokens, max_completion_tokens: undefined }),
  upstreamRequest: (attempt) =>
    mapped(() => adapterOf(attempt).buildChatRequest(attempt.request.wire, chatContext(attempt))),
  answer: (body, attempt) => adapterOf(attempt).parseChatResponse(body, chatContext(attempt)),
  usage: (answer) =>
    chatTokenUsage(
      answer.usage,
      () => countTextTokens(answer.choices.map((choice) => choice.message.content ?? '').join('')),
    ),
  render: (c, answer) => c.json(answer),
  outcome(request, answer) {
    const choice = answer.choices[0];
    if (!choice) return 'error';
    if (isRefusal(choice)) return 'refusal';
    const jsonMode = request.response_format !== undefined && request.response_format.type !== 'text';
    return jsonMode && isInvalidJson(choice.message.content) ? 'invalid_json' : 'ok';
  },
  streamSource: (body, attempt) =>
    chatStreamSource(body, chatContext(attempt), adapterOf(attempt), attempt.candidate.provider.slug),
  cache: {
    key: responseCacheKey,
    restore: (stored, request, requestId, created) => ({
      ...stored,
      id: `chatcmpl-${requestId}`,
      created,
      model: request.alias,
    }),
    render(c, answer, request) {
      if (!request.stream) return c.json(answer);
      return sseResponse(c, cachedResponseAsChunks(answer, request.wire.stream_options?.include_usage === true));
    },
  },
};
