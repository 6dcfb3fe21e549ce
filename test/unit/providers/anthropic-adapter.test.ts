import { describe, expect, it } from 'vitest';
import type { ChatCompletionRequest } from '../../../supabase/functions/_shared/openai/types.ts';
import {
  RequestMappingError,
  UnsupportedFeatureError,
  UpstreamFailureError,
} from '../../../supabase/functions/_shared/providers/errors.ts';
import { getProviderAdapter } from '../../../supabase/functions/_shared/providers/registry.ts';
import { ANTHROPIC_ERROR_STREAM, ANTHROPIC_TEXT_STREAM, ANTHROPIC_TOOL_STREAM } from './fixtures/anthropic-streams.ts';
import {
  chatContext,
  finishReasons,
  streamedText,
  streamedToolCalls,
  streamOfText,
  translateStream,
} from './helpers.ts';

/** A fixed "now" for parseError (only a Retry-After date would depend on it). */
const nowMs = Date.UTC(2025, 0, 1);

const adapter = getProviderAdapter('anthropic');
const ctx = chatContext('anthropic', { endpoint: { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' } });
const bodyOf = (req: ChatCompletionRequest, overrides = {}): Record<string, unknown> =>
  JSON.parse(adapter.buildChatRequest(req, { ...ctx, ...overrides }).body ?? '') as Record<string, unknown>;

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Weather by city',
    parameters: { type: 'object', properties: { city: { type: 'string' } } },
  },
};

describe('anthropic adapter: request mapping', () => {
  it('posts to /v1/messages with x-api-key and anthropic-version', () => {
    const upstream = adapter.buildChatRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }, ctx);
    expect(upstream.url).toBe('https://api.anthropic.com/v1/messages');
    expect(upstream.headers).toEqual({
      'x-api-key': 'sk-test-key-1234',
      'anthropic-version': '2023-06-01',
      'content-type': 'application/json',
      accept: 'application/json',
    });
  });

  it('hoists system and developer messages, maps stop, temperature, user and the default max_tokens', () => {
    const body = bodyOf({
      model: 'm',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use metric.' }] },
        { role: 'user', content: 'hi' },
      ],
      stop: 'END',
      temperature: 0.3,
      top_p: 0.9,
      user: 'user-7',
      seed: 1,
    });
    expect(body).toEqual({
      model: 'upstream-model',
      system: 'You are terse.\n\nUse metric.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      max_tokens: 4096,
      stop_sequences: ['END'],
      temperature: 0.3,
      top_p: 0.9,
      metadata: { user_id: 'user-7' },
    });
  });

  it('takes max_completion_tokens, then max_tokens, then ctx.defaultMaxTokens', () => {
    const messages: ChatCompletionRequest['messages'] = [{ role: 'user', content: 'x' }];
    expect(bodyOf({ model: 'm', messages, max_tokens: 50, max_completion_tokens: 70 }).max_tokens).toBe(70);
    expect(bodyOf({ model: 'm', messages, max_tokens: 50 }).max_tokens).toBe(50);
    expect(bodyOf({ model: 'm', messages }, { defaultMaxTokens: 1024 }).max_tokens).toBe(1024);
  });

  it('maps tools, tool_choice, assistant tool_calls and merges consecutive tool results into one user turn', () => {
    const body = bodyOf(
      {
        model: 'm',
        messages: [
          { role: 'user', content: 'weather in Paris and time?' },
          {
            role: 'assistant',
            content: 'Let me check.',
            tool_calls: [
              { id: 'toolu_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
              { id: 'toolu_b', type: 'function', function: { name: 'get_time', arguments: '' } },
            ],
          },
          { role: 'tool', tool_call_id: 'toolu_a', content: '21C' },
          { role: 'tool', tool_call_id: 'toolu_b', content: [{ type: 'text', text: '10:00' }] },
          { role: 'user', content: 'thanks' },
        ],
        tools: [weatherTool, { type: 'function', function: { name: 'get_time' } }],
        tool_choice: 'required',
        parallel_tool_calls: false,
      },
      { stream: true },
    );
    expect(body.tools).toEqual([
      {
        name: 'get_weather',
        description: 'Weather by city',
        input_schema: { type: 'object', properties: { city: { type: 'string' } } },
      },
      { name: 'get_time', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(body.tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    expect(body.stream).toBe(true);
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'weather in Paris and time?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_b', name: 'get_time', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_a', content: '21C' },
          { type: 'tool_result', tool_use_id: 'toolu_b', content: '10:00' },
          { type: 'text', text: 'thanks' },
        ],
      },
    ]);
  });

  it.each(
    [
      ['auto', { type: 'auto' }],
      ['none', { type: 'none' }],
      [{ type: 'function', function: { name: 'get_weather' } }, { type: 'tool', name: 'get_weather' }],
    ] as const,
  )('maps tool_choice %j', (choice, expected) => {
    expect(
      bodyOf({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [weatherTool], tool_choice: choice })
        .tool_choice,
    ).toEqual(expected);
  });

  it('maps images from data URLs and http URLs', () => {
    const body = bodyOf({
      model: 'm',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/a.jpg' } },
          ],
        },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/a.jpg' } },
        ],
      },
    ]);
  });

  it('turns JSON mode into a system instruction (not enforced by Anthropic)', () => {
    const messages: ChatCompletionRequest['messages'] = [{ role: 'system', content: 'Be nice.' }, {
      role: 'user',
      content: 'x',
    }];
    expect(bodyOf({ model: 'm', messages, response_format: { type: 'json_object' } }).system).toBe(
      'Be nice.\n\nRespond only with a single valid JSON object, with no text before or after it.',
    );
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    expect(
      bodyOf({
        model: 'm',
        messages: [{ role: 'user', content: 'x' }],
        response_format: { type: 'json_schema', json_schema: { name: 's', schema } },
      }).system,
    ).toBe(
      `Respond only with a single valid JSON value that conforms to this JSON Schema, with no text before or after it: ${
        JSON.stringify(schema)
      }`,
    );
  });

  it.each([
    [{ n: 2 }, 'n'],
    [{ logprobs: true }, 'logprobs'],
    [{ temperature: 1.5 }, 'temperature'],
    [{ presence_penalty: 0.5 }, 'presence_penalty'],
  ])('refuses %j with an UnsupportedFeatureError naming %s', (extra, param) => {
    const build = () =>
      adapter.buildChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }], ...extra }, ctx);
    expect(build).toThrow(UnsupportedFeatureError);
    try {
      build();
    } catch (error) {
      expect(error instanceof UnsupportedFeatureError && error.param).toBe(param);
    }
  });

  it('refuses tool call arguments that are not a JSON object, naming the field', () => {
    const build = () =>
      adapter.buildChatRequest(
        {
          model: 'm',
          messages: [{
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '[1]' } }],
          }],
        },
        ctx,
      );
    expect(build).toThrow(RequestMappingError);
    try {
      build();
    } catch (error) {
      expect(error instanceof RequestMappingError && error.param).toBe('messages.0.tool_calls.0.function.arguments');
    }
  });
});

describe('anthropic adapter: response', () => {
  it('maps text, tool_use, stop_reason and usage (cache tokens count as prompt)', () => {
    const body = {
      id: 'msg_01',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5-20250929',
      content: [
        { type: 'thinking', thinking: 'hmm', signature: 'x' },
        { type: 'text', text: 'Checking the weather.' },
        { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 100, cache_creation_input_tokens: 20, cache_read_input_tokens: 30, output_tokens: 40 },
    };
    expect(adapter.parseChatResponse(body, ctx)).toEqual({
      id: 'chatcmpl-req1',
      object: 'chat.completion',
      created: 1_750_000_000,
      model: 'public-model',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Checking the weather.',
            tool_calls: [{
              id: 'toolu_01',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            }],
          },
          finish_reason: 'tool_calls',
          logprobs: null,
        },
      ],
      usage: {
        prompt_tokens: 150,
        completion_tokens: 40,
        total_tokens: 190,
        prompt_tokens_details: { cached_tokens: 30 },
      },
    });
  });

  it.each([
    ['end_turn', 'stop'],
    ['max_tokens', 'length'],
    ['stop_sequence', 'stop'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
  ])('maps stop_reason %s to %s', (stopReason, finish) => {
    const body = {
      type: 'message',
      content: [{ type: 'text', text: 'x' }],
      stop_reason: stopReason,
      usage: { input_tokens: 1, output_tokens: 1 },
    };
    expect(adapter.parseChatResponse(body, ctx).choices[0]?.finish_reason).toBe(finish);
  });
});

describe('anthropic adapter: stream', () => {
  it('translates a recorded text stream with usage', async () => {
    const translator = adapter.createStreamTranslator({ ...ctx, stream: true, includeUsage: true });
    const chunks = await translateStream(streamOfText(ANTHROPIC_TEXT_STREAM), translator);
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Hello' },
      { content: '!' },
      {},
      null,
    ]);
    expect(streamedText(chunks)).toBe('Hello!');
    expect(finishReasons(chunks)).toEqual(['stop']);
    expect(chunks[4]).toEqual({
      id: 'chatcmpl-req1',
      object: 'chat.completion.chunk',
      created: 1_750_000_000,
      model: 'public-model',
      choices: [],
      usage: {
        prompt_tokens: 40,
        completion_tokens: 15,
        total_tokens: 55,
        prompt_tokens_details: { cached_tokens: 5 },
      },
    });
    expect(translator.done()).toBe(true);
  });

  it('translates a recorded tool-use stream: thinking dropped, tool calls indexed from 0', async () => {
    const translator = adapter.createStreamTranslator({ ...ctx, stream: true });
    const chunks = await translateStream(streamOfText(ANTHROPIC_TOOL_STREAM), translator);
    expect(streamedText(chunks)).toBe('Checking.');
    expect(streamedToolCalls(chunks)).toEqual([
      { id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', arguments: '{"city": "Paris"}' },
      { id: 'toolu_02', name: 'get_time', arguments: '{}' },
    ]);
    const toolDeltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(toolDeltas[0]).toEqual({
      index: 0,
      id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6',
      type: 'function',
      function: { name: 'get_weather', arguments: '' },
    });
    expect(toolDeltas.map((d) => d.index)).toEqual([0, 0, 0, 1, 1]);
    expect(finishReasons(chunks)).toEqual(['tool_calls']);
    expect(translator.usage()).toEqual({ prompt_tokens: 472, completion_tokens: 89, total_tokens: 561 });
  });

  it('throws a retryable overloaded error for an error event mid-stream', async () => {
    const translator = adapter.createStreamTranslator({ ...ctx, stream: true });
    const run = translateStream(streamOfText(ANTHROPIC_ERROR_STREAM), translator);
    await expect(run).rejects.toBeInstanceOf(UpstreamFailureError);
    await run.catch((error: unknown) => {
      expect(error instanceof UpstreamFailureError && error.upstream).toEqual({
        status: 502,
        type: 'upstream_error',
        code: 'upstream_overloaded',
        message: 'Anthropic is overloaded (in stream): Overloaded',
        retryable: true,
      });
    });
    expect(translator.done()).toBe(false);
  });
});

describe('anthropic adapter: errors and capabilities', () => {
  const errorBody = (type: string, message: string) => JSON.stringify({ type: 'error', error: { type, message } });

  it('maps 529 overloaded_error to a retryable 502', () => {
    expect(adapter.parseError(529, errorBody('overloaded_error', 'Overloaded'), new Headers(), nowMs)).toEqual({
      status: 502,
      type: 'upstream_error',
      code: 'upstream_overloaded',
      message: 'Anthropic is overloaded (HTTP 529): Overloaded',
      retryable: true,
    });
  });

  it('maps 429 with retry-after and rate-limit reset headers', () => {
    const error = adapter.parseError(
      429,
      errorBody('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'),
      new Headers({ 'retry-after': '13' }),
      nowMs,
    );
    expect(error).toMatchObject({ status: 429, code: 'upstream_rate_limited', retryable: true, retryAfterMs: 13_000 });
  });

  it('maps 401 authentication_error to 502 and 500 api_error to a retryable 502', () => {
    expect(adapter.parseError(401, errorBody('authentication_error', 'invalid x-api-key'), new Headers(), nowMs))
      .toMatchObject({
        status: 502,
        code: 'upstream_auth_failed',
        retryable: false,
      });
    expect(adapter.parseError(500, errorBody('api_error', 'Internal server error'), new Headers(), nowMs))
      .toMatchObject({
        status: 502,
        code: 'upstream_unavailable',
        retryable: true,
      });
  });

  it('offers no embeddings and a models health probe', () => {
    expect(adapter.supports).toEqual({
      chat: true,
      embeddings: false,
      streaming: true,
      tools: true,
      multipleChoices: false,
    });
    expect(adapter.buildEmbeddingsRequest).toBeUndefined();
    expect(adapter.buildHealthProbe({ kind: 'anthropic', baseUrl: 'https://api.anthropic.com' }, 'k')).toEqual({
      url: 'https://api.anthropic.com/v1/models?limit=1',
      method: 'GET',
      headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', accept: 'application/json' },
    });
  });
});
