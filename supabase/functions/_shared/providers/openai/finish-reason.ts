import type { FinishReason } from '../../openai/types.ts';

const KNOWN: ReadonlySet<string> = new Set(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);

function isFinishReason(reason: string): reason is FinishReason {
  return KNOWN.has(reason);
}

/** OpenAI-compatible servers sometimes invent reasons ("eos"); anything unknown ends normally. */
export function normalizeFinishReason(reason: string | null | undefined): FinishReason | null {
  if (reason === null || reason === undefined) return null;
  return isFinishReason(reason) ? reason : 'stop';
}
