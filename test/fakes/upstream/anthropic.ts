// Anthropic Messages API wire format for the fake: messages (JSON and SSE), models, errors.
import { z } from 'zod';
import { answer, argumentPieces, type Conversation, type FakeAnswer, textPieces } from './conversation.ts';
import { type FakeReply, type HandlerEnv, json, sse, type SseOut } from './reply.ts';

const blockSchema = z.looseObject({
  type: z.string(),
  text: z.string().optional(),
  content: z.union([z.string(), z.array(z.looseObject({ type: z.string(), text: z.string().optional() }))]).optional(),
});
const messagesBodySchema = z.looseObject({
  model: z.string(),
  max_tokens: z.number().int().positive(),
  messages: z.array(z.looseObject({ role: z.string(), content: z.union([z.string(), z.array(blockSchema)]) })).min(1),
  system: z.union([z.string(), z.array(z.looseObject({ type: z.string(), text: z.string() }))]).optional(),
  tools: z.array(z.looseObject({ name: z.string(), input_schema: z.record(z.string(), z.unknown()) })).optional(),
  stream: z.boolean().optional(),
  thinking: z.looseObject({ type: z.string() }).optional(),
});

/** With extended thinking on, the answer starts with this block (a real signature is opaque bytes in base64). */
export const FAKE_THINKING = {
  type: 'thinking',
  thinking: 'The user said something; I echo it.',
  signature: 'EqQBCkYIBxgCKkDfake+signature/with=base64+chars==',
};
/** Prompt-cache tokens the fake reports when any block of the request carries cache_control. */
export const FAKE_CACHE_USAGE = { cache_creation_input_tokens: 2, cache_read_input_tokens: 3 };

function cacheUsage(rawBody: unknown) {
  return JSON.stringify(rawBody).includes('"cache_control"')
    ? FAKE_CACHE_USAGE
    : { cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
}

type MessagesBody = z.infer<typeof messagesBodySchema>;

export function anthropicError(
  status: number,
  type: string,
  message: string,
  headers?: Record<string, string>,
): FakeReply {
  return json(status, { type: 'error', error: { type, message } }, headers);
}

export function anthropicFaultReply(status: number, message?: string): FakeReply {
  const type = status === 429
    ? 'rate_limit_error'
    : status === 529
    ? 'overloaded_error'
    : status === 400
    ? 'invalid_request_error'
    : status === 401
    ? 'authentication_error'
    : status === 403
    ? 'permission_error'
    : status === 404
    ? 'not_found_error'
    : status === 413
    ? 'request_too_large'
    : 'api_error';
  const fallback = type === 'overloaded_error'
    ? 'Overloaded'
    : type === 'rate_limit_error'
    ? 'Number of requests has exceeded your rate limit'
    : 'Internal server error';
  return anthropicError(status, type, message ?? fallback);
}

function blockText(block: z.infer<typeof blockSchema>): string {
  if (block.type === 'text') return block.text ?? '';
  if (block.type === 'tool_result') {
    const content = block.content;
    return typeof content === 'string' ? content : (content ?? []).map((c) => c.text ?? '').join('');
  }
  return '';
}

function conversationOf(body: MessagesBody): Conversation {
  const texts: string[] = [];
  if (typeof body.system === 'string') texts.push(body.system);
  else for (const block of body.system ?? []) texts.push(block.text);
  let last: Conversation['last'] = { kind: 'user_text', text: '' };
  for (const message of body.messages) {
    const blocks = typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content;
    const text = blocks.map(blockText).join('');
    texts.push(text);
    if (message.role === 'user') {
      last = { kind: blocks.some((b) => b.type === 'tool_result') ? 'tool_result' : 'user_text', text };
    }
  }
  return { texts, last, toolNames: (body.tools ?? []).map((t) => t.name), maxTokens: body.max_tokens, json: false };
}

export function handleAnthropicMessages(rawBody: unknown, env: HandlerEnv): FakeReply {
  const parsed = messagesBodySchema.safeParse(rawBody);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return anthropicError(
      400,
      'invalid_request_error',
      `${issue?.path.join('.') ?? 'body'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const body = parsed.data;
  // System turns between messages come with the beta Claude Code sends (mid-conversation-system-…).
  const systemTurns = env.anthropicBetas.some((beta) => beta.startsWith('mid-conversation-system'));
  const badRole = body.messages.find((m) =>
    m.role !== 'user' && m.role !== 'assistant' && !(systemTurns && m.role === 'system')
  );
  if (badRole) {
    return anthropicError(
      400,
      'invalid_request_error',
      `messages: Unexpected role "${badRole.role}". The Messages API accepts a top-level \`system\` parameter, not "system" as an input message role.`,
    );
  }
  const result = answer(conversationOf(body));
  const id = `msg_fake_${env.seq}`;
  const toolId = `toolu_fake_${env.seq}`;
  const stopReason = result.kind === 'tool_call' ? 'tool_use' : result.truncated ? 'max_tokens' : 'end_turn';
  const thinking = body.thinking?.type === 'enabled';
  const cache = cacheUsage(rawBody);
  if (body.stream !== true) {
    const content = [
      ...(thinking ? [FAKE_THINKING] : []),
      ...(result.kind === 'text'
        ? [{ type: 'text', text: result.text }]
        : [{ type: 'tool_use', id: toolId, name: result.name, input: JSON.parse(result.arguments) as unknown }]),
    ];
    return json(200, {
      id,
      type: 'message',
      role: 'assistant',
      model: body.model,
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      usage: { input_tokens: result.promptTokens, output_tokens: result.completionTokens, ...cache },
    });
  }
  const event = (type: string, data: Record<string, unknown>): SseOut => ({
    event: type,
    data: JSON.stringify({ type, ...data }),
  });
  return sse([
    event('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: result.promptTokens, output_tokens: 1, ...cache },
      },
    }),
    ...(thinking ? thinkingEvents(event) : []),
    ...contentEvents(result, toolId, event, thinking ? 1 : 0),
    event('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: result.completionTokens },
    }),
    event('message_stop', {}),
  ]);
}

/** A thinking block as Anthropic streams it: thinking deltas, then the signature. */
function thinkingEvents(event: (type: string, data: Record<string, unknown>) => SseOut): SseOut[] {
  return [
    event('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
    ...textPieces(FAKE_THINKING.thinking).map((thinking) =>
      event('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking } })
    ),
    event('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: FAKE_THINKING.signature } }),
    event('content_block_stop', { index: 0 }),
  ];
}

function contentEvents(
  result: FakeAnswer,
  toolId: string,
  event: (type: string, data: Record<string, unknown>) => SseOut,
  index: number,
): SseOut[] {
  if (result.kind === 'text') {
    return [
      event('content_block_start', { index, content_block: { type: 'text', text: '' } }),
      event('ping', {}),
      ...textPieces(result.text).map((text) =>
        event('content_block_delta', { index, delta: { type: 'text_delta', text } })
      ),
      event('content_block_stop', { index }),
    ];
  }
  return [
    event('content_block_start', {
      index,
      content_block: { type: 'tool_use', id: toolId, name: result.name, input: {} },
    }),
    event('ping', {}),
    ...argumentPieces(result.arguments).map((partial_json) =>
      event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } })
    ),
    event('content_block_stop', { index }),
  ];
}

export function handleAnthropicModels(env: HandlerEnv): FakeReply {
  const data = env.models.map((id) => ({
    type: 'model',
    id,
    display_name: id,
    created_at: new Date(env.created * 1000).toISOString(),
  }));
  return json(200, {
    data,
    has_more: false,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
  });
}
