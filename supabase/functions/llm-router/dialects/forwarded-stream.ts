// An upstream stream already in the client's format (Responses from OpenAI,
// Messages from Anthropic): forwarded byte for byte as it arrives, its events
// only scanned by the dialect (usage, the end, an error event).
import { UpstreamFailureError } from '../../_shared/providers/errors.ts';
import type { UpstreamError } from '../../_shared/providers/types.ts';
import { streamInterruptedError } from '../../_shared/providers/upstream-errors.ts';
import { type SseEvent, SseLineParser } from '../../_shared/sse.ts';
import type { StreamSource, TokenUsage } from '../stream.ts';

const NOTHING = new Uint8Array(0);

export abstract class ForwardedSseStream<Answer = never> implements StreamSource<Answer> {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private readonly events = new SseLineParser();
  /** An error event the client already has (forwarded with its bytes). */
  protected forwardedError: UpstreamError | undefined;

  constructor(body: ReadableStream<Uint8Array>, protected readonly provider: string) {
    this.reader = body.getReader();
  }

  /** Reads the events just forwarded: usage, the proper end, an error event. */
  protected abstract scan(events: SseEvent[]): void;
  /** The upstream's own last event was seen (else the stream was cut). */
  protected abstract get finished(): boolean;
  /** The dialect's error event, for a failure the upstream did not report itself. */
  protected abstract errorEvent(error: UpstreamError): Uint8Array;
  abstract usage(): TokenUsage;

  async next(): Promise<Uint8Array | undefined> {
    if (this.forwardedError) throw new UpstreamFailureError(this.forwardedError);
    for (;;) {
      const { value, done } = await this.reader.read();
      if (done) {
        this.scan(this.events.end(this.decoder.decode()));
        if (this.forwardedError) throw new UpstreamFailureError(this.forwardedError);
        if (!this.finished) throw new UpstreamFailureError(streamInterruptedError(this.provider));
        return undefined;
      }
      this.scan(this.events.push(this.decoder.decode(value, { stream: true })));
      if (value.byteLength > 0) return value;
    }
  }

  end(): Uint8Array {
    return NOTHING; // the upstream's own last event was the end
  }

  failure(error: UpstreamError): Uint8Array {
    return this.forwardedError ? NOTHING : this.errorEvent(error);
  }
}
