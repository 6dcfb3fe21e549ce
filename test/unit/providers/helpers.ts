// Shared test helpers: call contexts, byte streams, and running a translator over SSE text.
import type { ChatCompletionChunk } from '../../../supabase/functions/_shared/openai/types.ts';
import type {
  ChatCallContext,
  EmbeddingsCallContext,
  ProviderKind,
  StreamTranslator,
} from '../../../supabase/functions/_shared/providers/types.ts';
import { parseSseStream } from '../../../supabase/functions/_shared/sse.ts';

export function chatContext(kind: ProviderKind, overrides: Partial<ChatCallContext> = {}): ChatCallContext {
  return {
    upstreamModel: 'upstream-model',
    publicModel: 'public-model',
    apiKey: 'sk-test-key-1234',
    endpoint: { kind, baseUrl: 'https://upstream.example' },
    stream: false,
    requestId: 'req1',
    created: 1_750_000_000,
    ...overrides,
  };
}

export function embeddingsContext(
  kind: ProviderKind,
  overrides: Partial<EmbeddingsCallContext> = {},
): EmbeddingsCallContext {
  return {
    upstreamModel: 'embed-upstream',
    publicModel: 'embed-public',
    apiKey: 'sk-test-key-1234',
    endpoint: { kind, baseUrl: 'https://upstream.example' },
    requestId: 'req1',
    ...overrides,
  };
}

/** A byte stream delivering `bytes` in pieces cut at the given offsets. */
export function streamOfPieces(bytes: Uint8Array, cuts: number[]): ReadableStream<Uint8Array> {
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length];
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i >= bounds.length - 1) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(bounds[i], bounds[i + 1]));
      i += 1;
    },
  });
}

export function streamOfText(text: string, cuts: number[] = []): ReadableStream<Uint8Array> {
  return streamOfPieces(new TextEncoder().encode(text), cuts);
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Runs a whole SSE body through parseSseStream and a translator, as the router will. */
export async function translateStream(
  body: ReadableStream<Uint8Array>,
  translator: StreamTranslator,
): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const event of parseSseStream(body)) chunks.push(...translator.push(event));
  chunks.push(...translator.finish());
  return chunks;
}

/** Concatenated assistant text of choice `index` across chunks. */
export function streamedText(chunks: ChatCompletionChunk[], index = 0): string {
  return chunks
    .flatMap((c) => c.choices)
    .filter((c) => c.index === index)
    .map((c) => c.delta.content ?? '')
    .join('');
}

/** Tool calls rebuilt from deltas, as an OpenAI client does. */
export function streamedToolCalls(
  chunks: ChatCompletionChunk[],
): Array<{ id: string; name: string; arguments: string }> {
  const calls: Array<{ id: string; name: string; arguments: string }> = [];
  for (const choice of chunks.flatMap((c) => c.choices)) {
    for (const delta of choice.delta.tool_calls ?? []) {
      const call = (calls[delta.index] ??= { id: '', name: '', arguments: '' });
      if (delta.id) call.id = delta.id;
      if (delta.function?.name) call.name += delta.function.name;
      if (delta.function?.arguments) call.arguments += delta.function.arguments;
    }
  }
  return calls;
}

export function finishReasons(chunks: ChatCompletionChunk[]): Array<string | null> {
  return chunks.flatMap((c) => c.choices).map((c) => c.finish_reason).filter((r) => r !== null);
}
