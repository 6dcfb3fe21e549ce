// Anthropic Messages <-> the OpenAI chat shape every adapter speaks, for
// upstreams that are not Anthropic. What the chat shape cannot express is a
// RequestMappingError naming the field (the caller's 400), never a guess.
import type { AnthropicMessagesRequest, AnthropicRequestBlock } from '../../_shared/anthropic/schemas.ts';
import type {
  ChatCompletionRequest,
  ChatCompletionResponse,
  ChatMessage,
  ContentPart,
  FinishReason,
  ToolCall,
  ToolChoice,
  Usage,
} from '../../_shared/openai/types.ts';
import { RequestMappingError, UnsupportedFeatureError } from '../../_shared/providers/errors.ts';
import { countTextTokens } from '../../_shared/router/tokens.ts';

/** Fields of a Messages request that only Anthropic upstreams understand. */
const ANTHROPIC_ONLY = ['top_k', 'container', 'mcp_servers', 'service_tier'] as const;

export function toChatRequest(wire: AnthropicMessagesRequest, stream: boolean): ChatCompletionRequest {
  for (const field of ANTHROPIC_ONLY) {
    if (wire[field] !== undefined) {
      throw new UnsupportedFeatureError(field, `${field} cannot be sent to this model's provider`);
    }
  }
  // Dropped, not refused: `thinking: adaptive` and `output_config.effort` are
  // hints (the model may think, this hard); clearing thinking blocks edits
  // nothing where there are none. An explicit thinking budget is refused.
  if (wire.thinking?.type === 'enabled') {
    throw new UnsupportedFeatureError('thinking', "extended thinking cannot be sent to this model's provider");
  }
  (wire.context_management?.edits ?? []).forEach((edit, i) => {
    if (!edit.type.startsWith('clear_thinking_')) {
      throw new UnsupportedFeatureError(
        `context_management.edits.${i}`,
        `the context edit ${edit.type} exists only on Anthropic`,
      );
    }
  });
  const messages: ChatMessage[] = [];
  const system = typeof wire.system === 'string' ? wire.system : (wire.system ?? []).map((b) => b.text).join('\n\n');
  if (system !== '') messages.push({ role: 'system', content: system });
  wire.messages.forEach((message, i) => {
    const blocks: AnthropicRequestBlock[] = typeof message.content === 'string'
      ? [{ type: 'text', text: message.content }]
      : message.content;
    if (message.role === 'assistant') messages.push(assistantMessage(blocks, i));
    else if (message.role === 'system') messages.push({ role: 'system', content: systemText(blocks, i) });
    else messages.push(...userMessages(blocks, i));
  });
  const request: ChatCompletionRequest = { model: wire.model, messages, max_tokens: wire.max_tokens, stream };
  if (wire.stop_sequences && wire.stop_sequences.length > 0) request.stop = wire.stop_sequences;
  if (wire.temperature !== undefined) request.temperature = wire.temperature;
  if (wire.top_p !== undefined) request.top_p = wire.top_p;
  if (wire.metadata?.user_id) request.user = wire.metadata.user_id;
  if (wire.tools && wire.tools.length > 0) {
    request.tools = wire.tools.map((tool, i) => {
      if (tool.type !== undefined && tool.type !== 'custom') {
        throw new UnsupportedFeatureError(`tools.${i}`, `the server tool ${tool.type} exists only on Anthropic`);
      }
      const parameters = tool.input_schema ?? { type: 'object', properties: {} };
      const description = tool.description === undefined ? {} : { description: tool.description };
      return { type: 'function' as const, function: { name: tool.name, ...description, parameters } };
    });
  }
  if (wire.tool_choice) {
    const choice = wire.tool_choice;
    const mapped: ToolChoice = choice.type === 'any'
      ? 'required'
      : choice.type === 'tool'
      ? { type: 'function', function: { name: choice.name } }
      : choice.type;
    request.tool_choice = mapped;
    if ('disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use === true) {
      request.parallel_tool_calls = false;
    }
  }
  return request;
}

function systemText(blocks: AnthropicRequestBlock[], i: number): string {
  return blocks.map((block, j) => {
    if (block.type === 'text') return block.text;
    throw unsupportedBlock(block.type, `messages.${i}.content.${j}`);
  }).join('\n');
}

function assistantMessage(blocks: AnthropicRequestBlock[], i: number): ChatMessage {
  let text = '';
  const toolCalls: ToolCall[] = [];
  blocks.forEach((block, j) => {
    if (block.type === 'text') text += block.text;
    else if (block.type === 'tool_use') {
      toolCalls.push({
        id: block.id,
        type: 'function',
        function: { name: block.name, arguments: JSON.stringify(block.input) },
      });
    } else if (block.type !== 'thinking' && block.type !== 'redacted_thinking') {
      // Thinking is the model's own reasoning from an earlier turn: other providers neither need nor take it.
      throw unsupportedBlock(block.type, `messages.${i}.content.${j}`);
    }
  });
  return {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
    ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
  };
}

/** A user turn: its tool results first (one tool message each, as OpenAI wants them), then the rest. */
function userMessages(blocks: AnthropicRequestBlock[], i: number): ChatMessage[] {
  const results: ChatMessage[] = [];
  const parts: ContentPart[] = [];
  blocks.forEach((block, j) => {
    const param = `messages.${i}.content.${j}`;
    if (block.type === 'text') parts.push({ type: 'text', text: block.text });
    else if (block.type === 'image') parts.push(imagePart(block, param));
    else if (block.type === 'tool_result') {
      results.push({ role: 'tool', tool_call_id: block.tool_use_id, content: toolResultText(block.content, param) });
    } else throw unsupportedBlock(block.type, param);
  });
  if (parts.length === 0) return results;
  const content = parts.every((part) => part.type === 'text')
    ? parts.map((part) => (part as { text: string }).text).join('\n')
    : parts;
  return [...results, { role: 'user', content }];
}

function imagePart(block: Extract<AnthropicRequestBlock, { type: 'image' }>, param: string): ContentPart {
  const source = block.source;
  if (source.type === 'base64') {
    return { type: 'image_url', image_url: { url: `data:${source.media_type};base64,${source.data}` } };
  }
  if (source.type === 'url') return { type: 'image_url', image_url: { url: source.url } };
  throw new RequestMappingError("a file image cannot be sent to this model's provider", `${param}.source`);
}

function toolResultText(content: Extract<AnthropicRequestBlock, { type: 'tool_result' }>['content'], param: string) {
  if (content === undefined || typeof content === 'string') return content ?? '';
  return content.map((part, k) => {
    if (part.type === 'text' && typeof part.text === 'string') return part.text;
    throw new RequestMappingError(
      `a ${part.type} block in a tool result cannot be sent to this model's provider`,
      `${param}.content.${k}`,
    );
  }).join('\n');
}

function unsupportedBlock(type: string, param: string): RequestMappingError {
  return new RequestMappingError(`a ${type} block cannot be sent to this model's provider`, param);
}

/** Anthropic's stop_reason for an OpenAI finish reason. */
export function stopReasonOf(reason: FinishReason | null | undefined): string | null {
  switch (reason) {
    case null:
    case undefined:
      return null;
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    default:
      return 'end_turn';
  }
}

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** OpenAI counts cached prompt tokens inside prompt_tokens; Anthropic counts them apart. */
export function anthropicUsageOf(usage: Usage | undefined, completionTokens: number): AnthropicUsage {
  const cached = usage?.prompt_tokens_details?.cached_tokens ?? 0;
  return {
    input_tokens: Math.max(0, (usage?.prompt_tokens ?? 0) - cached),
    output_tokens: usage?.completion_tokens ?? completionTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
  };
}

/** A chat completion as an Anthropic message. */
export function toAnthropicMessage(answer: ChatCompletionResponse, id: string, model: string) {
  const choice = answer.choices[0];
  const content: Record<string, unknown>[] = [];
  const text = choice?.message.content ?? '';
  if (text !== '') content.push({ type: 'text', text });
  for (const call of choice?.message.tool_calls ?? []) {
    content.push({
      type: 'tool_use',
      id: call.id,
      name: call.function.name,
      input: toolInput(call.function.arguments),
    });
  }
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stopReasonOf(choice?.finish_reason),
    stop_sequence: null,
    usage: anthropicUsageOf(answer.usage, countTextTokens(text)),
  };
}

function toolInput(args: string): unknown {
  try {
    return JSON.parse(args === '' ? '{}' : args);
  } catch {
    return {}; // a provider's broken arguments: Anthropic's input is always an object
  }
}

/** The router's estimate of a Messages request's prompt: text, tool calls and results, tools; a fixed guess per image. */
export function estimateAnthropicPromptTokens(wire: Pick<AnthropicMessagesRequest, 'system' | 'messages' | 'tools'>) {
  let total = 3;
  const system = typeof wire.system === 'string' ? wire.system : (wire.system ?? []).map((b) => b.text).join('\n');
  total += countTextTokens(system);
  for (const message of wire.messages) {
    total += 3;
    if (typeof message.content === 'string') {
      total += countTextTokens(message.content);
      continue;
    }
    for (const block of message.content) total += blockTokens(block);
  }
  if (wire.tools && wire.tools.length > 0) total += countTextTokens(JSON.stringify(wire.tools));
  return total;
}

function blockTokens(block: AnthropicRequestBlock): number {
  switch (block.type) {
    case 'text':
      return countTextTokens(block.text);
    case 'thinking':
      return countTextTokens(block.thinking);
    case 'tool_use':
      return countTextTokens(block.name) + countTextTokens(JSON.stringify(block.input));
    case 'tool_result':
      return countTextTokens(typeof block.content === 'string' ? block.content : JSON.stringify(block.content ?? ''));
    case 'image':
      return 85;
    default:
      return countTextTokens(JSON.stringify(block));
  }
}
