import { describe, expect, it } from 'vitest';
import {
  type AnthropicMessagesRequest,
  parseAnthropicMessagesRequest,
} from '../../../supabase/functions/_shared/anthropic/schemas.ts';
import { errorBody, HttpError } from '../../../supabase/functions/_shared/errors.ts';
import {
  estimateAnthropicPromptTokens,
  toAnthropicMessage,
  toChatRequest,
} from '../../../supabase/functions/llm-router/dialects/anthropic-translate.ts';
import { RequestMappingError } from '../../../supabase/functions/_shared/providers/errors.ts';
import { countTextTokens } from '../../../supabase/functions/_shared/router/tokens.ts';
import { ForwardedMessagesStream } from '../../../supabase/functions/llm-router/dialects/anthropic-messages-stream.ts';

// The Messages dialect's pure parts: validation, the mapping to the chat shape
// other providers take, and the answer back.
const request = (extra: Partial<AnthropicMessagesRequest>): AnthropicMessagesRequest => ({
  model: 'm',
  max_tokens: 10,
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

function mappingError(build: () => unknown): RequestMappingError {
  try {
    build();
  } catch (error) {
    if (error instanceof RequestMappingError) return error;
    throw error;
  }
  throw new Error('no mapping error');
}

describe('parseAnthropicMessagesRequest', () => {
  it('names a missing max_tokens and an unknown block type by their paths', () => {
    const missing = parseAnthropicMessagesRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(missing).toMatchObject({ ok: false, param: 'max_tokens' });
    const unknown = parseAnthropicMessagesRequest({
      model: 'm',
      max_tokens: 5,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'hologram' }] }],
    });
    expect(unknown).toMatchObject({ ok: false, param: 'messages.0.content.1.type' });
  });

  it('keeps fields it does not know (a pass-through sends them on)', () => {
    const parsed = parseAnthropicMessagesRequest({ ...request({}), future_field: { a: 1 } });
    expect(parsed.ok && parsed.value.future_field).toEqual({ a: 1 });
  });
});

describe('toChatRequest', () => {
  it('maps system, text, images, tool use and results, tools, tool_choice and stop sequences', () => {
    const chat = toChatRequest(
      request({
        system: [{ type: 'text', text: 'Be brief.' }],
        stop_sequences: ['END'],
        temperature: 0.5,
        tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
        tool_choice: { type: 'any', disable_parallel_tool_use: true },
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'look' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } },
            ],
          },
          {
            role: 'assistant',
            content: [
              { type: 'thinking', thinking: 'hmm', signature: 'sig' },
              { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
            ],
          },
          {
            role: 'user',
            content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }, { type: 'text', text: 'so?' }],
          },
        ],
      }),
      true,
    );
    expect(chat).toEqual({
      model: 'm',
      max_tokens: 10,
      stream: true,
      stop: ['END'],
      temperature: 0.5,
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'look' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{
            id: 'toolu_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          }],
        },
        { role: 'tool', tool_call_id: 'toolu_1', content: 'sunny' },
        { role: 'user', content: 'so?' },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
    });
  });

  it('refuses what the chat shape cannot express, naming the field', () => {
    expect(mappingError(() => toChatRequest(request({ top_k: 3 }), false)).param).toBe('top_k');
    expect(
      mappingError(() => toChatRequest(request({ thinking: { type: 'enabled', budget_tokens: 1024 } }), false)).param,
    ).toBe('thinking');
    expect(
      mappingError(() =>
        toChatRequest(request({ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }), false)
      )
        .param,
    ).toBe('tools.0');
    const document = { type: 'document' as const, source: { type: 'text', data: 'x' } };
    expect(
      mappingError(() => toChatRequest(request({ messages: [{ role: 'user', content: [document] }] }), false)).param,
    ).toBe('messages.0.content.0');
  });
});

describe('toAnthropicMessage', () => {
  it('turns a chat answer into a message, with cached prompt tokens counted apart', () => {
    const message = toAnthropicMessage(
      {
        id: 'x',
        object: 'chat.completion',
        created: 1,
        model: 'm',
        choices: [{
          index: 0,
          message: {
            role: 'assistant',
            content: 'ok',
            tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
          },
          finish_reason: 'tool_calls',
          logprobs: null,
        }],
        usage: {
          prompt_tokens: 10,
          completion_tokens: 4,
          total_tokens: 14,
          prompt_tokens_details: { cached_tokens: 6 },
        },
      },
      'msg_1',
      'alias',
    );
    expect(message).toEqual({
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'alias',
      content: [{ type: 'text', text: 'ok' }, { type: 'tool_use', id: 'c1', name: 'f', input: { a: 1 } }],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 4, output_tokens: 4, cache_creation_input_tokens: 0, cache_read_input_tokens: 6 },
    });
  });
});

describe('estimateAnthropicPromptTokens', () => {
  it('counts more for a longer prompt', () => {
    const short = estimateAnthropicPromptTokens(request({}));
    const long = estimateAnthropicPromptTokens(request({ system: 'You are a careful assistant who answers briefly.' }));
    expect(long).toBeGreaterThan(short);
  });
});

describe("errors in Anthropic's shape", () => {
  it('maps each status to its Anthropic type', () => {
    const body = (code: ConstructorParameters<typeof HttpError>[0]) => errorBody(new HttpError(code, 'm'), 'anthropic');
    expect(body('budget_exceeded')).toEqual({ type: 'error', error: { type: 'billing_error', message: 'm' } });
    expect(body('rate_limited')).toEqual({ type: 'error', error: { type: 'rate_limit_error', message: 'm' } });
    expect(body('validation_failed')).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'm' },
    });
    expect(body('unauthorized')).toEqual({ type: 'error', error: { type: 'authentication_error', message: 'm' } });
    expect(body('upstream_timeout')).toEqual({ type: 'error', error: { type: 'timeout_error', message: 'm' } });
  });
});

describe('ForwardedMessagesStream', () => {
  const sse = (events: Record<string, unknown>[]) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const event of events) {
          controller.enqueue(new TextEncoder().encode(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`));
        }
        controller.close();
      },
    });
  const start = {
    type: 'message_start',
    message: { usage: { input_tokens: 7, output_tokens: 1, cache_read_input_tokens: 3 } },
  };
  const text = (value: string) => ({
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'text_delta', text: value },
  });

  async function drain(source: ForwardedMessagesStream): Promise<string> {
    let out = '';
    for (;;) {
      const bytes = await source.next().catch(() => undefined);
      if (bytes === undefined) return out;
      out += new TextDecoder().decode(bytes);
    }
  }

  it('forwards the bytes and settles on the usage the upstream reported', async () => {
    const events = [start, text('hello world'), { type: 'message_delta', usage: { output_tokens: 9 } }, {
      type: 'message_stop',
    }];
    const source = new ForwardedMessagesStream(sse(events), 'anthropic');
    const out = await drain(source);
    expect(out).toBe(events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(''));
    // message_start's input (7) includes the 3 read from the prompt cache.
    expect(source.usage()).toEqual({ promptTokens: 10, cacheWriteTokens: 0, cacheReadTokens: 3, completionTokens: 9 });
  });

  it('charges a stream cut before message_delta what it sent', async () => {
    const source = new ForwardedMessagesStream(sse([start, text('one two three four five six')]), 'anthropic');
    await drain(source);
    expect(source.usage()).toEqual({
      promptTokens: 10,
      cacheWriteTokens: 0,
      cacheReadTokens: 3,
      completionTokens: countTextTokens('one two three four five six'),
    });
  });
});
