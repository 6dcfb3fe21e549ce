import { describe, expect, it } from 'vitest';
import {
  encodeSseEvent,
  parseSseStream,
  type SseEvent,
  SseLineParser,
} from '../../../supabase/functions/_shared/sse.ts';
import { collect, streamOfPieces, streamOfText } from './helpers.ts';

const SAMPLE = ': keep-alive comment\r\n' +
  'event: message_start\r\n' +
  'data: {"type":"message_start","text":"héllo — 日本 🚀"}\r\n' +
  '\r\n' +
  'data: line one\n' +
  'data: line two\n' +
  'id: 7\n' +
  'retry: 1000\n' +
  '\n' +
  'data:no-space\r' +
  '\r' +
  'event: ignored-without-data\n' +
  '\n' +
  'data: [DONE]'; // final event without a trailing blank line

const EXPECTED: SseEvent[] = [
  { event: 'message_start', data: '{"type":"message_start","text":"héllo — 日本 🚀"}' },
  { data: 'line one\nline two', id: '7' },
  { data: 'no-space', id: '7' },
  { data: '[DONE]', id: '7' },
];

describe('parseSseStream', () => {
  it('parses CRLF, LF and CR lines, comments, multi-line data, ids and a final unterminated event', async () => {
    expect(await collect(parseSseStream(streamOfText(SAMPLE)))).toEqual(EXPECTED);
  });

  it('gives the same events when the bytes are split at every single offset', async () => {
    const bytes = new TextEncoder().encode(SAMPLE);
    for (let cut = 1; cut < bytes.length; cut += 1) {
      const events = await collect(parseSseStream(streamOfPieces(bytes, [cut])));
      expect(events, `split at byte ${cut}`).toEqual(EXPECTED);
    }
  });

  it('gives the same events when every byte arrives alone (mid UTF-8 sequences included)', async () => {
    const bytes = new TextEncoder().encode(SAMPLE);
    const cuts = Array.from({ length: bytes.length }, (_, i) => i);
    expect(await collect(parseSseStream(streamOfPieces(bytes, cuts)))).toEqual(EXPECTED);
  });

  it('splits a CRLF pair across two chunks without inventing an empty line', async () => {
    const text = 'data: a\r\ndata: b\r\n\r\n';
    const cut = text.indexOf('\n'); // chunk 1 ends in "\r"
    expect(await collect(parseSseStream(streamOfText(text, [cut])))).toEqual([{ data: 'a\nb' }]);
  });

  it('returns nothing for an empty stream or a stream of comments only', async () => {
    expect(await collect(parseSseStream(streamOfText('')))).toEqual([]);
    expect(await collect(parseSseStream(streamOfText(': ping\n\n: ping\n\n')))).toEqual([]);
  });

  it('cancels the upstream body when the consumer stops early', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('data: 1\n\ndata: 2\n\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const event of parseSseStream(body)) {
      expect(event.data).toBe('1');
      break;
    }
    expect(cancelled).toBe(true);
  });

  it('strips a leading byte-order mark when fed text directly', () => {
    const parser = new SseLineParser();
    expect(parser.push('\uFEFFdata: x\n\n')).toEqual([{ data: 'x' }]);
  });

  it('propagates a stream error (a cut upstream socket) to the consumer', async () => {
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls += 1;
        if (pulls === 1) controller.enqueue(new TextEncoder().encode('data: 1\n\n'));
        else controller.error(new TypeError('terminated'));
      },
    });
    const seen: string[] = [];
    await expect(async () => {
      for await (const event of parseSseStream(body)) seen.push(event.data);
    }).rejects.toThrow('terminated');
    expect(seen).toEqual(['1']);
  });
});

describe('encodeSseEvent', () => {
  const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

  it('writes data and an optional event name, ending with a blank line', () => {
    expect(decode(encodeSseEvent('{"a":1}'))).toBe('data: {"a":1}\n\n');
    expect(decode(encodeSseEvent('x', 'error'))).toBe('event: error\ndata: x\n\n');
  });

  it('splits multi-line data into several data lines that parse back to the same text', async () => {
    const bytes = encodeSseEvent('one\ntwo\r\nthree', 'multi');
    expect(decode(bytes)).toBe('event: multi\ndata: one\ndata: two\ndata: three\n\n');
    expect(await collect(parseSseStream(streamOfPieces(bytes, [])))).toEqual([{
      event: 'multi',
      data: 'one\ntwo\nthree',
    }]);
  });
});
