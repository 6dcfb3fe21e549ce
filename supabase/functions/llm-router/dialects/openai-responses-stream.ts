// Streamed Responses answers. From an OpenAI upstream the bytes are forwarded
// as they arrive and only scanned: deltas (what a cut stream produced) and the
// terminal event (usage, and the Response a stored turn keeps). From any other
// upstream the adapter's chat chunks become OpenAI's semantic events, each with
// its sequence_number: response.created, response.in_progress,
// response.output_item.added, response.content_part.added,
// response.output_text.delta/.done, response.content_part.done,
// response.function_call_arguments.delta/.done, response.output_item.done,
// and response.completed (or response.incomplete) with usage.
import { z } from 'zod';
import type { ChatCompletionChunk, FinishReason, ToolCall } from '../../_shared/openai/types.ts';
import { UpstreamFailureError } from '../../_shared/providers/errors.ts';
import { openAIErrorFromObject } from '../../_shared/providers/openai/errors.ts';
import type { StreamTranslator, UpstreamError } from '../../_shared/providers/types.ts';
import { streamInterruptedError } from '../../_shared/providers/upstream-errors.ts';
import { countTextTokens } from '../../_shared/router/tokens.ts';
import { parseSseStream, type SseEvent } from '../../_shared/sse.ts';
import type { StreamSource, TokenUsage } from '../stream.ts';
import { ForwardedSseStream } from './forwarded-stream.ts';
import type { ResponsesAnswer } from './openai-responses.ts';
import {
  functionCallItem,
  messageItem,
  type ResponseIds,
  responsesUsageOf,
  statusOf,
} from './openai-responses-translate.ts';

const encoder = new TextEncoder();

const usageSchema = z.looseObject({ input_tokens: z.number().int(), output_tokens: z.number().int() });
/** What the router reads of an upstream Response object: its id, output and usage. */
export const responsesUpstreamSchema = z.looseObject({
  id: z.string(),
  output: z.array(z.unknown()),
  usage: usageSchema.nullable().optional(),
});
const upstreamEventSchema = z.looseObject({
  type: z.string(),
  delta: z.unknown().optional(),
  response: responsesUpstreamSchema.optional(),
});

const sseEvent = (type: string, data: Record<string, unknown>) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

function errorEvent(error: UpstreamError, sequence: number): Uint8Array {
  return encoder.encode(sseEvent('error', {
    code: error.code,
    message: error.message,
    param: null,
    sequence_number: sequence,
  }));
}

/** An OpenAI upstream's Responses stream, byte for byte. */
export class ForwardedResponsesStream extends ForwardedSseStream<ResponsesAnswer> {
  private produced = '';
  private final: z.infer<typeof responsesUpstreamSchema> | undefined;
  private lastSequence = -1;

  /** Deltas and the terminal event (response.failed and error events are the upstream's errors). */
  protected scan(events: SseEvent[]): void {
    for (const { data } of events) {
      let parsed;
      try {
        parsed = upstreamEventSchema.safeParse(JSON.parse(data));
      } catch {
        continue; // not JSON: the client's SDK judges it, as it would from OpenAI
      }
      if (!parsed.success) continue;
      const event = parsed.data;
      const sequence = (event as { sequence_number?: unknown }).sequence_number;
      if (typeof sequence === 'number') this.lastSequence = sequence;
      if (event.type.endsWith('.delta') && typeof event.delta === 'string') this.produced += event.delta;
      else if (event.type === 'response.completed' || event.type === 'response.incomplete') this.final = event.response;
      else if (event.type === 'response.failed') {
        const error = (event.response as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
        this.forwardedError ??= openAIErrorFromObject({ error: { ...error, type: 'server_error' } }, this.provider);
        if (event.response?.usage) this.final = event.response;
      } else if (event.type === 'error') {
        this.forwardedError ??= openAIErrorFromObject({ error: { ...event, type: event.type } }, this.provider);
      }
    }
  }

  protected get finished(): boolean {
    return this.final !== undefined;
  }

  protected errorEvent(error: UpstreamError): Uint8Array {
    return errorEvent(error, this.lastSequence + 1);
  }

  usage(): TokenUsage {
    const usage = this.final?.usage;
    if (usage) return { promptTokens: usage.input_tokens, completionTokens: usage.output_tokens };
    return { completionTokens: countTextTokens(this.produced) };
  }

  answer(): ResponsesAnswer | undefined {
    if (!this.final) return undefined;
    return { body: this.final as Record<string, unknown>, usage: this.usage() };
  }
}

interface OpenItem {
  outputIndex: number;
  /** The chat tool call index, for a function call. */
  tool?: number;
  call?: ToolCall;
  text: string;
  done: boolean;
}

export interface TranslatedResponseHead {
  ids: ResponseIds;
  createdAt: number;
  model: string;
  promptTokens: number;
  echoed: object;
}

/** Another provider's chat chunks (from its adapter's translator) as the Responses semantic events. */
export class TranslatedResponsesStream implements StreamSource<ResponsesAnswer> {
  private readonly upstream: AsyncIterator<SseEvent>;
  private ended = false;
  private started = false;
  private sequence = 0;
  private readonly items: OpenItem[] = [];
  private current: OpenItem | undefined;
  private readonly toolItems = new Map<number, OpenItem>();
  private finishReason: FinishReason | null = null;
  private produced = '';
  private final: Record<string, unknown> | undefined;
  private last = '';

  constructor(
    body: ReadableStream<Uint8Array>,
    private readonly translator: StreamTranslator,
    private readonly provider: string,
    private readonly head: TranslatedResponseHead,
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
        text += this.start() + this.closeAll();
        // Sent by end(), after settlement: a client that saw response.completed has its usage recorded.
        this.last = this.completed();
      } else {
        text = this.events(this.translator.push(next.value));
      }
      if (text !== '') return encoder.encode(text);
    }
    return undefined;
  }

  private event(type: string, data: Record<string, unknown>): string {
    return sseEvent(type, { ...data, sequence_number: this.sequence++ });
  }

  private response(status: string, output: unknown[], usage: unknown, extra: object = {}) {
    return {
      id: this.head.ids.response,
      object: 'response',
      created_at: this.head.createdAt,
      status,
      error: null,
      incomplete_details: null,
      model: this.head.model,
      output,
      ...this.head.echoed,
      usage,
      ...extra,
    };
  }

  private start(): string {
    if (this.started) return '';
    this.started = true;
    const response = this.response('in_progress', [], null);
    return this.event('response.created', { response }) + this.event('response.in_progress', { response });
  }

  private itemOf(item: OpenItem, status: string) {
    return item.call
      ? functionCallItem(this.head.ids, item.tool ?? 0, {
        ...item.call,
        function: { ...item.call.function, arguments: item.text },
      }, status)
      : messageItem(this.head.ids, item.text, status);
  }

  private open(item: OpenItem): string {
    let text = this.close();
    this.items.push(item);
    this.current = item;
    const added = item.call
      ? this.itemOf(item, 'in_progress')
      : { ...messageItem(this.head.ids, ''), status: 'in_progress', content: [] };
    text += this.event('response.output_item.added', { output_index: item.outputIndex, item: added });
    if (!item.call) {
      text += this.event('response.content_part.added', {
        item_id: added.id,
        output_index: item.outputIndex,
        content_index: 0,
        part: { type: 'output_text', text: '', annotations: [] },
      });
    }
    return text;
  }

  /** Closes the item being written, if any. */
  private close(): string {
    const item = this.current;
    this.current = undefined;
    if (!item || item.done) return '';
    item.done = true;
    const done = this.itemOf(item, 'completed');
    const where = { item_id: done.id, output_index: item.outputIndex };
    let text = '';
    if (item.call) {
      text += this.event('response.function_call_arguments.done', {
        ...where,
        name: item.call.function.name,
        arguments: item.text,
      });
    } else {
      const part = { type: 'output_text', text: item.text, annotations: [], logprobs: [] };
      text += this.event('response.output_text.done', { ...where, content_index: 0, text: item.text, logprobs: [] });
      text += this.event('response.content_part.done', { ...where, content_index: 0, part });
    }
    return text + this.event('response.output_item.done', { output_index: item.outputIndex, item: done });
  }

  private closeAll(): string {
    let text = this.close();
    for (const item of this.items) {
      this.current = item;
      text += this.close();
    }
    return text;
  }

  private completed(): string {
    const { status, incomplete_details } = statusOf(this.finishReason);
    const usage = responsesUsageOf(this.translator.usage(), this.head.promptTokens, this.usage().completionTokens);
    const output = this.items.map((item) => this.itemOf(item, 'completed'));
    this.final = this.response(status, output, usage, { incomplete_details });
    const type = status === 'completed' ? 'response.completed' : 'response.incomplete';
    return this.event(type, { response: this.final });
  }

  private events(chunks: ChatCompletionChunk[]): string {
    let text = '';
    for (const chunk of chunks) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += this.start();
      const { content, tool_calls: toolCalls } = choice.delta;
      if (content) {
        if (this.current === undefined || this.current.call) {
          text += this.open({ outputIndex: this.items.length, text: '', done: false });
        }
        const item = this.current!;
        item.text += content;
        this.produced += content;
        text += this.event('response.output_text.delta', {
          item_id: `msg_${this.head.ids.items}`,
          output_index: item.outputIndex,
          content_index: 0,
          delta: content,
          logprobs: [],
        });
      }
      for (const call of toolCalls ?? []) {
        let item = this.toolItems.get(call.index);
        if (!item) {
          item = {
            outputIndex: this.items.length,
            tool: call.index,
            call: {
              id: call.id ?? `call_${this.head.ids.items}_${call.index}`,
              type: 'function',
              function: { name: call.function?.name ?? '', arguments: '' },
            },
            text: '',
            done: false,
          };
          this.toolItems.set(call.index, item);
          text += this.open(item);
        }
        const args = call.function?.arguments;
        if (args) {
          item.text += args;
          this.produced += args;
          text += this.event('response.function_call_arguments.delta', {
            item_id: `fc_${this.head.ids.items}_${call.index}`,
            output_index: item.outputIndex,
            delta: args,
          });
        }
      }
      if (choice.finish_reason) this.finishReason = choice.finish_reason;
    }
    return text;
  }

  usage(): TokenUsage {
    const reported = this.translator.usage();
    if (reported) return { promptTokens: reported.prompt_tokens, completionTokens: reported.completion_tokens };
    return { completionTokens: countTextTokens(this.produced) };
  }

  end(): Uint8Array {
    return encoder.encode(this.last);
  }

  failure(error: UpstreamError): Uint8Array {
    return errorEvent(error, this.sequence++);
  }

  answer(): ResponsesAnswer | undefined {
    return this.final ? { body: this.final, usage: this.usage() } : undefined;
  }
}
