// Builders for the OpenAI response objects every adapter emits, so ids, model and created
// are the gateway's everywhere (model = the public alias the caller asked for).
import type {
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  ChatCompletionDelta,
  FinishReason,
  Usage,
} from '../openai/types.ts';
import type { ChatCallContext } from './types.ts';

export function completionId(ctx: ChatCallContext): string {
  return `chatcmpl-${ctx.requestId}`;
}

export function chunkOf(ctx: ChatCallContext, choices: ChatCompletionChunkChoice[]): ChatCompletionChunk {
  return {
    id: completionId(ctx),
    object: 'chat.completion.chunk',
    created: ctx.created,
    model: ctx.publicModel,
    choices,
  };
}

export function deltaChunk(
  ctx: ChatCallContext,
  delta: ChatCompletionDelta,
  finishReason: FinishReason | null = null,
  index = 0,
): ChatCompletionChunk {
  return chunkOf(ctx, [{ index, delta, finish_reason: finishReason }]);
}

/** The final `choices: []` chunk OpenAI sends when stream_options.include_usage is set. */
function usageChunk(ctx: ChatCallContext, usage: Usage): ChatCompletionChunk {
  return { ...chunkOf(ctx, []), usage };
}

/** finish() for translators: the usage chunk when the caller asked for it and we know usage. */
export function finalUsageChunks(ctx: ChatCallContext, usage: Usage | undefined): ChatCompletionChunk[] {
  return ctx.includeUsage === true && usage !== undefined ? [usageChunk(ctx, usage)] : [];
}

export function usageOf(promptTokens: number, completionTokens: number, totalTokens?: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: totalTokens ?? promptTokens + completionTokens,
  };
}
