// The fake's deterministic "model": what it answers and how many tokens it counts.
// Prompt tokens = whitespace-separated words in every text of the request (system, messages,
// tool results); completion tokens = words in the reply (a tool call counts `name arguments`).

export interface Conversation {
  /** Every text the request carries, for prompt token counting. */
  texts: string[];
  /** The final turn: a user's text, or a tool result returned to the model. */
  last: { kind: 'user_text' | 'tool_result'; text: string };
  toolNames: string[];
  maxTokens?: number;
  json: boolean;
}

export const FAKE_TOOL_ARGUMENTS = '{"city":"Paris"}';

export type FakeAnswer =
  | { kind: 'text'; text: string; truncated: boolean; promptTokens: number; completionTokens: number }
  | { kind: 'tool_call'; name: string; arguments: string; promptTokens: number; completionTokens: number };

export function countWords(text: string): number {
  const trimmed = text.trim();
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length;
}

export function answer(conversation: Conversation): FakeAnswer {
  const promptTokens = conversation.texts.reduce((sum, text) => sum + countWords(text), 0);
  const firstTool = conversation.toolNames[0];
  if (
    firstTool !== undefined && conversation.last.kind === 'user_text' && /\bweather\b/i.test(conversation.last.text)
  ) {
    return {
      kind: 'tool_call',
      name: firstTool,
      arguments: FAKE_TOOL_ARGUMENTS,
      promptTokens,
      completionTokens: countWords(`${firstTool} ${FAKE_TOOL_ARGUMENTS}`),
    };
  }
  const full = conversation.json
    ? JSON.stringify({ echo: conversation.last.text })
    : `echo: ${conversation.last.text}`.trimEnd();
  const words = full.trim().split(/\s+/);
  const limit = conversation.maxTokens;
  const truncated = limit !== undefined && words.length > limit;
  const text = truncated ? words.slice(0, limit).join(' ') : full;
  return { kind: 'text', text, truncated, promptTokens, completionTokens: countWords(text) };
}

/** Streaming pieces: "echo: hello world" -> ["echo:", " hello", " world"] (or several words a piece). */
export function textPieces(text: string, wordsPerPiece = 1): string[] {
  const words = text.match(/\s*\S+/g) ?? [];
  if (wordsPerPiece <= 1) return words;
  const pieces: string[] = [];
  for (let i = 0; i < words.length; i += wordsPerPiece) pieces.push(words.slice(i, i + wordsPerPiece).join(''));
  return pieces;
}

/** Tool arguments are streamed in two pieces, as real providers split them. */
export function argumentPieces(args: string): string[] {
  const cut = Math.floor(args.length / 2);
  return [args.slice(0, cut), args.slice(cut)];
}

/** A deterministic embedding: same text, same vector; rounded for stable JSON. */
export function fakeEmbedding(text: string, dimensions: number): number[] {
  let seed = 0;
  for (let i = 0; i < text.length; i += 1) seed = (seed * 31 + text.charCodeAt(i)) % 1_000_003;
  return Array.from({ length: dimensions }, (_, i) => Math.round(Math.sin(seed + i) * 1e6) / 1e6);
}

export function float32Base64(values: number[]): string {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => buffer.writeFloatLE(value, i * 4));
  return buffer.toString('base64');
}
