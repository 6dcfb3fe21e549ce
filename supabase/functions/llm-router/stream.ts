import type { Context } from 'hono';
import type { AppEnv } from '../_shared/hono-env.ts';
import { UpstreamFailureError } from '../_shared/providers/errors.ts';
import type { UpstreamError } from '../_shared/providers/types.ts';
import { upstreamErrorFromFetchFailure } from '../_shared/providers/upstream-errors.ts';
import type { RouteCandidate } from '../_shared/router/plan.ts';
import type { UpstreamExchange } from '../_shared/router/upstream.ts';
import type { RouterServices } from './services.ts';

/** Tokens of an answer: as the upstream reported them, or counted from what was sent. */
export interface TokenUsage {
  /** Absent when the upstream did not report it: the estimate counted at parse time stands. */
  promptTokens?: number;
  completionTokens: number;
  /** The parts of the prompt written to and read from the provider's prompt cache (absent: none). */
  cacheWriteTokens?: number;
  cacheReadTokens?: number;
}

/**
 * An upstream stream as the client's dialect: the bytes to send, in order.
 * A dialect supplies one per attempt (forwarding when the client speaks the
 * provider's format, translating otherwise).
 */
export interface StreamSource<Answer = never> {
  /**
   * The next bytes for the client, or undefined once the upstream ended
   * properly. Throws UpstreamFailureError for an error event or a cut.
   */
  next(): Promise<Uint8Array | undefined>;
  /** For settlement, however the stream ended. */
  usage(): TokenUsage;
  /** The last bytes, sent after settlement (`data: [DONE]`). */
  end(): Uint8Array;
  /** The error event for a failure after the first byte. */
  failure(error: UpstreamError): Uint8Array;
  /** The whole answer a complete stream amounted to, for dialects that keep answers (stored Responses). */
  answer?(): Answer | undefined;
}

/** An upstream stream that has produced its first bytes: from here on there is no retry. */
export interface PrimedStream<Answer = never> {
  candidate: RouteCandidate;
  exchange: UpstreamExchange;
  source: StreamSource<Answer>;
  first: Uint8Array | undefined;
  startedAt: number;
}

/**
 * Reads until the first bytes for the client exist. Failures up to that
 * point (an error event, a cut) are UpstreamFailureErrors, so dispatch may
 * retry or fall back: nothing has been sent to the client yet.
 */
export async function primeStream<Answer>(
  candidate: RouteCandidate,
  exchange: UpstreamExchange,
  source: StreamSource<Answer>,
  startedAt: number,
): Promise<PrimedStream<Answer>> {
  try {
    return { candidate, exchange, source, first: await source.next(), startedAt };
  } catch (error) {
    exchange.abort();
    exchange.release();
    if (error instanceof UpstreamFailureError) throw error;
    throw new UpstreamFailureError(upstreamErrorFromFetchFailure(error, candidate.provider.slug));
  }
}

/** How a relayed stream ended, for settlement. */
export interface StreamOutcome<Answer = unknown> {
  usage: TokenUsage;
  /** The upstream reached its proper end (else: cut by the client or the upstream). */
  complete: boolean;
  /** The whole answer, when complete and the source assembles one. */
  answer?: Answer;
}

/**
 * Relays a primed stream to the client. A failure after the first byte
 * cannot be retried: the client gets the dialect's error event and no end
 * marker. A client disconnect cancels the upstream request. However it ends,
 * `onEnd` runs once (settlement) before the stream closes.
 */
export function relayStream<Answer>(
  c: Context<AppEnv>,
  services: RouterServices,
  primed: PrimedStream<Answer>,
  onEnd: (outcome: StreamOutcome<Answer>) => Promise<void>,
): Response {
  const { candidate, exchange, source } = primed;
  let first = primed.first;
  let closed = false;
  const done = async (ok: boolean, complete: boolean, reason?: string) => {
    if (closed) return;
    closed = true;
    exchange.release();
    const latency = services.deps.clock.now().getTime() - primed.startedAt;
    const { id: providerId } = candidate.provider;
    if (ok) services.health.recordSuccess(providerId, candidate.model.upstreamModel, latency);
    else services.health.recordFailure(providerId, candidate.model.upstreamModel, latency, reason ?? 'stream_failed');
    try {
      await onEnd({ usage: source.usage(), complete, answer: complete ? source.answer?.() : undefined });
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
        const bytes = first ?? await source.next();
        first = undefined;
        if (bytes !== undefined) {
          controller.enqueue(bytes);
          return;
        }
        // Settle before the last byte: a client that saw the end has its usage recorded.
        await done(true, true);
        controller.enqueue(source.end());
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
        controller.enqueue(source.failure(upstream));
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
