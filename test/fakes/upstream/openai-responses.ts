// OpenAI's Responses API (/v1/responses, and Azure's /openai/v1/responses) for the fake:
// a Response object or its semantic SSE events, from the same deterministic conversation.
import { z } from 'zod';
import { answer, argumentPieces, type Conversation, textPieces } from './conversation.ts';
import { type FakeReply, type FakeRoute, type HandlerEnv, json, sse, type SseOut } from './reply.ts';
import { azureError, openAIError } from './openai.ts';

/** The reasoning item the fake answers with when the request asks for reasoning. */
export const FAKE_ENCRYPTED_REASONING = 'gAAAAfake-encrypted-reasoning==';

const partSchema = z.looseObject({ type: z.string(), text: z.string().optional() });
const itemSchema = z.looseObject({
  type: z.string().optional(),
  role: z.string().optional(),
  content: z.union([z.string(), z.array(partSchema)]).optional(),
  output: z.union([z.string(), z.array(partSchema)]).optional(),
});
const bodySchema = z.looseObject({
  model: z.string().optional(),
  input: z.union([z.string(), z.array(itemSchema)]),
  instructions: z.string().nullable().optional(),
  tools: z.array(z.looseObject({ type: z.string(), name: z.string().optional() })).optional(),
  max_output_tokens: z.number().int().nullable().optional(),
  stream: z.boolean().nullable().optional(),
  text: z.looseObject({ format: z.looseObject({ type: z.string() }).optional() }).nullable().optional(),
  reasoning: z.looseObject({}).nullable().optional(),
  include: z.array(z.string()).nullable().optional(),
});
type Body = z.infer<typeof bodySchema>;

const textOf = (content: string | { text?: string }[] | undefined) =>
  typeof content === 'string' ? content : (content ?? []).map((part) => part.text ?? '').join('');

function conversationOf(body: Body): Conversation {
  const texts: string[] = body.instructions ? [body.instructions] : [];
  let last: Conversation['last'] = { kind: 'user_text', text: '' };
  const items = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : body.input;
  for (const item of items) {
    const type = item.type ?? 'message';
    if (type === 'message') {
      const text = textOf(item.content);
      texts.push(text);
      if (item.role === 'user') last = { kind: 'user_text', text };
    } else if (type === 'function_call_output') {
      const text = textOf(item.output);
      texts.push(text);
      last = { kind: 'tool_result', text };
    }
  }
  const format = body.text?.format?.type;
  return {
    texts,
    last,
    toolNames: (body.tools ?? []).flatMap((tool) => (tool.type === 'function' && tool.name ? [tool.name] : [])),
    maxTokens: body.max_output_tokens ?? undefined,
    json: format === 'json_object' || format === 'json_schema',
  };
}

export function handleOpenAIResponses(route: FakeRoute, rawBody: unknown, env: HandlerEnv): FakeReply {
  const parsed = bodySchema.safeParse(rawBody);
  if (!parsed.success) {
    const message = `Invalid request body: ${parsed.error.issues[0]?.path.join('.') ?? ''}`;
    return route.format === 'azure'
      ? azureError(400, message)
      : openAIError(400, message, 'invalid_request_error', null);
  }
  const body = parsed.data;
  const result = answer(conversationOf(body));
  const id = `resp_fake_${env.seq}_${crypto.randomUUID().slice(0, 8)}`;
  const reasoning = body.reasoning != null
    ? [{
      id: `rs_fake_${env.seq}`,
      type: 'reasoning',
      summary: [],
      ...(body.include?.includes('reasoning.encrypted_content') ? { encrypted_content: FAKE_ENCRYPTED_REASONING } : {}),
    }]
    : [];
  const final = result.kind === 'text'
    ? {
      id: `msg_fake_${env.seq}`,
      type: 'message',
      status: 'completed',
      role: 'assistant',
      content: [{ type: 'output_text', text: result.text, annotations: [], logprobs: [] }],
    }
    : {
      id: `fc_fake_${env.seq}`,
      type: 'function_call',
      status: 'completed',
      arguments: result.arguments,
      call_id: `call_fake_${env.seq}`,
      name: result.name,
    };
  const incomplete = result.kind === 'text' && result.truncated;
  const response = {
    id,
    object: 'response',
    created_at: env.created,
    status: incomplete ? 'incomplete' : 'completed',
    incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
    error: null,
    model: route.model ?? body.model ?? '',
    output: [...reasoning, final],
    usage: {
      input_tokens: result.promptTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: result.completionTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: result.promptTokens + result.completionTokens,
    },
  };
  if (body.stream !== true) return json(200, response);

  const events: SseOut[] = [];
  const emit = (type: string, data: Record<string, unknown>) =>
    events.push({ event: type, data: JSON.stringify({ type, sequence_number: events.length, ...data }) });
  const inProgress = { ...response, status: 'in_progress', incomplete_details: null, output: [], usage: null };
  emit('response.created', { response: inProgress });
  emit('response.in_progress', { response: inProgress });
  reasoning.forEach((item, i) => {
    emit('response.output_item.added', { output_index: i, item });
    emit('response.output_item.done', { output_index: i, item });
  });
  const index = reasoning.length;
  if (result.kind === 'text') {
    const { text } = result;
    const part = { type: 'output_text', text, annotations: [], logprobs: [] };
    const where = { item_id: final.id, output_index: index, content_index: 0 };
    emit('response.output_item.added', { output_index: index, item: { ...final, status: 'in_progress', content: [] } });
    emit('response.content_part.added', { ...where, part: { type: 'output_text', text: '', annotations: [] } });
    for (const delta of textPieces(text, env.wordsPerChunk)) emit('response.output_text.delta', { ...where, delta });
    emit('response.output_text.done', { ...where, text });
    emit('response.content_part.done', { ...where, part });
  } else {
    const where = { item_id: final.id, output_index: index };
    emit('response.output_item.added', {
      output_index: index,
      item: { ...final, status: 'in_progress', arguments: '' },
    });
    for (const delta of argumentPieces(result.arguments)) {
      emit('response.function_call_arguments.delta', { ...where, delta });
    }
    emit('response.function_call_arguments.done', { ...where, arguments: result.arguments });
  }
  emit('response.output_item.done', { output_index: index, item: final });
  emit(incomplete ? 'response.incomplete' : 'response.completed', { response });
  return sse(events);
}
