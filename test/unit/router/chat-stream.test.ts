import { describe, expect, it } from 'vitest';
import { UpstreamFailureError } from '../../../supabase/functions/_shared/providers/errors.ts';
import { getProviderAdapter } from '../../../supabase/functions/_shared/providers/registry.ts';
import type { StreamSource } from '../../../supabase/functions/llm-router/stream.ts';
import { chatStreamSource } from '../../../supabase/functions/llm-router/dialects/openai-chat-stream.ts';
import { chatContext, streamOfPieces } from '../providers/helpers.ts';

const ctx = chatContext('openai', { publicModel: 'public-alias', requestId: 'req_1', created: 42, stream: true });

function upstream(events: string[], cuts: number[] = []): ReadableStream<Uint8Array> {
  return streamOfPieces(new TextEncoder().encode(events.map((data) => `data: ${data}\n\n`).join('')), cuts);
}

async function drain(source: StreamSource): Promise<string> {
  let text = '';
  for (let bytes = await source.next(); bytes !== undefined; bytes = await source.next()) {
    text += new TextDecoder().decode(bytes);
  }
  return text;
}

const content = (piece: string, finish: string | null = null) =>
  JSON.stringify({
    id: 'chatcmpl-up',
    object: 'chat.completion.chunk',
    created: 7,
    model: 'gpt-4o-mini',
    choices: [{ index: 0, delta: { content: piece }, finish_reason: finish }],
  });
const usage = JSON.stringify({
  id: 'chatcmpl-up',
  object: 'chat.completion.chunk',
  created: 7,
  model: 'gpt-4o-mini',
  choices: [],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
});

describe('streamed chat from an OpenAI-format upstream', () => {
  it('forwards content events with the gateway id, created and model, and drops usage the caller did not ask for', async () => {
    const source = chatStreamSource(
      upstream([content('hel'), content('lo', 'stop'), usage, '[DONE]'], [5, 40, 90]),
      ctx,
      getProviderAdapter('openai'),
      'p',
    );
    const text = await drain(source);
    const events = text.split('\n\n').filter(Boolean).map((event) => JSON.parse(event.slice(6)));
    expect(events.map((event) => [event.id, event.created, event.model])).toEqual([
      ['chatcmpl-req_1', 42, 'public-alias'],
      ['chatcmpl-req_1', 42, 'public-alias'],
    ]);
    expect(events.map((event) => event.choices[0].delta.content).join('')).toBe('hello');
    expect(source.usage()).toEqual({ promptTokens: 3, completionTokens: 2, cacheReadTokens: 0 });
  });

  it('sends the usage chunk at the end when the caller asked for it', async () => {
    const source = chatStreamSource(
      upstream([content('hi', 'stop'), usage, '[DONE]']),
      { ...ctx, includeUsage: true },
      getProviderAdapter('openai'),
      'p',
    );
    const last = (await drain(source)).split('\n\n').filter(Boolean).at(-1)!;
    expect(JSON.parse(last.slice(6))).toMatchObject({
      id: 'chatcmpl-req_1',
      choices: [],
      usage: { completion_tokens: 2 },
    });
  });

  it('passes unknown finish reasons through the translator', async () => {
    const source = chatStreamSource(upstream([content('x', 'eos'), '[DONE]']), ctx, getProviderAdapter('openai'), 'p');
    expect(JSON.parse((await drain(source)).slice(6, -2)).choices[0].finish_reason).toBe('stop');
  });

  it('counts what was sent when a cut stream reported no usage, and fails the cut', async () => {
    const source = chatStreamSource(upstream([content('one two three')]), ctx, getProviderAdapter('openai'), 'p');
    expect(await source.next()).toBeDefined();
    await expect(source.next()).rejects.toBeInstanceOf(UpstreamFailureError);
    expect(source.usage().completionTokens).toBeGreaterThan(0);
  });

  it('fails on an error event', async () => {
    const source = chatStreamSource(
      upstream([JSON.stringify({ error: { message: 'overloaded', type: 'server_error' } })]),
      ctx,
      getProviderAdapter('openai'),
      'p',
    );
    await expect(source.next()).rejects.toBeInstanceOf(UpstreamFailureError);
  });
});
