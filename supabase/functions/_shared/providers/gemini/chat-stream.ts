// Gemini SSE (each event a full GenerateContentResponse) -> OpenAI chunks. Gemini has no
// end marker: the stream is complete once every candidate has a finishReason.
import type { ChatCompletionChunk, ChatCompletionDelta, Usage } from '../../openai/types.ts';
import type { SseEvent } from '../../sse.ts';
import type { ChatCallContext, StreamTranslator } from '../types.ts';
import { chunkOf, finalUsageChunks } from '../chunks.ts';
import { UpstreamFailureError } from '../errors.ts';
import { isJsonObject } from '../message-content.ts';
import { parseJsonData, readUpstreamBody } from '../upstream-body.ts';
import { GEMINI_PROVIDER_NAME } from './api.ts';
import { geminiFinishReason, geminiUsageToOpenAI, readCandidate } from './candidates.ts';
import { geminiErrorFromObject } from './errors.ts';
import { geminiGenerateContentResponseSchema } from './wire.ts';

interface CandidateState {
  roleSent: boolean;
  toolCalls: number;
  finished: boolean;
}

export class GeminiStreamTranslator implements StreamTranslator {
  private readonly candidates = new Map<number, CandidateState>();
  private lastUsage: Usage | undefined;
  private blocked = false;

  constructor(private readonly ctx: ChatCallContext) {}

  push(event: SseEvent): ChatCompletionChunk[] {
    const data = parseJsonData(event.data, GEMINI_PROVIDER_NAME);
    if (isJsonObject(data) && 'error' in data) throw new UpstreamFailureError(geminiErrorFromObject(data));
    const parsed = readUpstreamBody(geminiGenerateContentResponseSchema, data, GEMINI_PROVIDER_NAME);
    // usageMetadata is cumulative in every event; the last one is the total
    if (parsed.usageMetadata) this.lastUsage = geminiUsageToOpenAI(parsed.usageMetadata);
    const chunks: ChatCompletionChunk[] = [];
    const candidates = parsed.candidates ?? [];
    if (candidates.length === 0 && parsed.promptFeedback?.blockReason !== undefined) {
      this.blocked = true;
      return [
        chunkOf(this.ctx, [{ index: 0, delta: { role: 'assistant', content: null }, finish_reason: 'content_filter' }]),
      ];
    }
    candidates.forEach((candidate, position) => {
      const index = candidate.index ?? position;
      const state = this.stateOf(index);
      const { text, toolCalls } = readCandidate(candidate, index, this.ctx, state.toolCalls);
      const delta: ChatCompletionDelta = state.roleSent ? {} : { role: 'assistant' };
      if (text !== '') delta.content = text;
      if (toolCalls.length > 0) {
        delta.tool_calls = toolCalls.map((call, j) => ({ index: state.toolCalls + j, ...call }));
        state.toolCalls += toolCalls.length;
      }
      if (Object.keys(delta).length > 0) {
        state.roleSent = true;
        chunks.push(chunkOf(this.ctx, [{ index, delta, finish_reason: null }]));
      }
      const finish = geminiFinishReason(candidate.finishReason, state.toolCalls > 0);
      if (finish !== null && !state.finished) {
        state.finished = true;
        chunks.push(chunkOf(this.ctx, [{ index, delta: {}, finish_reason: finish }]));
      }
    });
    return chunks;
  }

  private stateOf(index: number): CandidateState {
    let state = this.candidates.get(index);
    if (state === undefined) {
      state = { roleSent: false, toolCalls: 0, finished: false };
      this.candidates.set(index, state);
    }
    return state;
  }

  finish(): ChatCompletionChunk[] {
    return finalUsageChunks(this.ctx, this.lastUsage);
  }

  usage(): Usage | undefined {
    return this.lastUsage;
  }

  done(): boolean {
    if (this.blocked) return true;
    if (this.candidates.size === 0) return false;
    for (const state of this.candidates.values()) if (!state.finished) return false;
    return true;
  }
}
