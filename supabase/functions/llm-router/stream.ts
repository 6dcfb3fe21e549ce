import type { Context } from 'hono';
import type { AppEnv } from '../_shared/hono-env.ts';
import type { ChatCompletionChunk, ChatCompletionRequest, Usage } from '../_shared/openai/types.ts';
import { RequestMappingError, upstreamErrorBody, UpstreamFailureError } from '../_shared/providers/errors.ts';
import { getProviderAdapter } from '../_shared/providers/registry.ts';
import type { ChatCallContext, StreamTranslator } from '../_shared/providers/types.ts';
import { streamInterruptedError, upstreamErrorFromFetchFailure } from '../_shared/providers/upstream-errors.ts';
import type { RouteCandidate } from '../_shared/router/plan.ts';
import { providerLimits, readUpstreamText, sendUpstream, type UpstreamExchange } from '../_shared/router/upstream.ts';
import { encodeSseEvent, parseSseStream, type SseEvent } from '../_shared/sse.ts';
import { mappingRefusal } from './chat-context.ts';
import type { RouterServices } from './services.ts';

/** An upstream stream that has produced its first chunks: from here on there is no retry. */
export interface OpenChatStream {
  candidate: RouteCandidate;
  exchange: UpstreamExchange;
  translator: StreamTranslator;
  events: AsyncIterator<SseEvent>;
  firstChunks: ChatCompletionChunk[];
  /** The upstream ended while we were waiting for the first chunk. */
  ended: boolean;
  startedAt: number;
}

/**
 * Opens the upstream stream and reads until the first chunk for the client
 * exists. Failures up to that point (status, timeout, an error event, a cut)
 * are UpstreamFailureErrors, so dispatch may retry or fall back: nothing has
 * been sent to the client yet.
 */
export async function openChatStream(
  services: RouterServices,
  request: ChatCompletionRequest,
  context: ChatCallContext,
  candidate: RouteCandidate,
  signal: AbortSignal,
): Promise<OpenChatStream> {
  const adapter = getProviderAdapter(candidate.provider.kind);
  let upstreamRequest;
  try {
    upstreamRequest = adapter.buildChatRequest(request, context);
  } catch (error) {
    if (error instanceof RequestMappingError) throw mappingRefusal(error);
    throw error;
  }
  const startedAt = services.deps.clock.now().getTime();
  const exchange = await sendUpstream(
    services.deps.fetch,
    upstreamRequest,
    providerLimits(candidate.provider),
    signal,
    candidate.provider.slug,
  );
  if (!exchange.response.ok || !exchange.response.body) {
    const text = await readUpstreamText(exchange, signal, candidate.provider.slug);
    throw new UpstreamFailureError(adapter.parseError(exchange.response.status, text, exchange.response.headers));
  }
  const translator = adapter.createStreamTranslator(context);
  const events = parseSseStream(exchange.response.body)[Symbol.asyncIterator]();
  const firstChunks: ChatCompletionChunk[] = [];
  try {
    while (firstChunks.length === 0) {
      const next = await events.next();
      if (next.done) {
        firstChunks.push(...translator.finish());
        if (!translator.done()) throw new UpstreamFailureError(streamInterruptedError(candidate.provider.slug));
        return { candidate, exchange, translator, events, firstChunks, ended: true, startedAt };
      }
      firstChunks.push(...translator.push(next.value));
    }
  } catch (error) {
    exchange.abort();
    exchange.release();
    if (error instanceof UpstreamFailureError) throw error;
    throw new UpstreamFailureError(upstreamErrorFromFetchFailure(error, candidate.provider.slug));
  }
  return { candidate, exchange, translator, events, firstChunks, ended: false, startedAt };
}

const encodeChunk = (chunk: ChatCompletionChunk) => encodeSseEvent(JSON.stringify(chunk));

/** How a relayed stream ended, for settlement. */
export interface StreamOutcome {
  usage?: Usage;
  /** Text and tool-call arguments sent to the client (counted when usage is missing). */
  producedText: string;
  /** The upstream reached its proper end (else: cut by the client or the upstream). */
  complete: boolean;
}

function chunkText(chunk: ChatCompletionChunk): string {
  let text = '';
  for (const choice of chunk.choices) {
    text += choice.delta.content ?? '';
    for (const call of choice.delta.tool_calls ?? []) text += call.function?.arguments ?? '';
  }
  return text;
}

/**
 * Relays an opened stream to the client as OpenAI SSE. A failure after the
 * first byte cannot be retried: the client gets an error event and no
 * [DONE]. A client disconnect cancels the upstream request. However it ends,
 * `onEnd` runs once (settlement) before the stream closes.
 */
export function streamResponse(
  c: Context<AppEnv>,
  services: RouterServices,
  open: OpenChatStream,
  onEnd: (outcome: StreamOutcome) => Promise<void>,
): Response {
  const { candidate, exchange, translator, events } = open;
  let pending = [...open.firstChunks];
  let finished = open.ended;
  let closed = false;
  let producedText = '';
  const done = async (ok: boolean, complete: boolean, reason?: string) => {
    if (closed) return;
    closed = true;
    exchange.release();
    const latency = services.deps.clock.now().getTime() - open.startedAt;
    const { id: providerId } = candidate.provider;
    if (ok) services.health.recordSuccess(providerId, candidate.model.upstreamModel, latency);
    else services.health.recordFailure(providerId, candidate.model.upstreamModel, latency, reason ?? 'stream_failed');
    try {
      await onEnd({ usage: translator.usage(), producedText, complete });
    } catch (error) {
      services.deps.logger.error('stream_settlement_failed', {
        request_id: c.get('requestId'),
        message: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (pending.length === 0 && !finished) {
          const next = await events.next();
          if (next.done) {
            finished = true;
            pending.push(...translator.finish());
            if (!translator.done()) throw new UpstreamFailureError(streamInterruptedError(candidate.provider.slug));
          } else {
            pending.push(...translator.push(next.value));
          }
        }
        if (pending.length > 0) {
          for (const chunk of pending) {
            producedText += chunkText(chunk);
            controller.enqueue(encodeChunk(chunk));
          }
          pending = [];
          return;
        }
        // Settle before the last byte: a client that saw [DONE] has its usage recorded.
        await done(true, true);
        controller.enqueue(encodeSseEvent('[DONE]'));
        controller.close();
      } catch (error) {
        const upstream = error instanceof UpstreamFailureError
          ? error.upstream
          : upstreamErrorFromFetchFailure(error, candidate.provider.slug);
        services.deps.logger.warn('stream_failed_after_start', {
          request_id: c.get('requestId'),
          provider: candidate.provider.slug,
          code: upstream.code,
        });
        exchange.abort();
        await done(false, false, upstream.code);
        controller.enqueue(encodeSseEvent(JSON.stringify(upstreamErrorBody(upstream))));
        controller.close();
      }
    },
    async cancel() {
      // The client went away: stop the upstream call, settle what was produced.
      exchange.abort();
      await done(true, false);
    },
  });

  c.header('content-type', 'text/event-stream; charset=utf-8');
  c.header('cache-control', 'no-cache');
  c.header('x-accel-buffering', 'no');
  return c.body(body, 200);
}
