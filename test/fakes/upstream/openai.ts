// OpenAI (and Azure OpenAI) wire format for the fake: chat, embeddings, models, errors.
import { z } from 'zod';
import {
  answer,
  argumentPieces,
  type Conversation,
  type FakeAnswer,
  fakeEmbedding,
  float32Base64,
  textPieces,
} from './conversation.ts';
import { type FakeReply, type FakeRoute, type HandlerEnv, json, sse, type SseOut } from './reply.ts';

const partSchema = z.looseObject({ type: z.string(), text: z.string().optional() });
const messageSchema = z.looseObject({
  role: z.string(),
  content: z.union([z.string(), z.array(partSchema), z.null()]).optional(),
});
const chatBodySchema = z.looseObject({
  model: z.string().optional(),
  messages: z.array(messageSchema).min(1),
  tools: z.array(z.looseObject({ function: z.looseObject({ name: z.string() }) })).optional(),
  n: z.number().int().positive().optional(),
  max_tokens: z.number().int().optional(),
  max_completion_tokens: z.number().int().optional(),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  response_format: z.looseObject({ type: z.string() }).optional(),
});
const embeddingsBodySchema = z.looseObject({
  model: z.string().optional(),
  input: z.union([z.string(), z.array(z.string()), z.array(z.number()), z.array(z.array(z.number()))]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().positive().optional(),
});

type ChatBody = z.infer<typeof chatBodySchema>;

export function openAIError(status: number, message: string, type: string, code: string | null): FakeReply {
  return json(status, { error: { message, type, param: null, code } });
}

/** Azure answers `{error:{code:"<status>", message}}`. */
export function azureError(status: number, message: string): FakeReply {
  return json(status, { error: { code: String(status), message } });
}

export function openAIFaultReply(format: 'openai' | 'azure', status: number, message?: string): FakeReply {
  if (format === 'azure') return azureError(status, message ?? `Fake Azure OpenAI fault ${status}`);
  if (status === 429) {
    return openAIError(429, message ?? 'Rate limit reached for requests', 'requests', 'rate_limit_exceeded');
  }
  if (status === 400) return openAIError(400, message ?? 'Invalid request', 'invalid_request_error', null);
  if (status === 401) {
    return openAIError(401, message ?? 'Incorrect API key provided', 'invalid_request_error', 'invalid_api_key');
  }
  if (status === 404) {
    return openAIError(
      404,
      message ?? 'The model does not exist or you do not have access to it.',
      'invalid_request_error',
      'model_not_found',
    );
  }
  if (status === 503 || status === 529) {
    return openAIError(
      status,
      message ?? 'The engine is currently overloaded, please try again later',
      'server_error',
      null,
    );
  }
  return openAIError(
    status,
    message ?? 'The server had an error while processing your request. Sorry about that!',
    'server_error',
    null,
  );
}

function conversationOf(body: ChatBody): Conversation {
  const texts: string[] = [];
  let last: Conversation['last'] = { kind: 'user_text', text: '' };
  for (const message of body.messages) {
    const content = message.content;
    const text = typeof content === 'string'
      ? content
      : Array.isArray(content)
      ? content.map((p) => p.text ?? '').join('')
      : '';
    texts.push(text);
    if (message.role === 'user') last = { kind: 'user_text', text };
    if (message.role === 'tool') last = { kind: 'tool_result', text };
  }
  const format = body.response_format?.type;
  return {
    texts,
    last,
    toolNames: (body.tools ?? []).map((t) => t.function.name),
    maxTokens: body.max_completion_tokens ?? body.max_tokens,
    json: format === 'json_object' || format === 'json_schema',
  };
}

export function handleOpenAIChat(route: FakeRoute, rawBody: unknown, env: HandlerEnv): FakeReply {
  const parsed = chatBodySchema.safeParse(rawBody);
  if (!parsed.success) return invalid(route, `Invalid request body: ${parsed.error.issues[0]?.path.join('.') ?? ''}`);
  const body = parsed.data;
  if (route.format === 'openai' && body.model === undefined) {
    return invalid(route, 'you must provide a model parameter');
  }
  if (body.stream !== true && body.stream_options != null) {
    return invalid(route, "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
  }
  const model = route.model ?? body.model ?? '';
  const result = answer(conversationOf(body));
  const n = body.n ?? 1;
  const id = `chatcmpl-fake-${env.seq}`;
  const usage = usageOf(result, rawBody);
  if (body.stream !== true) {
    const choices = Array.from({ length: n }, (_, index) => ({
      index,
      message: messageOf(result, env),
      logprobs: null,
      finish_reason: finishOf(result),
    }));
    return json(200, {
      id,
      object: 'chat.completion',
      created: env.created,
      model,
      choices,
      usage,
      system_fingerprint: 'fp_fake',
    });
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const base = { id, object: 'chat.completion.chunk', created: env.created, model, system_fingerprint: 'fp_fake' };
  const chunk = (choices: unknown[]): SseOut => ({
    data: JSON.stringify({ ...base, choices, ...(includeUsage ? { usage: null } : {}) }),
  });
  const events: SseOut[] = [];
  if (route.format === 'azure') {
    // Azure opens with a content-filter chunk that has no choices
    events.push({
      data: JSON.stringify({
        id: '',
        object: '',
        created: 0,
        model: '',
        choices: [],
        prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }],
      }),
    });
  }
  for (const delta of deltasOf(result, env)) {
    events.push(
      chunk(Array.from({ length: n }, (_, index) => ({ index, delta, logprobs: null, finish_reason: null }))),
    );
  }
  events.push(
    chunk(
      Array.from({ length: n }, (_, index) => ({ index, delta: {}, logprobs: null, finish_reason: finishOf(result) })),
    ),
  );
  if (includeUsage) events.push({ data: JSON.stringify({ ...base, choices: [], usage }) });
  events.push({ data: '[DONE]' });
  return sse(events);
}

/** Prompt tokens the fake reports as read from OpenAI's prompt cache when the request names a prompt_cache_key. */
export const FAKE_CACHED_TOKENS = 2;

function usageOf(result: FakeAnswer, rawBody: unknown) {
  const keyed = typeof rawBody === 'object' && rawBody !== null && 'prompt_cache_key' in rawBody;
  return {
    prompt_tokens: result.promptTokens,
    completion_tokens: result.completionTokens,
    total_tokens: result.promptTokens + result.completionTokens,
    ...(keyed ? { prompt_tokens_details: { cached_tokens: Math.min(FAKE_CACHED_TOKENS, result.promptTokens) } } : {}),
  };
}

function finishOf(result: FakeAnswer): string {
  if (result.kind === 'tool_call') return 'tool_calls';
  return result.truncated ? 'length' : 'stop';
}

function messageOf(result: FakeAnswer, env: HandlerEnv): Record<string, unknown> {
  if (result.kind === 'text') return { role: 'assistant', content: result.text, refusal: null };
  return {
    role: 'assistant',
    content: null,
    refusal: null,
    tool_calls: [{
      id: `call_fake_${env.seq}`,
      type: 'function',
      function: { name: result.name, arguments: result.arguments },
    }],
  };
}

function deltasOf(result: FakeAnswer, env: HandlerEnv): Array<Record<string, unknown>> {
  if (result.kind === 'text') {
    return [
      { role: 'assistant', content: '', refusal: null },
      ...textPieces(result.text, env.wordsPerChunk).map((content) => ({ content })),
    ];
  }
  const [first, second] = argumentPieces(result.arguments);
  return [
    {
      role: 'assistant',
      content: null,
      tool_calls: [{
        index: 0,
        id: `call_fake_${env.seq}`,
        type: 'function',
        function: { name: result.name, arguments: '' },
      }],
    },
    { tool_calls: [{ index: 0, function: { arguments: first } }] },
    { tool_calls: [{ index: 0, function: { arguments: second } }] },
  ];
}

export function handleOpenAIEmbeddings(route: FakeRoute, rawBody: unknown, env: HandlerEnv): FakeReply {
  const parsed = embeddingsBodySchema.safeParse(rawBody);
  if (!parsed.success) return invalid(route, 'Invalid embeddings input');
  const body = parsed.data;
  const input = body.input;
  const texts: string[] = typeof input === 'string'
    ? [input]
    : input.map((item) => (typeof item === 'string' ? item : Array.isArray(item) ? item.join(' ') : String(item)));
  // a flat number[] is one tokenized input, not many
  const inputs = Array.isArray(input) && input.every((item) => typeof item === 'number') ? [input.join(' ')] : texts;
  const dimensions = body.dimensions ?? env.embeddingDimensions;
  const promptTokens = inputs.reduce((sum, text) => sum + text.trim().split(/\s+/).filter(Boolean).length, 0);
  return json(200, {
    object: 'list',
    data: inputs.map((text, index) => {
      const vector = fakeEmbedding(text, dimensions);
      return {
        object: 'embedding',
        index,
        embedding: body.encoding_format === 'base64' ? float32Base64(vector) : vector,
      };
    }),
    model: route.model ?? body.model ?? '',
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

export function handleOpenAIModels(env: HandlerEnv): FakeReply {
  return json(200, {
    object: 'list',
    data: env.models.map((id) => ({ id, object: 'model', created: env.created, owned_by: 'fake-upstream' })),
  });
}

function invalid(route: FakeRoute, message: string): FakeReply {
  return route.format === 'azure' ? azureError(400, message) : openAIError(400, message, 'invalid_request_error', null);
}
