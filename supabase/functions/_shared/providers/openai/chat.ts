// Chat completions for OpenAI-format upstreams (OpenAI, compatible servers, Azure): the
// body passes through with the upstream model; responses get the gateway's id and model.
import type {
  ChatCompletionChunk,
  ChatCompletionDelta,
  ChatCompletionRequest,
  ChatCompletionResponse,
  Usage,
} from '../../openai/types.ts';
import type { ChatCallContext, StreamTranslator } from '../types.ts';
import type { SseEvent } from '../../sse.ts';
import { chunkOf, completionId, finalUsageChunks } from '../chunks.ts';
import { UpstreamFailureError } from '../errors.ts';
import { parseJsonData, readUpstreamBody } from '../upstream-body.ts';
import { normalizeFinishReason } from './finish-reason.ts';
import { openAIErrorFromObject } from './errors.ts';
import { openAIChatResponseSchema, openAIChunkSchema, type openAIUsageSchema } from './wire.ts';
import type { z } from 'zod';

/** The upstream body; `model` is omitted for Azure, where the deployment in the URL decides. */
export function buildOpenAIChatBody(
  req: ChatCompletionRequest,
  ctx: ChatCallContext,
  options: { includeModel: boolean },
): Record<string, unknown> {
  const { model: _publicModel, stream_options: streamOptions, ...rest } = req;
  const body: Record<string, unknown> = { ...rest, stream: ctx.stream };
  if (options.includeModel) body.model = ctx.upstreamModel;
  // always ask for usage so budgets settle on real numbers; OpenAI rejects
  // stream_options on non-streaming calls, so it is dropped there
  if (ctx.stream) body.stream_options = { ...(streamOptions ?? {}), include_usage: true };
  return body;
}

export function parseOpenAIChatResponse(body: unknown, ctx: ChatCallContext, provider: string): ChatCompletionResponse {
  const parsed = readUpstreamBody(openAIChatResponseSchema, body, provider);
  const response: ChatCompletionResponse = {
    id: completionId(ctx),
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.publicModel,
    choices: parsed.choices.map((choice) => {
      const { tool_calls: toolCalls, content, ...message } = choice.message;
      return {
        ...choice,
        index: choice.index,
        message: {
          ...message,
          role: 'assistant',
          content: content ?? null,
          ...(toolCalls && toolCalls.length > 0
            ? { tool_calls: toolCalls.map((call) => ({ ...call, type: 'function' as const })) }
            : {}),
        },
        finish_reason: normalizeFinishReason(choice.finish_reason),
        logprobs: choice.logprobs ?? null,
      };
    }),
  };
  if (parsed.usage) response.usage = toUsage(parsed.usage);
  if (parsed.system_fingerprint !== undefined) response.system_fingerprint = parsed.system_fingerprint;
  return response;
}

function toUsage(usage: z.infer<typeof openAIUsageSchema>): Usage {
  const completion = usage.completion_tokens ?? Math.max(0, usage.total_tokens - usage.prompt_tokens);
  return { ...usage, completion_tokens: completion };
}

export class OpenAIStreamTranslator implements StreamTranslator {
  private reportedUsage: Usage | undefined;
  private sawDone = false;

  constructor(
    private readonly ctx: ChatCallContext,
    private readonly provider: string,
  ) {}

  push(event: SseEvent): ChatCompletionChunk[] {
    if (event.data.trim() === '[DONE]') {
      this.sawDone = true;
      return [];
    }
    const data = parseJsonData(event.data, this.provider);
    const upstreamError = openAIErrorFromObject(data, this.provider);
    if (upstreamError !== undefined) throw new UpstreamFailureError(upstreamError);
    const chunk = readUpstreamBody(openAIChunkSchema, data, this.provider);
    const usage = chunk.usage ?? chunk.x_groq?.usage;
    if (usage) this.reportedUsage = toUsage(usage);
    // usage-only chunks (and Azure's prompt_filter_results chunk) carry no choices;
    // the usage chunk is re-emitted by finish() only when the caller asked for it
    if (!chunk.choices || chunk.choices.length === 0) return [];
    const out: ChatCompletionChunk = chunkOf(
      this.ctx,
      chunk.choices.map((choice) => {
        const { role, tool_calls: toolCalls, ...rest } = choice.delta ?? {};
        const delta: ChatCompletionDelta = role === 'assistant' ? { role, ...rest } : rest;
        if (toolCalls) delta.tool_calls = toolCalls;
        return {
          ...choice,
          delta,
          finish_reason: normalizeFinishReason(choice.finish_reason),
        };
      }),
    );
    if (typeof chunk.system_fingerprint === 'string') out.system_fingerprint = chunk.system_fingerprint;
    return [out];
  }

  finish(): ChatCompletionChunk[] {
    return finalUsageChunks(this.ctx, this.reportedUsage);
  }

  usage(): Usage | undefined {
    return this.reportedUsage;
  }

  done(): boolean {
    return this.sawDone;
  }
}
