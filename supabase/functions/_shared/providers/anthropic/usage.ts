import type { FinishReason, Usage } from '../../openai/types.ts';
import type { z } from 'zod';
import type { anthropicUsageSchema } from './wire.ts';

type AnthropicUsage = z.infer<typeof anthropicUsageSchema>;

/** Cache writes and reads are input the caller pays for, so they count as prompt tokens. */
export function anthropicPromptTokens(usage: AnthropicUsage): number {
  return (usage.input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
}

/** The prompt by price: all of it, and the parts written to and read from the prompt cache. */
export function anthropicPromptUsage(usage: AnthropicUsage) {
  return {
    promptTokens: anthropicPromptTokens(usage),
    cacheWriteTokens: usage.cache_creation_input_tokens ?? 0,
    cacheReadTokens: usage.cache_read_input_tokens ?? 0,
  };
}

export function anthropicUsageToOpenAI(promptTokens: number, completionTokens: number, cachedTokens: number): Usage {
  const usage: Usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
  if (cachedTokens > 0) usage.prompt_tokens_details = { cached_tokens: cachedTokens };
  return usage;
}

export function anthropicFinishReason(stopReason: string | null | undefined): FinishReason | null {
  switch (stopReason) {
    case null:
    case undefined:
      return null;
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return 'stop'; // end_turn, stop_sequence, pause_turn
  }
}
