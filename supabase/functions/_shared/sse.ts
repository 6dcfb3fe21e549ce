// Server-sent events: parse an upstream byte stream into events, encode events to bytes.
// Follows the WHATWG event-stream rules, except that a final event without a trailing
// blank line is still dispatched (some upstreams end the body without one).

export interface SseEvent {
  event?: string;
  data: string;
  id?: string;
}

const encoder = new TextEncoder();

export async function* parseSseStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = stream.getReader();
  // stream mode keeps a UTF-8 sequence split across chunks intact
  const decoder = new TextDecoder('utf-8');
  const parser = new SseLineParser();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    finished = true;
    yield* parser.end(decoder.decode());
  } finally {
    // the consumer stopped early: cancel so the upstream connection is released
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** Incremental line splitter and field accumulator; text in, events out. */
export class SseLineParser {
  private buffer = '';
  private data: string[] = [];
  private eventType = '';
  private lastId: string | undefined;
  private started = false;

  push(text: string): SseEvent[] {
    this.buffer += text;
    return this.drain(false);
  }

  end(text = ''): SseEvent[] {
    this.buffer += text;
    const events = this.drain(true);
    if (this.buffer.length > 0) this.processLine(this.buffer, events);
    this.buffer = '';
    this.dispatch(events);
    return events;
  }

  private drain(atEnd: boolean): SseEvent[] {
    const events: SseEvent[] = [];
    if (!this.started && this.buffer.length > 0) {
      if (this.buffer.charCodeAt(0) === 0xfeff) this.buffer = this.buffer.slice(1);
      this.started = this.buffer.length > 0;
    }
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf('\r', start);
      const lf = this.buffer.indexOf('\n', start);
      if (cr === -1 && lf === -1) break;
      const isCr = cr !== -1 && (lf === -1 || cr < lf);
      const end = isCr ? cr : lf;
      let next = end + 1;
      if (isCr) {
        // a CR at the end of this chunk may be the first half of CRLF: wait for more
        if (next === this.buffer.length && !atEnd) break;
        if (this.buffer[next] === '\n') next += 1;
      }
      this.processLine(this.buffer.slice(start, end), events);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  private processLine(line: string, events: SseEvent[]): void {
    if (line === '') {
      this.dispatch(events);
      return;
    }
    if (line.startsWith(':')) return; // comment, often a keep-alive
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.eventType = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    // 'retry' and unknown fields are ignored: we never reconnect
  }

  private dispatch(events: SseEvent[]): void {
    if (this.data.length > 0) {
      const event: SseEvent = { data: this.data.join('\n') };
      if (this.eventType !== '') event.event = this.eventType;
      if (this.lastId !== undefined) event.id = this.lastId;
      events.push(event);
    }
    this.data = [];
    this.eventType = '';
  }
}

/** One SSE event as bytes; multi-line data becomes several `data:` lines. */
export function encodeSseEvent(data: string, event?: string): Uint8Array {
  let text = event === undefined ? '' : `event: ${event.replace(/[\r\n]/g, '')}\n`;
  for (const line of data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return encoder.encode(`${text}\n`);
}
