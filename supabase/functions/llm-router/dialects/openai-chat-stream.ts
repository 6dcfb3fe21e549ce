// Streamed chat answers in OpenAI's SSE format. From an OpenAI-format upstream
// the events are forwarded as they arrive, with only the gateway's id, time and
// model written over the upstream's (a string splice, no JSON parse); an event
// that carries usage, an error, an unknown finish reason or anything unusual
// goes through the adapter's translator instead. Other upstreams (Anthropic,
// Gemini) are translated event by event.
import type { Context } from 'hono';
import type { AppEnv } from '../../_shared/hono-env.ts';
import type { ChatCompletionChunk } from '../../_shared/openai/types.ts';
import { upstreamErrorBody, UpstreamFailureError } from '../../_shared/providers/errors.ts';
import type {
  ChatCallContext,
  ProviderAdapter,
  StreamTranslator,
  UpstreamError,
} from '../../_shared/providers/types.ts';
import { streamInterruptedError } from '../../_shared/providers/upstream-errors.ts';
import { countTextTokens } from '../../_shared/router/tokens.ts';
import { parseSseStream, type SseEvent, SseLineParser } from '../../_shared/sse.ts';
import type { StreamSource, TokenUsage } from '../stream.ts';
import { chatTokenUsage } from './common.ts';

const encoder = new TextEncoder();
const DONE = encoder.encode('data: [DONE]\n\n');
/** Upstreams that speak the client's dialect: their events are forwarded. */
const FORWARDED = new Set(['openai', 'openai_compatible', 'azure_openai']);
const FINISH_REASONS = new Set(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);

const sse = (json: string) => `data: ${json}\n\n`;

function chunkText(chunk: ChatCompletionChunk): string {
  let text = '';
  for (const choice of chunk.choices) {
    text += choice.delta.content ?? '';
    for (const call of choice.delta.tool_calls ?? []) text += call.function?.arguments ?? '';
  }
  return text;
}

/** The stream of one attempt: forwarded when the upstream speaks OpenAI's format, else translated. */
export function chatStreamSource(
  body: ReadableStream<Uint8Array>,
  ctx: ChatCallContext,
  adapter: ProviderAdapter,
  provider: string,
): StreamSource {
  const translator = adapter.createStreamTranslator(ctx);
  return FORWARDED.has(ctx.endpoint.kind)
    ? new ForwardedChatStream(body, ctx, translator, provider)
    : new TranslatedChatStream(body, translator, provider);
}

/** A complete answer (the response cache's) as one SSE body. */
export function sseResponse(c: Context<AppEnv>, chunks: ChatCompletionChunk[]): Response {
  c.header('content-type', 'text/event-stream; charset=utf-8');
  c.header('cache-control', 'no-cache');
  return c.body(chunks.map((chunk) => sse(JSON.stringify(chunk))).join('') + 'data: [DONE]\n\n', 200);
}

abstract class ChatStream implements StreamSource {
  /** JSON of every chunk sent, counted only when the upstream reports no usage (a cut stream). */
  protected readonly sent: string[] = [];

  constructor(protected readonly translator: StreamTranslator, protected readonly provider: string) {}

  abstract next(): Promise<Uint8Array | undefined>;

  usage(): TokenUsage {
    return chatTokenUsage(
      this.translator.usage(),
      () => countTextTokens(this.sent.map((json) => chunkText(JSON.parse(json) as ChatCompletionChunk)).join('')),
    );
  }

  end(): Uint8Array {
    return DONE;
  }

  failure(error: UpstreamError): Uint8Array {
    return encoder.encode(sse(JSON.stringify(upstreamErrorBody(error))));
  }

  /** Chunks the translator produced, as SSE text. */
  protected translated(chunks: ChatCompletionChunk[]): string {
    let text = '';
    for (const chunk of chunks) {
      const json = JSON.stringify(chunk);
      this.sent.push(json);
      text += sse(json);
    }
    return text;
  }

  /** At the upstream's end: what the translator still holds (the usage chunk), or a cut. */
  protected finished(): string {
    const text = this.translated(this.translator.finish());
    if (!this.translator.done()) throw new UpstreamFailureError(streamInterruptedError(this.provider));
    return text;
  }
}

/** Another provider's events, translated one by one. */
class TranslatedChatStream extends ChatStream {
  private readonly events: AsyncIterator<SseEvent>;
  private ended = false;

  constructor(body: ReadableStream<Uint8Array>, translator: StreamTranslator, provider: string) {
    super(translator, provider);
    this.events = parseSseStream(body)[Symbol.asyncIterator]();
  }

  async next(): Promise<Uint8Array | undefined> {
    while (!this.ended) {
      const next = await this.events.next();
      if (next.done) this.ended = true;
      const text = next.done ? this.finished() : this.translated(this.translator.push(next.value));
      if (text !== '') return encoder.encode(text);
    }
    return undefined;
  }
}

/** OpenAI-format events, forwarded with the gateway's id, created and model. */
class ForwardedChatStream extends ChatStream {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffer = '';
  private ended = false;
  private readonly id: string;
  private readonly model: string;
  private readonly created: string;

  constructor(body: ReadableStream<Uint8Array>, ctx: ChatCallContext, translator: StreamTranslator, provider: string) {
    super(translator, provider);
    this.reader = body.getReader();
    this.id = JSON.stringify(`chatcmpl-${ctx.requestId}`);
    this.model = JSON.stringify(ctx.publicModel);
    this.created = String(ctx.created);
  }

  async next(): Promise<Uint8Array | undefined> {
    while (!this.ended) {
      const { value, done } = await this.reader.read();
      let text: string;
      if (done) {
        this.ended = true;
        text = this.split(this.decoder.decode(), true) + this.finished();
      } else {
        text = this.split(this.decoder.decode(value, { stream: true }), false);
      }
      if (text !== '') return encoder.encode(text);
    }
    return undefined;
  }

  /** Appends decoded text and handles every complete event (all that is left, at the end). */
  private split(decoded: string, atEnd: boolean): string {
    let buffer = this.buffer + decoded;
    let held = '';
    if (buffer.includes('\r')) {
      // A CR at the end may be the first half of a CRLF: keep it for the next read.
      if (!atEnd && buffer.endsWith('\r')) {
        held = '\r';
        buffer = buffer.slice(0, -1);
      }
      buffer = buffer.replace(/\r\n?/g, '\n');
    }
    let out = '';
    let start = 0;
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n', start)) {
      out += this.event(buffer.slice(start, end));
      start = end + 2;
    }
    this.buffer = buffer.slice(start) + held;
    if (atEnd && this.buffer.trim() !== '') {
      out += this.event(this.buffer);
      this.buffer = '';
    }
    return out;
  }

  private event(text: string): string {
    if (text.startsWith('data:') && !text.includes('\n')) {
      const data = text.charCodeAt(5) === 32 ? text.slice(6) : text.slice(5);
      const forwarded = data.trim() === '[DONE]' ? undefined : this.rewritten(data);
      if (forwarded !== undefined) {
        this.sent.push(forwarded);
        return sse(forwarded);
      }
    }
    // Comments, several lines, [DONE] and the unusual events: the translator decides.
    let out = '';
    for (const event of new SseLineParser().end(text)) out += this.translated(this.translator.push(event));
    return out;
  }

  /**
   * The event with the gateway's id, created and model, when it is a plain
   * content chunk: compact JSON, choices present, no usage, no error, a known
   * finish reason. Anything else: undefined (the translator handles it).
   */
  private rewritten(data: string): string | undefined {
    const choices = data.indexOf('"choices":[{');
    if (choices === -1 || data.includes('"usage":{') || data.includes('"x_groq"') || data.includes('"error"')) {
      return undefined;
    }
    for (let at = data.indexOf('"finish_reason":"'); at !== -1; at = data.indexOf('"finish_reason":"', at + 1)) {
      const start = at + 17;
      if (!FINISH_REASONS.has(data.slice(start, data.indexOf('"', start)))) return undefined;
    }
    let head = data.slice(0, choices);
    for (const [key, value] of [['"id":', this.id], ['"model":', this.model], ['"created":', this.created]]) {
      const replaced = replaceValue(head, key, value);
      if (replaced === undefined) return undefined;
      head = replaced;
    }
    return head + data.slice(choices);
  }
}

/** `text` with the first value of `key` (a JSON string or number) replaced, or undefined when absent. */
function replaceValue(text: string, key: string, value: string): string | undefined {
  const at = text.indexOf(key);
  if (at === -1) return undefined;
  const start = at + key.length;
  let end: number;
  if (text[start] === '"') {
    end = start + 1;
    while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
    end += 1;
  } else {
    end = start;
    while (end < text.length && /[0-9.eE+-]/.test(text[end])) end += 1;
    if (end === start) return undefined;
  }
  if (end > text.length) return undefined;
  return text.slice(0, start) + value + text.slice(end);
}
