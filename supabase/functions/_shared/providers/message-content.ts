// Helpers for reading OpenAI message content when mapping to other providers.
import type { ContentPart, TextContentPart } from '../openai/types.ts';
import { RequestMappingError } from './errors.ts';

/** Text of string-or-parts content; parts are joined without a separator, as OpenAI does. */
export function contentText(content: string | TextContentPart[] | ContentPart[] | null | undefined): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  let text = '';
  for (const part of content) if (part.type === 'text') text += part.text;
  return text;
}

export interface DataUrl {
  mimeType: string;
  data: string; // base64
}

/** `data:image/png;base64,AAAA` -> parts; null for anything else (http URLs). */
export function parseDataUrl(url: string): DataUrl | null {
  const match = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  return match === null ? null : { mimeType: match[1], data: match[2] };
}

/** Tool call arguments are JSON text on the OpenAI side but objects for Anthropic and Gemini. */
export function parseToolArguments(text: string, param: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RequestMappingError('tool call arguments must be a JSON object', param);
  }
  if (!isJsonObject(parsed)) throw new RequestMappingError('tool call arguments must be a JSON object', param);
  return parsed;
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Stop sequences as a list; OpenAI accepts a string, a list or null. */
export function stopList(stop: string | string[] | null | undefined): string[] | undefined {
  if (stop === null || stop === undefined) return undefined;
  const list = typeof stop === 'string' ? [stop] : stop;
  return list.length === 0 ? undefined : list;
}

/** max_completion_tokens supersedes the deprecated max_tokens. */
export function requestedMaxTokens(req: { max_tokens?: number; max_completion_tokens?: number }): number | undefined {
  return req.max_completion_tokens ?? req.max_tokens;
}
