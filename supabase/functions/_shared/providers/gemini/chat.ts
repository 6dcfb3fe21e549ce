// OpenAI chat request -> Gemini generateContent body, and the response back to OpenAI.
import type {
  ChatCompletionRequest,
  ChatCompletionResponse,
  ChatMessage,
  ContentPart,
  ResponseFormat,
  ToolChoice,
} from '../../openai/types.ts';
import type { ChatCallContext } from '../types.ts';
import { completionId } from '../chunks.ts';
import { RequestMappingError, UnsupportedFeatureError } from '../errors.ts';
import {
  contentText,
  isJsonObject,
  parseDataUrl,
  parseToolArguments,
  requestedMaxTokens,
  stopList,
} from '../message-content.ts';
import { readUpstreamBody } from '../upstream-body.ts';
import { GEMINI_PROVIDER_NAME } from './api.ts';
import { geminiFinishReason, geminiUsageToOpenAI, readCandidate } from './candidates.ts';
import {
  type GeminiContent,
  type GeminiGenerateContentBody,
  geminiGenerateContentResponseSchema,
  type GeminiGenerationConfig,
  type GeminiPart,
} from './wire.ts';

// Not mapped, on purpose: `user` (no Gemini field) and `parallel_tool_calls` (Gemini
// decides). Known limit: Gemini 3 thinking models expect thought signatures echoed with
// earlier function calls; OpenAI tool_calls cannot carry them.
export function buildGeminiGenerateContentBody(req: ChatCompletionRequest): GeminiGenerateContentBody {
  if (req.logprobs === true || req.top_logprobs !== undefined) {
    throw new UnsupportedFeatureError('logprobs', 'logprobs are not available through the Gemini adapter');
  }
  const body: GeminiGenerateContentBody = { contents: mapContents(req.messages) };
  const system = req.messages
    .filter((m) => m.role === 'system' || m.role === 'developer')
    .map((m) => contentText(m.content))
    .filter((text) => text !== '');
  if (system.length > 0) body.systemInstruction = { parts: system.map((text) => ({ text })) };
  if (req.tools && req.tools.length > 0) {
    body.tools = [
      {
        functionDeclarations: req.tools.map((tool) => ({
          name: tool.function.name,
          ...(tool.function.description === undefined ? {} : { description: tool.function.description }),
          // parametersJsonSchema takes JSON Schema as is; `parameters` wants an OpenAPI subset
          ...(tool.function.parameters === undefined ? {} : { parametersJsonSchema: tool.function.parameters }),
        })),
      },
    ];
    if (req.tool_choice !== undefined) body.toolConfig = { functionCallingConfig: mapToolChoice(req.tool_choice) };
  }
  const config = generationConfig(req);
  if (Object.keys(config).length > 0) body.generationConfig = config;
  return body;
}

function generationConfig(req: ChatCompletionRequest): GeminiGenerationConfig {
  const config: GeminiGenerationConfig = {};
  const maxTokens = requestedMaxTokens(req);
  if (maxTokens !== undefined) config.maxOutputTokens = maxTokens;
  if (req.temperature !== undefined) config.temperature = req.temperature;
  if (req.top_p !== undefined) config.topP = req.top_p;
  const stop = stopList(req.stop);
  if (stop) config.stopSequences = stop;
  if (req.n !== undefined && req.n > 1) config.candidateCount = req.n;
  if (req.seed !== undefined) config.seed = req.seed;
  if (req.presence_penalty !== undefined) config.presencePenalty = req.presence_penalty;
  if (req.frequency_penalty !== undefined) config.frequencyPenalty = req.frequency_penalty;
  Object.assign(config, responseFormatConfig(req.response_format));
  return config;
}

/** Gemini enforces JSON output natively: a MIME type, plus the schema when one is given. */
function responseFormatConfig(format: ResponseFormat | undefined): GeminiGenerationConfig {
  if (format?.type === 'json_object') return { responseMimeType: 'application/json' };
  if (format?.type === 'json_schema') {
    const schema = format.json_schema.schema;
    return { responseMimeType: 'application/json', ...(schema === undefined ? {} : { responseJsonSchema: schema }) };
  }
  return {};
}

function mapToolChoice(choice: ToolChoice): { mode: 'AUTO' | 'ANY' | 'NONE'; allowedFunctionNames?: string[] } {
  if (choice === 'none') return { mode: 'NONE' };
  if (choice === 'auto') return { mode: 'AUTO' };
  if (choice === 'required') return { mode: 'ANY' };
  return { mode: 'ANY', allowedFunctionNames: [choice.function.name] };
}

function mapContents(messages: ChatMessage[]): GeminiContent[] {
  const contents: GeminiContent[] = [];
  // functionResponse needs the function name; OpenAI tool messages only carry the call id
  const toolNames = new Map<string, string>();
  messages.forEach((message, i) => {
    const content = mapMessage(message, i, toolNames);
    if (content === null || content.parts.length === 0) return;
    const previous = contents[contents.length - 1];
    // consecutive tool results become one user turn, as Gemini expects
    if (previous !== undefined && previous.role === content.role) previous.parts.push(...content.parts);
    else contents.push(content);
  });
  return contents;
}

function mapMessage(message: ChatMessage, i: number, toolNames: Map<string, string>): GeminiContent | null {
  switch (message.role) {
    case 'system':
    case 'developer':
      return null;
    case 'user':
      return { role: 'user', parts: mapUserParts(message.content, i) };
    case 'assistant': {
      const parts: GeminiPart[] = [];
      const text = contentText(message.content);
      if (text !== '') parts.push({ text });
      (message.tool_calls ?? []).forEach((call, j) => {
        toolNames.set(call.id, call.function.name);
        const args = parseToolArguments(call.function.arguments, `messages.${i}.tool_calls.${j}.function.arguments`);
        parts.push({ functionCall: { name: call.function.name, args } });
      });
      return { role: 'model', parts };
    }
    case 'tool': {
      const name = toolNames.get(message.tool_call_id);
      if (name === undefined) {
        throw new RequestMappingError(
          'tool_call_id does not match an earlier assistant tool call',
          `messages.${i}.tool_call_id`,
        );
      }
      return {
        role: 'user',
        parts: [{ functionResponse: { name, response: toolResponse(contentText(message.content)) } }],
      };
    }
  }
}

/** functionResponse.response must be an object; other results are wrapped as `output`. */
function toolResponse(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    return isJsonObject(parsed) ? parsed : { output: parsed };
  } catch {
    return { output: text };
  }
}

function mapUserParts(content: string | ContentPart[], i: number): GeminiPart[] {
  if (typeof content === 'string') return [{ text: content }];
  return content.map((part, j): GeminiPart => {
    if (part.type === 'text') return { text: part.text };
    const data = parseDataUrl(part.image_url.url);
    if (data === null) {
      // Gemini only fetches its own File API / Cloud Storage URIs, not arbitrary URLs
      throw new UnsupportedFeatureError(
        `messages.${i}.content.${j}.image_url.url`,
        'Gemini accepts images as base64 data URLs only',
      );
    }
    return { inlineData: { mimeType: data.mimeType, data: data.data } };
  });
}

export function parseGeminiGenerateContentResponse(body: unknown, ctx: ChatCallContext): ChatCompletionResponse {
  const parsed = readUpstreamBody(geminiGenerateContentResponseSchema, body, GEMINI_PROVIDER_NAME);
  const candidates = parsed.candidates ?? [];
  const response: ChatCompletionResponse = {
    id: completionId(ctx),
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.publicModel,
    choices: candidates.map((candidate, position) => {
      const index = candidate.index ?? position;
      const { text, toolCalls } = readCandidate(candidate, index, ctx);
      return {
        index,
        message: {
          role: 'assistant',
          content: text === '' && toolCalls.length > 0 ? null : text,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: geminiFinishReason(candidate.finishReason, toolCalls.length > 0) ?? 'stop',
        logprobs: null,
      };
    }),
  };
  if (candidates.length === 0 && parsed.promptFeedback?.blockReason !== undefined) {
    // the prompt itself was blocked: no candidate at all
    response.choices = [{
      index: 0,
      message: { role: 'assistant', content: null },
      finish_reason: 'content_filter',
      logprobs: null,
    }];
  }
  if (parsed.usageMetadata) response.usage = geminiUsageToOpenAI(parsed.usageMetadata);
  return response;
}
