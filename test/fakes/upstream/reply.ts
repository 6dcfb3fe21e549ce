// What a fake route answers: a JSON body or an SSE event list; the server writes it.

export type WireFormat = 'openai' | 'azure' | 'anthropic' | 'gemini';

export interface SseOut {
  event?: string;
  data: string;
}

export type FakeReply =
  | { kind: 'json'; status: number; body: unknown; headers?: Record<string, string> }
  | { kind: 'sse'; events: SseOut[]; lineEnding: '\n' | '\r\n' };

export type FakeOperation = 'chat' | 'responses' | 'embeddings' | 'models' | 'embed_content' | 'batch_embed';

export interface FakeRoute {
  format: WireFormat;
  operation: FakeOperation;
  /** From the body (OpenAI, Anthropic) or the path (Azure deployment, Gemini model). */
  model?: string;
  stream: boolean;
}

export interface HandlerEnv {
  seq: number;
  created: number;
  models: string[];
  embeddingDimensions: number;
  /** Words per streamed text chunk (OpenAI format), like a real model's several tokens a chunk. */
  wordsPerChunk: number;
  /** The request's anthropic-beta features. */
  anthropicBetas: string[];
}

export function json(status: number, body: unknown, headers?: Record<string, string>): FakeReply {
  return headers === undefined ? { kind: 'json', status, body } : { kind: 'json', status, body, headers };
}

export function sse(events: SseOut[], lineEnding: '\n' | '\r\n' = '\n'): FakeReply {
  return { kind: 'sse', events, lineEnding };
}

export function encodeSse(event: SseOut, lineEnding: '\n' | '\r\n'): string {
  const head = event.event === undefined ? '' : `event: ${event.event}${lineEnding}`;
  return `${head}data: ${event.data}${lineEnding}${lineEnding}`;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
