// OpenAI Responses <-> the chat shape every adapter speaks, for upstreams that
// do not serve /v1/responses (OpenAI-compatible servers, Anthropic, Gemini).
// What chat cannot express is a RequestMappingError naming the field (the
// caller's 400), never a guess; reasoning items are the dropped exception.
import type {
  ResponseContentPart,
  ResponseItem,
  ResponsesRequest,
  ResponsesTool,
} from '../../_shared/openai/responses-schemas.ts';
import type {
  ChatCompletionRequest,
  ChatCompletionResponse,
  ChatMessage,
  ContentPart,
  FinishReason,
  ToolCall,
  Usage,
} from '../../_shared/openai/types.ts';
import { RequestMappingError, UnsupportedFeatureError } from '../../_shared/providers/errors.ts';
import type { ProviderKind } from '../../_shared/providers/types.ts';
import { countTextTokens } from '../../_shared/router/tokens.ts';

/** The request's input as items: a string is one user message. */
export function inputItems(input: ResponsesRequest['input']): ResponseItem[] {
  return typeof input === 'string' ? [{ type: 'message', role: 'user', content: input }] : input;
}

/**
 * The chat request for a Responses request whose conversation is `items`
 * (stored turns of previous_response_id first). `param` names an item by its
 * place in the client's `input` (stored items are named by their place in the
 * conversation).
 */
export function toChatRequest(
  wire: ResponsesRequest,
  items: ResponseItem[],
  history: number,
  options: { stream: boolean; kind: ProviderKind },
): ChatCompletionRequest {
  const messages: ChatMessage[] = [];
  if (wire.instructions) messages.push({ role: 'system', content: wire.instructions });
  items.forEach((item, i) => {
    const param = i < history ? `previous_response_id` : `input.${i - history}`;
    appendItem(messages, item, param);
  });
  const request: ChatCompletionRequest = { model: wire.model, messages, stream: options.stream };
  if (wire.max_output_tokens != null) request.max_tokens = wire.max_output_tokens;
  if (wire.temperature != null) request.temperature = wire.temperature;
  if (wire.top_p != null) request.top_p = wire.top_p;
  if (wire.user !== undefined) request.user = wire.user;
  if (wire.parallel_tool_calls != null && wire.tools && wire.tools.length > 0) {
    request.parallel_tool_calls = wire.parallel_tool_calls;
  }
  const format = wire.text?.format;
  if (format?.type === 'json_object') request.response_format = { type: 'json_object' };
  else if (format?.type === 'json_schema') {
    const { name, schema, description, strict } = format;
    const jsonSchema = { name, schema, ...(description === undefined ? {} : { description }), strict };
    request.response_format = { type: 'json_schema', json_schema: jsonSchema };
  }
  // An effort is a hint: OpenAI-compatible servers that reason take it; for others it is dropped.
  if (wire.reasoning?.effort && options.kind === 'openai_compatible') request.reasoning_effort = wire.reasoning.effort;
  if (wire.tools && wire.tools.length > 0) request.tools = wire.tools.map(chatTool);
  if (wire.tool_choice !== undefined) request.tool_choice = chatToolChoice(wire.tool_choice);
  return request;
}

function chatTool(tool: ResponsesTool, i: number) {
  if (tool.type !== 'function' || typeof tool.name !== 'string') {
    throw new UnsupportedFeatureError(
      `tools.${i}`,
      `the built-in tool ${tool.type} is not available on this model's provider; only function tools are`,
    );
  }
  const { name, description, parameters, strict } = tool as Extract<ResponsesTool, { type: 'function' }>;
  return {
    type: 'function' as const,
    function: {
      name,
      ...(description == null ? {} : { description }),
      parameters: parameters ?? { type: 'object', properties: {} },
      ...(strict == null ? {} : { strict }),
    },
  };
}

function chatToolChoice(choice: NonNullable<ResponsesRequest['tool_choice']>): ChatCompletionRequest['tool_choice'] {
  if (typeof choice === 'string') return choice;
  if (choice.type === 'function' && typeof choice.name === 'string') {
    return { type: 'function', function: { name: choice.name } };
  }
  throw new UnsupportedFeatureError(
    'tool_choice',
    `tool_choice ${choice.type} is not available on this model's provider`,
  );
}

function appendItem(messages: ChatMessage[], item: ResponseItem, param: string): void {
  switch (item.type) {
    case 'message': {
      const { role } = item;
      if (role === 'assistant') {
        messages.push({ role: 'assistant', content: textOf(item.content, `${param}.content`) });
      } else if (role === 'user') messages.push({ role: 'user', content: userContent(item.content, param) });
      else messages.push({ role: 'system', content: textOf(item.content, `${param}.content`) });
      return;
    }
    case 'function_call': {
      const call: ToolCall = {
        id: item.call_id,
        type: 'function',
        function: { name: item.name, arguments: item.arguments },
      };
      // Calls made in one turn are one assistant message with several tool calls, as chat wants them.
      const last = messages.at(-1);
      if (last?.role === 'assistant' && (last.tool_calls || !last.content)) {
        last.tool_calls = [...(last.tool_calls ?? []), call];
        if (last.content === '') last.content = null;
      } else messages.push({ role: 'assistant', content: null, tool_calls: [call] });
      return;
    }
    case 'function_call_output':
      messages.push({ role: 'tool', tool_call_id: item.call_id, content: textOf(item.output, `${param}.output`) });
      return;
    case 'reasoning':
      // The model's own reasoning from an earlier turn (encrypted for OpenAI): other providers neither need nor take it.
      return;
    default:
      throw new RequestMappingError(`a ${item.type} item cannot be sent to this model's provider`, param);
  }
}

function textOf(content: string | ResponseContentPart[], param: string): string {
  if (typeof content === 'string') return content;
  return content.map((part, j) => {
    if (part.type === 'input_text' || part.type === 'output_text') return part.text;
    if (part.type === 'refusal') return part.refusal;
    throw unsupportedPart(part.type, `${param}.${j}`);
  }).join('');
}

function userContent(content: string | ResponseContentPart[], param: string): string | ContentPart[] {
  if (typeof content === 'string') return content;
  const parts: ContentPart[] = content.map((part, j) => {
    if (part.type === 'input_text' || part.type === 'output_text') return { type: 'text', text: part.text };
    if (part.type === 'input_image' && typeof part.image_url === 'string') {
      return { type: 'image_url', image_url: { url: part.image_url, ...(part.detail ? { detail: part.detail } : {}) } };
    }
    throw unsupportedPart(part.type, `${param}.content.${j}`);
  });
  return parts.every((part) => part.type === 'text')
    ? parts.map((part) => (part as { text: string }).text).join('')
    : parts;
}

function unsupportedPart(type: string, param: string): RequestMappingError {
  const what = type === 'input_image' ? 'an input_image by file_id' : `an ${type} part`;
  return new RequestMappingError(`${what} cannot be sent to this model's provider`, param);
}

export interface ResponsesUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export function responsesUsageOf(usage: Usage | undefined, promptTokens: number, completionTokens: number) {
  const input = usage?.prompt_tokens ?? promptTokens;
  const output = usage?.completion_tokens ?? completionTokens;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: usage?.prompt_tokens_details?.cached_tokens ?? 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: usage?.completion_tokens_details?.reasoning_tokens ?? 0 },
    total_tokens: input + output,
  } satisfies ResponsesUsage;
}

/** The fields of a Response object that repeat the request, as OpenAI echoes them. */
export function echoedFields(wire: ResponsesRequest, previousResponseId: string | null) {
  return {
    instructions: wire.instructions ?? null,
    max_output_tokens: wire.max_output_tokens ?? null,
    metadata: wire.metadata ?? {},
    parallel_tool_calls: wire.parallel_tool_calls ?? true,
    previous_response_id: previousResponseId,
    reasoning: { effort: wire.reasoning?.effort ?? null, summary: wire.reasoning?.summary ?? null },
    store: wire.store ?? true,
    temperature: wire.temperature ?? 1,
    text: { format: wire.text?.format ?? { type: 'text' } },
    tool_choice: wire.tool_choice ?? 'auto',
    tools: wire.tools ?? [],
    top_p: wire.top_p ?? 1,
    truncation: 'disabled',
    user: wire.user ?? null,
  };
}

/** status and incomplete_details for a chat finish reason. */
export function statusOf(reason: FinishReason | null | undefined) {
  if (reason === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } };
  if (reason === 'content_filter') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } };
  return { status: 'completed', incomplete_details: null };
}

export interface ResponseIds {
  /** resp_… */
  response: string;
  /** The suffix of the message and function call item ids. */
  items: string;
}

export const messageItem = (ids: ResponseIds, text: string, status = 'completed') => ({
  id: `msg_${ids.items}`,
  type: 'message',
  status,
  role: 'assistant',
  content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
});

export const functionCallItem = (ids: ResponseIds, index: number, call: ToolCall, status = 'completed') => ({
  id: `fc_${ids.items}_${index}`,
  type: 'function_call',
  status,
  arguments: call.function.arguments,
  call_id: call.id,
  name: call.function.name,
});

/** A chat completion as a Response object. */
export function toResponseObject(
  chat: ChatCompletionResponse,
  head: { ids: ResponseIds; createdAt: number; model: string; promptTokens: number; echoed: object },
): Record<string, unknown> {
  const choice = chat.choices[0];
  const text = choice?.message.content ?? '';
  const output: Record<string, unknown>[] = [];
  if (text !== '') output.push(messageItem(head.ids, text));
  (choice?.message.tool_calls ?? []).forEach((call, i) => output.push(functionCallItem(head.ids, i, call)));
  const produced = text + (choice?.message.tool_calls ?? []).map((call) => call.function.arguments).join('');
  return {
    id: head.ids.response,
    object: 'response',
    created_at: head.createdAt,
    ...statusOf(choice?.finish_reason),
    error: null,
    model: head.model,
    output,
    ...head.echoed,
    usage: responsesUsageOf(chat.usage, head.promptTokens, countTextTokens(produced)),
  };
}

/** The router's estimate of a Responses request's prompt: text, calls and their outputs, tools; a fixed guess per image. */
export function estimateResponsesPromptTokens(
  instructions: string | null | undefined,
  items: readonly ResponseItem[],
  tools: readonly ResponsesTool[] | undefined,
): number {
  let total = 3 + countTextTokens(instructions ?? '');
  for (const item of items) {
    total += 3;
    if (item.type === 'message') total += contentTokens(item.content);
    else if (item.type === 'function_call') total += countTextTokens(item.name) + countTextTokens(item.arguments);
    else if (item.type === 'function_call_output') total += contentTokens(item.output);
    else total += countTextTokens(JSON.stringify(item));
  }
  if (tools && tools.length > 0) total += countTextTokens(JSON.stringify(tools));
  return total;
}

function contentTokens(content: string | ResponseContentPart[]): number {
  if (typeof content === 'string') return countTextTokens(content);
  let total = 0;
  for (const part of content) {
    if (part.type === 'input_text' || part.type === 'output_text') total += countTextTokens(part.text);
    else if (part.type === 'input_image') total += 85;
    else total += countTextTokens(JSON.stringify(part));
  }
  return total;
}
