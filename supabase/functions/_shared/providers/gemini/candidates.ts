// Reading Gemini candidates: finish reasons, usage, and function calls as OpenAI tool calls.
import type { FinishReason, ToolCall, Usage } from '../../openai/types.ts';
import type { z } from 'zod';
import type { ChatCallContext } from '../types.ts';
import type { geminiCandidateSchema, geminiUsageSchema } from './wire.ts';

type GeminiCandidate = z.infer<typeof geminiCandidateSchema>;

const CONTENT_FILTER_REASONS: ReadonlySet<string> = new Set([
  'SAFETY',
  'RECITATION',
  'BLOCKLIST',
  'PROHIBITED_CONTENT',
  'SPII',
  'IMAGE_SAFETY',
]);

export function geminiFinishReason(reason: string | undefined, hasToolCalls: boolean): FinishReason | null {
  if (reason === undefined || reason === 'FINISH_REASON_UNSPECIFIED') return null;
  if (reason === 'MAX_TOKENS') return 'length';
  if (CONTENT_FILTER_REASONS.has(reason)) return 'content_filter';
  return hasToolCalls ? 'tool_calls' : 'stop'; // STOP, OTHER, MALFORMED_FUNCTION_CALL…
}

export function geminiUsageToOpenAI(meta: z.infer<typeof geminiUsageSchema>): Usage {
  const prompt = meta.promptTokenCount ?? 0;
  // thinking tokens are billed as output, as OpenAI's reasoning tokens are
  const thoughts = meta.thoughtsTokenCount ?? 0;
  const completion = (meta.candidatesTokenCount ?? 0) + thoughts;
  const usage: Usage = {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: meta.totalTokenCount ?? prompt + completion,
  };
  if (meta.cachedContentTokenCount) usage.prompt_tokens_details = { cached_tokens: meta.cachedContentTokenCount };
  if (thoughts > 0) usage.completion_tokens_details = { reasoning_tokens: thoughts };
  return usage;
}

export interface CandidateContent {
  text: string;
  toolCalls: ToolCall[];
}

/** Gemini function calls usually have no id; ours must be unique across turns, hence the request id. */
function geminiToolCallId(
  ctx: ChatCallContext,
  candidateIndex: number,
  callIndex: number,
  upstreamId?: string,
): string {
  return upstreamId ?? `call_${ctx.requestId}_${candidateIndex}_${callIndex}`;
}

/** Text (thought summaries excluded) and function calls of one candidate. */
export function readCandidate(
  candidate: GeminiCandidate,
  candidateIndex: number,
  ctx: ChatCallContext,
  firstCallIndex = 0,
): CandidateContent {
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const part of candidate.content?.parts ?? []) {
    if (part.thought === true) continue;
    if (part.text !== undefined) text += part.text;
    if (part.functionCall) {
      toolCalls.push({
        id: geminiToolCallId(ctx, candidateIndex, firstCallIndex + toolCalls.length, part.functionCall.id),
        type: 'function',
        function: { name: part.functionCall.name, arguments: JSON.stringify(part.functionCall.args ?? {}) },
      });
    }
  }
  return { text, toolCalls };
}
