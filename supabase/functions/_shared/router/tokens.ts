import { countTokens as countEncodedTokens } from 'gpt-tokenizer/encoding/o200k_base';
import type { ChatMessage, FunctionTool } from '../openai/types.ts';

/**
 * Token counts of long texts, remembered per isolate. A coding agent resends
 * its whole conversation every turn (system prompt, tools, earlier turns),
 * so all but the newest message were counted before; byte-pair encoding a
 * 12 KB prompt costs milliseconds, a lookup microseconds. Bounded by entries
 * and by characters held; the oldest use goes first.
 */
export class TokenCountCache {
  private readonly counts = new Map<string, number>();
  private characters = 0;

  constructor(
    private readonly count: (text: string) => number,
    /** Shorter texts are counted each time: cheaper than holding them. */
    private readonly minLength = 256,
    private readonly maxEntries = 2048,
    private readonly maxCharacters = 4_000_000,
  ) {}

  tokens(text: string): number {
    if (text.length < this.minLength || text.length > this.maxCharacters) return this.count(text);
    const known = this.counts.get(text);
    if (known !== undefined) {
      // Most recently used last: a Map keeps insertion order.
      this.counts.delete(text);
      this.counts.set(text, known);
      return known;
    }
    const counted = this.count(text);
    this.counts.set(text, counted);
    this.characters += text.length;
    for (const [oldest] of this.counts) {
      if (this.counts.size <= this.maxEntries && this.characters <= this.maxCharacters) break;
      this.counts.delete(oldest);
      this.characters -= oldest.length;
    }
    return counted;
  }

  get size(): number {
    return this.counts.size;
  }
}

const tokenCounts = new TokenCountCache(countEncodedTokens);
const countTokens = (text: string) => tokenCounts.tokens(text);

// Prompt-size estimate with OpenAI's o200k_base encoding. For other providers'
// models it is an approximation (their tokenizers differ by roughly ±15%);
// settlement always uses the usage the provider reports.
const tokensPerMessage = 3;
const tokensPerReply = 3;
// A low-detail image costs 85 tokens on OpenAI; a fixed guess elsewhere.
const tokensPerImage = 85;

function contentTokens(content: ChatMessage['content']): number {
  if (content === null || content === undefined) return 0;
  if (typeof content === 'string') return countTokens(content);
  let total = 0;
  for (const part of content) {
    if (part.type === 'text') total += countTokens(part.text);
    else total += tokensPerImage;
  }
  return total;
}

/** Estimated prompt tokens of a chat request (messages, tool calls and tool definitions). */
export function countPromptTokens(messages: readonly ChatMessage[], tools?: readonly FunctionTool[]): number {
  let total = tokensPerReply;
  for (const message of messages) {
    total += tokensPerMessage + contentTokens(message.content);
    if (message.role === 'assistant' && message.tool_calls) {
      for (const call of message.tool_calls) {
        total += countTokens(call.function.name) + countTokens(call.function.arguments);
      }
    }
  }
  if (tools && tools.length > 0) total += countTokens(JSON.stringify(tools));
  return total;
}

/** Estimated tokens of embeddings input (token arrays count as they are). */
export function countInputTokens(
  input: string | readonly string[] | readonly number[] | readonly (readonly number[])[],
): number {
  if (typeof input === 'string') return countTokens(input);
  let total = 0;
  for (const item of input) {
    if (typeof item === 'string') total += countTokens(item);
    else if (typeof item === 'number') total += 1;
    else total += item.length;
  }
  return total;
}

/** Whether any message carries an image. */
export function hasImages(messages: readonly ChatMessage[]): boolean {
  return messages.some((message) =>
    Array.isArray(message.content) && message.content.some((part) => part.type === 'image_url')
  );
}

/** Tokens of produced text, when the upstream reported no usage (a cut stream). */
export function countTextTokens(text: string): number {
  return text.length === 0 ? 0 : countTokens(text);
}
