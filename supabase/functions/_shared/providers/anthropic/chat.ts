// OpenAI chat request -> Anthropic Messages body, and Messages response -> OpenAI response.
import type {
  AssistantMessage,
  ChatCompletionRequest,
  ChatCompletionResponse,
  ChatMessage,
  ContentPart,
  ResponseFormat,
  ToolCall,
  ToolChoice,
} from '../../openai/types.ts';
import type { ChatCallContext } from '../types.ts';
import { completionId } from '../chunks.ts';
import { RequestMappingError, UnsupportedFeatureError } from '../errors.ts';
import { contentText, parseDataUrl, parseToolArguments, requestedMaxTokens, stopList } from '../message-content.ts';
import { readUpstreamBody } from '../upstream-body.ts';
import { ANTHROPIC_PROVIDER_NAME } from './api.ts';
import { anthropicFinishReason, anthropicPromptTokens, anthropicUsageToOpenAI } from './usage.ts';
import {
  type AnthropicContentBlock,
  type AnthropicMessage,
  anthropicMessageResponseSchema,
  type AnthropicMessagesBody,
  type AnthropicToolChoice,
} from './wire.ts';

const DEFAULT_ANTHROPIC_MAX_TOKENS = 4096;

export function buildAnthropicMessagesBody(req: ChatCompletionRequest, ctx: ChatCallContext): AnthropicMessagesBody {
  rejectUnsupported(req);
  const body: AnthropicMessagesBody = {
    model: ctx.upstreamModel,
    messages: mapMessages(req.messages),
    // Anthropic requires max_tokens; OpenAI callers often omit it
    max_tokens: requestedMaxTokens(req) ?? ctx.defaultMaxTokens ?? DEFAULT_ANTHROPIC_MAX_TOKENS,
  };
  const system = systemPrompt(req.messages, req.response_format);
  if (system !== '') body.system = system;
  const stop = stopList(req.stop);
  if (stop) body.stop_sequences = stop;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.top_p !== undefined) body.top_p = req.top_p;
  if (req.tools && req.tools.length > 0) {
    body.tools = req.tools.map((tool) => ({
      name: tool.function.name,
      ...(tool.function.description === undefined ? {} : { description: tool.function.description }),
      input_schema: tool.function.parameters ?? { type: 'object', properties: {} },
    }));
    const choice = mapToolChoice(req.tool_choice, req.parallel_tool_calls);
    if (choice) body.tool_choice = choice;
  }
  if (req.user !== undefined) body.metadata = { user_id: req.user };
  if (ctx.stream) body.stream = true;
  // seed is a best-effort hint at OpenAI too; Anthropic has none, so it is dropped
  return body;
}

function rejectUnsupported(req: ChatCompletionRequest): void {
  if (req.n !== undefined && req.n > 1) {
    throw new UnsupportedFeatureError('n', 'Anthropic models return one choice; n must be 1');
  }
  if (req.logprobs === true || req.top_logprobs !== undefined) {
    throw new UnsupportedFeatureError('logprobs', 'Anthropic models do not return logprobs');
  }
  if (req.temperature !== undefined && req.temperature > 1) {
    throw new UnsupportedFeatureError('temperature', 'Anthropic models accept temperature between 0 and 1');
  }
  for (const param of ['presence_penalty', 'frequency_penalty'] as const) {
    const value = req[param];
    if (value !== undefined && value !== 0) {
      throw new UnsupportedFeatureError(param, `Anthropic models do not support ${param}`);
    }
  }
}

/**
 * System and developer messages are hoisted into the top-level `system` (Anthropic has no
 * system role in `messages`). JSON mode has no native switch in the Messages API we target:
 * it is an instruction appended to the system prompt, which models follow but which is
 * not enforced, unlike OpenAI's constrained decoding.
 */
function systemPrompt(messages: ChatMessage[], format: ResponseFormat | undefined): string {
  const parts = messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) =>
    contentText(m.content)
  );
  if (format?.type === 'json_object') {
    parts.push('Respond only with a single valid JSON object, with no text before or after it.');
  } else if (format?.type === 'json_schema') {
    const schema = JSON.stringify(format.json_schema.schema ?? {});
    parts.push(
      `Respond only with a single valid JSON value that conforms to this JSON Schema, with no text before or after it: ${schema}`,
    );
  }
  return parts.filter((p) => p !== '').join('\n\n');
}

function mapMessages(messages: ChatMessage[]): AnthropicMessage[] {
  const turns: AnthropicMessage[] = [];
  messages.forEach((message, i) => {
    const turn = mapMessage(message, i);
    if (turn === null || turn.content.length === 0) return;
    const previous = turns[turns.length - 1];
    // consecutive tool results (and a user message after them) form one user turn
    if (previous !== undefined && previous.role === turn.role) previous.content.push(...turn.content);
    else turns.push(turn);
  });
  return turns;
}

function mapMessage(message: ChatMessage, i: number): AnthropicMessage | null {
  switch (message.role) {
    case 'system':
    case 'developer':
      return null;
    case 'user':
      return { role: 'user', content: mapUserContent(message.content, i) };
    case 'assistant':
      return { role: 'assistant', content: mapAssistantContent(message, i) };
    case 'tool':
      return {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: message.tool_call_id, content: contentText(message.content) }],
      };
  }
}

function mapUserContent(content: string | ContentPart[], i: number): AnthropicContentBlock[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return content.map((part, j): AnthropicContentBlock => {
    if (part.type === 'text') return { type: 'text', text: part.text };
    const url = part.image_url.url;
    const data = parseDataUrl(url);
    if (data) return { type: 'image', source: { type: 'base64', media_type: data.mimeType, data: data.data } };
    if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
    throw new RequestMappingError(
      'image_url must be an http(s) URL or a base64 data URL',
      `messages.${i}.content.${j}.image_url.url`,
    );
  });
}

function mapAssistantContent(message: AssistantMessage, i: number): AnthropicContentBlock[] {
  const blocks: AnthropicContentBlock[] = [];
  const text = contentText(message.content);
  if (text !== '') blocks.push({ type: 'text', text }); // Anthropic rejects empty text blocks
  (message.tool_calls ?? []).forEach((call, j) => {
    blocks.push({
      type: 'tool_use',
      id: call.id,
      name: call.function.name,
      input: parseToolArguments(call.function.arguments, `messages.${i}.tool_calls.${j}.function.arguments`),
    });
  });
  return blocks;
}

function mapToolChoice(choice: ToolChoice | undefined, parallel: boolean | undefined): AnthropicToolChoice | undefined {
  const disableParallel = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined) return parallel === false ? { type: 'auto', ...disableParallel } : undefined;
  if (choice === 'none') return { type: 'none' };
  if (choice === 'auto') return { type: 'auto', ...disableParallel };
  if (choice === 'required') return { type: 'any', ...disableParallel };
  return { type: 'tool', name: choice.function.name, ...disableParallel };
}

export function parseAnthropicMessagesResponse(body: unknown, ctx: ChatCallContext): ChatCompletionResponse {
  const message = readUpstreamBody(anthropicMessageResponseSchema, body, ANTHROPIC_PROVIDER_NAME);
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text') text += block.text ?? '';
    else if (block.type === 'tool_use') {
      toolCalls.push({
        id: block.id ?? `call_${toolCalls.length}`,
        type: 'function',
        function: { name: block.name ?? '', arguments: JSON.stringify(block.input ?? {}) },
      });
    }
    // thinking and redacted_thinking blocks are not part of the OpenAI shape
  }
  const prompt = anthropicPromptTokens(message.usage);
  return {
    id: completionId(ctx),
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.publicModel,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text === '' && toolCalls.length > 0 ? null : text,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: anthropicFinishReason(message.stop_reason),
        logprobs: null,
      },
    ],
    usage: anthropicUsageToOpenAI(prompt, message.usage.output_tokens ?? 0, message.usage.cache_read_input_tokens ?? 0),
  };
}
