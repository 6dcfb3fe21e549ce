// POST /v1/messages in Anthropic's format, streamed or not: the pipeline's Messages dialect.
// To an Anthropic upstream the request passes through (only `model` changes)
// and the answer comes back as the upstream sent it; to any other provider it
// goes through that provider's chat adapter (anthropic-translate.ts).
import { type AnthropicMessagesRequest, parseAnthropicMessagesRequest } from '../../_shared/anthropic/schemas.ts';
import { ANTHROPIC_PROVIDER_NAME, anthropicHeaders, anthropicUrl } from '../../_shared/providers/anthropic/api.ts';
import { anthropicPromptUsage } from '../../_shared/providers/anthropic/usage.ts';
import { anthropicMessageResponseSchema } from '../../_shared/providers/anthropic/wire.ts';
import { getProviderAdapter } from '../../_shared/providers/registry.ts';
import type { UpstreamRequest } from '../../_shared/providers/types.ts';
import { readUpstreamBody } from '../../_shared/providers/upstream-body.ts';
import type { ModelCapability } from '../../_shared/router/catalog.ts';
import { countTextTokens } from '../../_shared/router/tokens.ts';
import type { Attempt, Dialect } from '../pipeline.ts';
import type { TokenUsage } from '../stream.ts';
import { ForwardedMessagesStream, TranslatedMessagesStream } from './anthropic-messages-stream.ts';
import { estimateAnthropicPromptTokens, toAnthropicMessage, toChatRequest } from './anthropic-translate.ts';
import { chatCallContext, chatTokenUsage, mapped, validated } from './common.ts';
import type { RateLimitStatus } from '../../_shared/economics/ledger.ts';

/** The validated request, the client's JSON as it came (what a pass-through sends), and the headers it forwards. */
export interface MessagesWire {
  request: AnthropicMessagesRequest;
  raw: Record<string, unknown>;
  version?: string;
  beta?: string;
}

export interface MessagesAnswer {
  body: Record<string, unknown>;
  usage: TokenUsage;
}

function requiredCapabilities(request: AnthropicMessagesRequest): ModelCapability[] {
  const requires: ModelCapability[] = ['chat'];
  if (request.stream) requires.push('stream');
  if (request.tools && request.tools.length > 0) requires.push('tools');
  const images = request.messages.some((m) => Array.isArray(m.content) && m.content.some((b) => b.type === 'image'));
  if (images) requires.push('vision');
  return requires;
}

const isAnthropic = (attempt: Attempt<MessagesWire>) => attempt.candidate.provider.kind === 'anthropic';
const adapterOf = (attempt: Attempt<MessagesWire>) => getProviderAdapter(attempt.candidate.provider.kind);
const messageId = (attempt: Attempt<MessagesWire>) => `msg_${attempt.requestId}`;

/** The client's body with the upstream model: every other field and block as the client sent it. */
function passThroughRequest(attempt: Attempt<MessagesWire>): UpstreamRequest {
  const { wire } = attempt.request;
  const { provider } = attempt.candidate;
  const endpoint = { kind: provider.kind, baseUrl: provider.baseUrl, apiVersion: provider.apiVersion };
  const headers: Record<string, string> = {
    ...anthropicHeaders(endpoint, attempt.apiKey),
    'content-type': 'application/json',
    accept: attempt.request.stream ? 'text/event-stream' : 'application/json',
  };
  if (wire.version) headers['anthropic-version'] = wire.version;
  if (wire.beta) headers['anthropic-beta'] = wire.beta;
  return {
    url: anthropicUrl(endpoint, 'v1/messages'),
    method: 'POST',
    headers,
    body: JSON.stringify({ ...wire.raw, model: attempt.candidate.model.upstreamModel }),
  };
}

/**
 * anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset} as Anthropic
 * sends them (reset: an RFC 3339 time), for the limits the caller has.
 */
function anthropicRateLimitHeaders(status: RateLimitStatus, now: Date): Record<string, string> {
  const headers: Record<string, string> = {};
  const reset = new Date(now.getTime() + status.reset_seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const limits = [
    ['requests', status.limit_requests, status.remaining_requests],
    ['tokens', status.limit_tokens, status.remaining_tokens],
  ] as const;
  for (const [kind, limit, remaining] of limits) {
    if (limit === null) continue;
    headers[`anthropic-ratelimit-${kind}-limit`] = String(limit);
    headers[`anthropic-ratelimit-${kind}-remaining`] = String(Math.max(0, remaining ?? 0));
    headers[`anthropic-ratelimit-${kind}-reset`] = reset;
  }
  return headers;
}

export const anthropicMessages: Dialect<MessagesWire, MessagesAnswer> = {
  name: 'anthropic_messages',
  parse(body, headers) {
    const request = validated(parseAnthropicMessagesRequest(body));
    const wire: MessagesWire = {
      request,
      raw: body as Record<string, unknown>,
      version: headers.get('anthropic-version') ?? undefined,
      beta: headers.get('anthropic-beta') ?? undefined,
    };
    return {
      wire,
      alias: request.model,
      requires: requiredCapabilities(request),
      promptTokens: estimateAnthropicPromptTokens(request),
      maxOutputTokens: request.max_tokens,
      stream: request.stream === true,
    };
  },
  withMaxTokens: (wire, maxTokens) => ({
    ...wire,
    request: { ...wire.request, max_tokens: maxTokens },
    raw: { ...wire.raw, max_tokens: maxTokens },
  }),
  upstreamRequest(attempt) {
    if (isAnthropic(attempt)) return passThroughRequest(attempt);
    const ctx = chatCallContext(attempt, true);
    return mapped(() =>
      adapterOf(attempt).buildChatRequest(toChatRequest(attempt.request.wire.request, ctx.stream), ctx)
    );
  },
  answer(body, attempt) {
    if (isAnthropic(attempt)) {
      // Read for usage only: the client gets the upstream's message as it is.
      const { usage } = readUpstreamBody(anthropicMessageResponseSchema, body, ANTHROPIC_PROVIDER_NAME);
      return {
        body: body as Record<string, unknown>,
        usage: { ...anthropicPromptUsage(usage), completionTokens: usage.output_tokens ?? 0 },
      };
    }
    const chat = adapterOf(attempt).parseChatResponse(body, chatCallContext(attempt, true));
    const message = toAnthropicMessage(chat, messageId(attempt), attempt.request.alias);
    const text = chat.choices.map((choice) => choice.message.content ?? '').join('');
    return { body: message, usage: chatTokenUsage(chat.usage, () => countTextTokens(text)) };
  },
  usage: (answer) => answer.usage,
  render: (c, answer) => c.json(answer.body),
  rateLimitHeaders: anthropicRateLimitHeaders,
  streamSource(body, attempt) {
    const provider = attempt.candidate.provider.slug;
    if (isAnthropic(attempt)) return new ForwardedMessagesStream(body, provider);
    const translator = adapterOf(attempt).createStreamTranslator(chatCallContext(attempt, true));
    return new TranslatedMessagesStream(body, translator, provider, {
      id: messageId(attempt),
      model: attempt.request.alias,
      estimatedInputTokens: attempt.request.promptTokens,
    });
  },
};
