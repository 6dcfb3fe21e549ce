// Anthropic stream events -> OpenAI chunks. Tool calls get their own running index
// (OpenAI counts tool calls, Anthropic counts all content blocks).
import type { ChatCompletionChunk, FinishReason, Usage } from '../../openai/types.ts';
import type { SseEvent } from '../../sse.ts';
import type { ChatCallContext, StreamTranslator } from '../types.ts';
import { deltaChunk, finalUsageChunks } from '../chunks.ts';
import { UpstreamFailureError } from '../errors.ts';
import { parseJsonData, readUpstreamBody } from '../upstream-body.ts';
import { ANTHROPIC_PROVIDER_NAME } from './api.ts';
import { anthropicErrorFromObject } from './errors.ts';
import { anthropicFinishReason, anthropicPromptTokens, anthropicUsageToOpenAI } from './usage.ts';
import { anthropicStreamEventSchema } from './wire.ts';

export class AnthropicStreamTranslator implements StreamTranslator {
  private started = false;
  private stopped = false;
  private promptTokens = 0;
  private cachedTokens = 0;
  private completionTokens = 0;
  private toolCount = 0;
  /** Anthropic content block index -> OpenAI tool call index. */
  private readonly toolIndexByBlock = new Map<number, number>();

  constructor(private readonly ctx: ChatCallContext) {}

  push(event: SseEvent): ChatCompletionChunk[] {
    const data = parseJsonData(event.data, ANTHROPIC_PROVIDER_NAME);
    const parsed = readUpstreamBody(anthropicStreamEventSchema, data, ANTHROPIC_PROVIDER_NAME);
    switch (parsed.type) {
      case 'message_start': {
        const usage = parsed.message?.usage;
        if (usage) {
          this.promptTokens = anthropicPromptTokens(usage);
          this.cachedTokens = usage.cache_read_input_tokens ?? 0;
          this.completionTokens = usage.output_tokens ?? 0;
        }
        this.started = true;
        return [deltaChunk(this.ctx, { role: 'assistant', content: '' })];
      }
      case 'content_block_start':
        return this.blockStart(parsed.index ?? 0, parsed.content_block);
      case 'content_block_delta':
        return this.blockDelta(parsed.index ?? 0, parsed.delta);
      case 'message_delta': {
        if (parsed.usage) this.updateUsage(parsed.usage);
        const reason: FinishReason | null = anthropicFinishReason(parsed.delta?.stop_reason);
        return reason === null ? [] : [deltaChunk(this.ctx, {}, reason)];
      }
      case 'message_stop':
        this.stopped = true;
        return [];
      case 'error':
        throw new UpstreamFailureError(anthropicErrorFromObject(data));
      default:
        return []; // ping, content_block_stop, and event types added later
    }
  }

  private blockStart(
    index: number,
    block: { type: string; text?: string; id?: string; name?: string; input?: unknown } | undefined,
  ): ChatCompletionChunk[] {
    if (block?.type === 'text') return block.text ? [deltaChunk(this.ctx, { content: block.text })] : [];
    if (block?.type !== 'tool_use') return []; // thinking blocks are not forwarded
    const toolIndex = this.toolCount++;
    this.toolIndexByBlock.set(index, toolIndex);
    const input = block.input;
    const initialArguments = typeof input === 'object' && input !== null && Object.keys(input).length > 0
      ? JSON.stringify(input)
      : '';
    return [
      deltaChunk(this.ctx, {
        tool_calls: [
          {
            index: toolIndex,
            id: block.id ?? `call_${toolIndex}`,
            type: 'function',
            function: { name: block.name ?? '', arguments: initialArguments },
          },
        ],
      }),
    ];
  }

  private blockDelta(
    index: number,
    delta: { type?: string; text?: string; partial_json?: string } | undefined,
  ): ChatCompletionChunk[] {
    if (delta?.type === 'text_delta' && delta.text) return [deltaChunk(this.ctx, { content: delta.text })];
    if (delta?.type === 'input_json_delta' && delta.partial_json) {
      const toolIndex = this.toolIndexByBlock.get(index);
      if (toolIndex === undefined) return [];
      return [
        deltaChunk(this.ctx, { tool_calls: [{ index: toolIndex, function: { arguments: delta.partial_json } }] }),
      ];
    }
    return []; // thinking_delta, signature_delta, citations_delta
  }

  private updateUsage(usage: {
    output_tokens?: number | null;
    input_tokens?: number | null;
    cache_creation_input_tokens?: number | null;
    cache_read_input_tokens?: number | null;
  }): void {
    // message_delta usage is cumulative; newer API versions repeat input counts here too
    if (usage.output_tokens != null) this.completionTokens = usage.output_tokens;
    if (usage.input_tokens != null) {
      this.promptTokens = anthropicPromptTokens(usage);
      this.cachedTokens = usage.cache_read_input_tokens ?? this.cachedTokens;
    }
  }

  finish(): ChatCompletionChunk[] {
    return finalUsageChunks(this.ctx, this.usage());
  }

  usage(): Usage | undefined {
    return this.started
      ? anthropicUsageToOpenAI(this.promptTokens, this.completionTokens, this.cachedTokens)
      : undefined;
  }

  done(): boolean {
    return this.stopped;
  }
}
