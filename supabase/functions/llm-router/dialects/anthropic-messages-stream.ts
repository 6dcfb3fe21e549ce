// Streamed Messages answers. From an Anthropic upstream the bytes are
// forwarded as they arrive, and only scanned for usage (message_start and
// message_delta) and for the end; from any other upstream the adapter's chat
// chunks become Anthropic's events (message_start, content_block_start/delta/stop,
// message_delta, message_stop).
import { anthropicPromptUsage } from '../../_shared/providers/anthropic/usage.ts';
import { anthropicStreamEventSchema } from '../../_shared/providers/anthropic/wire.ts';
import { anthropicErrorFromObject } from '../../_shared/providers/anthropic/errors.ts';
import { anthropicTypeFor } from '../../_shared/errors.ts';
import type { ChatCompletionChunk, FinishReason } from '../../_shared/openai/types.ts';
import { UpstreamFailureError } from '../../_shared/providers/errors.ts';
import type { StreamTranslator, UpstreamError } from '../../_shared/providers/types.ts';
import { streamInterruptedError } from '../../_shared/providers/upstream-errors.ts';
import { countTextTokens } from '../../_shared/router/tokens.ts';
import { parseSseStream, type SseEvent, SseLineParser } from '../../_shared/sse.ts';
import type { StreamSource, TokenUsage } from '../stream.ts';
import { anthropicUsageOf, stopReasonOf } from './anthropic-translate.ts';
import { chatTokenUsage } from './common.ts';

const encoder = new TextEncoder();
const NOTHING = new Uint8Array(0);

const event = (type: string, data: Record<string, unknown>) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

function errorEvent(error: UpstreamError): Uint8Array {
  return encoder.encode(event('error', { error: { type: anthropicTypeFor(error.status), message: error.message } }));
}

/** An Anthropic upstream's stream, byte for byte. */
export class ForwardedMessagesStream implements StreamSource {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private readonly events = new SseLineParser();
  private prompt: Omit<TokenUsage, 'completionTokens'> = {};
  private completionTokens = 0;
  /** Anthropic reports output tokens at the end (message_delta); a stream cut before it is charged what was sent. */
  private finalUsage = false;
  private produced = '';
  private stopped = false;
  /** An `error` event the client already has (forwarded with its bytes). */
  private forwardedError: UpstreamError | undefined;

  constructor(body: ReadableStream<Uint8Array>, private readonly provider: string) {
    this.reader = body.getReader();
  }

  async next(): Promise<Uint8Array | undefined> {
    if (this.forwardedError) throw new UpstreamFailureError(this.forwardedError);
    for (;;) {
      const { value, done } = await this.reader.read();
      if (done) {
        this.scan(this.events.end(this.decoder.decode()));
        if (this.forwardedError) throw new UpstreamFailureError(this.forwardedError);
        if (!this.stopped) throw new UpstreamFailureError(streamInterruptedError(this.provider));
        return undefined;
      }
      this.scan(this.events.push(this.decoder.decode(value, { stream: true })));
      if (value.byteLength > 0) return value;
    }
  }

  /** Usage and the end, from the events in the bytes just read; nothing is rewritten. */
  private scan(events: SseEvent[]): void {
    for (const { data } of events) {
      let parsed;
      try {
        parsed = anthropicStreamEventSchema.safeParse(JSON.parse(data));
      } catch {
        continue; // not JSON: the client's SDK judges it, as it would from Anthropic
      }
      if (!parsed.success) continue;
      const { type, message, usage, delta } = parsed.data;
      if (type === 'message_start' && message?.usage) {
        this.prompt = anthropicPromptUsage(message.usage);
        this.completionTokens = message.usage.output_tokens ?? 0;
      } else if (type === 'content_block_delta' && delta) {
        const piece = delta.text ?? delta.partial_json ?? (delta as { thinking?: unknown }).thinking;
        if (typeof piece === 'string') this.produced += piece;
      } else if (type === 'message_delta' && usage) {
        this.finalUsage = true;
        // Cumulative; newer API versions repeat the input counts here.
        if (usage.output_tokens != null) this.completionTokens = usage.output_tokens;
        if (usage.input_tokens != null) this.prompt = anthropicPromptUsage(usage);
      } else if (type === 'message_stop') this.stopped = true;
      else if (type === 'error') this.forwardedError ??= anthropicErrorFromObject(parsed.data);
    }
  }

  usage(): TokenUsage {
    const completionTokens = this.finalUsage
      ? this.completionTokens
      : Math.max(this.completionTokens, countTextTokens(this.produced));
    return { ...this.prompt, completionTokens };
  }

  end(): Uint8Array {
    return NOTHING; // message_stop was the upstream's own last event
  }

  failure(error: UpstreamError): Uint8Array {
    return this.forwardedError ? NOTHING : errorEvent(error);
  }
}

/** Another provider's chat chunks (from its adapter's translator) as Anthropic's events. */
export class TranslatedMessagesStream implements StreamSource {
  private readonly upstream: AsyncIterator<SseEvent>;
  private ended = false;
  private started = false;
  private nextIndex = 0;
  private open: { index: number; tool?: number } | undefined;
  private readonly toolBlocks = new Map<number, number>();
  private finishReason: FinishReason | null = null;
  private produced = '';

  constructor(
    body: ReadableStream<Uint8Array>,
    private readonly translator: StreamTranslator,
    private readonly provider: string,
    private readonly message: { id: string; model: string; estimatedInputTokens: number },
  ) {
    this.upstream = parseSseStream(body)[Symbol.asyncIterator]();
  }

  async next(): Promise<Uint8Array | undefined> {
    while (!this.ended) {
      const next = await this.upstream.next();
      let text: string;
      if (next.done) {
        this.ended = true;
        text = this.events(this.translator.finish());
        if (!this.translator.done()) throw new UpstreamFailureError(streamInterruptedError(this.provider));
        text += this.start() + this.closeBlock();
        const usage = anthropicUsageOf(this.translator.usage(), this.usage().completionTokens);
        text += event('message_delta', {
          delta: { stop_reason: stopReasonOf(this.finishReason), stop_sequence: null },
          usage,
        });
      } else {
        text = this.events(this.translator.push(next.value));
      }
      if (text !== '') return encoder.encode(text);
    }
    return undefined;
  }

  private start(): string {
    if (this.started) return '';
    this.started = true;
    const { id, model, estimatedInputTokens } = this.message;
    // The provider reports the prompt at the end (message_delta); until then, the router's estimate.
    const usage = { input_tokens: estimatedInputTokens, output_tokens: 0 };
    const message = {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
    };
    return event('message_start', { message: { ...message, usage } }) + event('ping', {});
  }

  private closeBlock(): string {
    if (!this.open) return '';
    const { index } = this.open;
    this.open = undefined;
    return event('content_block_stop', { index });
  }

  private openBlock(block: Record<string, unknown>, tool?: number): string {
    const text = this.closeBlock();
    this.open = { index: this.nextIndex++, tool };
    return text + event('content_block_start', { index: this.open.index, content_block: block });
  }

  private events(chunks: ChatCompletionChunk[]): string {
    let text = '';
    for (const chunk of chunks) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += this.start();
      const { content, tool_calls: toolCalls } = choice.delta;
      if (content) {
        if (this.open === undefined || this.open.tool !== undefined) text += this.openBlock({ type: 'text', text: '' });
        this.produced += content;
        text += event('content_block_delta', { index: this.open!.index, delta: { type: 'text_delta', text: content } });
      }
      for (const call of toolCalls ?? []) {
        if (call.id !== undefined || !this.toolBlocks.has(call.index)) {
          text += this.openBlock(
            { type: 'tool_use', id: call.id ?? `toolu_${call.index}`, name: call.function?.name ?? '', input: {} },
            call.index,
          );
          this.toolBlocks.set(call.index, this.open!.index);
        }
        const args = call.function?.arguments;
        if (args) {
          this.produced += args;
          const index = this.toolBlocks.get(call.index)!;
          text += event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: args } });
        }
      }
      if (choice.finish_reason) this.finishReason = choice.finish_reason;
    }
    return text;
  }

  usage(): TokenUsage {
    return chatTokenUsage(this.translator.usage(), () => countTextTokens(this.produced));
  }

  end(): Uint8Array {
    return encoder.encode(event('message_stop', {}));
  }

  failure(error: UpstreamError): Uint8Array {
    return errorEvent(error);
  }
}
