import { describe, expect, it } from 'vitest';
import type { ChatCompletionRequest } from '../../../supabase/functions/_shared/openai/types.ts';
import { UpstreamFailureError } from '../../../supabase/functions/_shared/providers/errors.ts';
import { getProviderAdapter } from '../../../supabase/functions/_shared/providers/registry.ts';
import { OPENAI_TEXT_STREAM, OPENAI_TOOL_STREAM } from './fixtures/openai-streams.ts';
import {
  chatContext,
  embeddingsContext,
  finishReasons,
  streamedText,
  streamedToolCalls,
  streamOfText,
  translateStream,
} from './helpers.ts';

/** A fixed "now" for parseError (only a Retry-After date would depend on it). */
const nowMs = Date.UTC(2025, 0, 1);

const adapter = getProviderAdapter('openai');

const request: ChatCompletionRequest = {
  model: 'public-model',
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi' },
  ],
  temperature: 0.2,
  stream_options: { include_usage: false },
  reasoning_effort: 'low',
};

describe('openai adapter: request', () => {
  it('posts to {baseUrl}/chat/completions with a bearer key and the upstream model', () => {
    const ctx = chatContext('openai', { endpoint: { kind: 'openai', baseUrl: 'https://api.openai.com/v1/' } });
    const upstream = adapter.buildChatRequest(request, ctx);
    expect(upstream.url).toBe('https://api.openai.com/v1/chat/completions');
    expect(upstream.method).toBe('POST');
    expect(upstream.headers).toEqual({
      authorization: 'Bearer sk-test-key-1234',
      'content-type': 'application/json',
      accept: 'application/json',
    });
    // stream_options is rejected by OpenAI on non-streaming calls, so it is dropped
    expect(JSON.parse(upstream.body ?? '')).toEqual({
      model: 'upstream-model',
      messages: request.messages,
      temperature: 0.2,
      reasoning_effort: 'low',
      stream: false,
    });
  });

  it('always asks for usage when streaming', () => {
    const upstream = adapter.buildChatRequest(request, chatContext('openai', { stream: true }));
    const body = JSON.parse(upstream.body ?? '') as Record<string, unknown>;
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true });
    expect(upstream.headers.accept).toBe('text/event-stream');
  });

  it('serves openai_compatible base URLs under its own kind', () => {
    const compatible = getProviderAdapter('openai_compatible');
    expect(compatible.kind).toBe('openai_compatible');
    const ctx = chatContext('openai_compatible', {
      endpoint: { kind: 'openai_compatible', baseUrl: 'https://api.groq.com/openai/v1' },
    });
    expect(compatible.buildChatRequest(request, ctx).url).toBe('https://api.groq.com/openai/v1/chat/completions');
    expect(compatible.buildHealthProbe({ kind: 'openai_compatible', baseUrl: 'http://vllm:8000/v1' }, 'k')).toEqual({
      url: 'http://vllm:8000/v1/models',
      method: 'GET',
      headers: { authorization: 'Bearer k', accept: 'application/json' },
    });
  });
});

describe('openai adapter: response', () => {
  it('keeps the content, rewrites id/model/created, and keeps unmodelled fields', () => {
    const body = {
      id: 'chatcmpl-upstream',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o-mini-2024-07-18',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hello!', refusal: null, reasoning_content: 'thought' },
          logprobs: null,
          finish_reason: 'stop',
        },
        {
          index: 1,
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [{
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            }],
          },
          finish_reason: 'eos',
        },
      ],
      usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12, prompt_tokens_details: { cached_tokens: 4 } },
      system_fingerprint: 'fp_1',
    };
    expect(adapter.parseChatResponse(body, chatContext('openai'))).toEqual({
      id: 'chatcmpl-req1',
      object: 'chat.completion',
      created: 1_750_000_000,
      model: 'public-model',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hello!', refusal: null, reasoning_content: 'thought' },
          logprobs: null,
          finish_reason: 'stop',
        },
        {
          index: 1,
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [{
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            }],
          },
          logprobs: null,
          finish_reason: 'stop', // unknown upstream reasons end normally
        },
      ],
      usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12, prompt_tokens_details: { cached_tokens: 4 } },
      system_fingerprint: 'fp_1',
    });
  });

  it('throws a 502 UpstreamFailureError on a body that is not a chat completion', () => {
    expect(() => adapter.parseChatResponse({ choices: 'nope' }, chatContext('openai'))).toThrow(UpstreamFailureError);
    try {
      adapter.parseChatResponse({ choices: 'nope' }, chatContext('openai'));
    } catch (error) {
      expect(error instanceof UpstreamFailureError && error.upstream).toMatchObject({
        status: 502,
        code: 'upstream_bad_response',
      });
    }
  });
});

describe('openai adapter: stream', () => {
  it('translates a recorded text stream and holds usage for the final chunk', async () => {
    const ctx = chatContext('openai', { stream: true, includeUsage: true });
    const translator = adapter.createStreamTranslator(ctx);
    const chunks = await translateStream(streamOfText(OPENAI_TEXT_STREAM), translator);
    expect(chunks).toHaveLength(5);
    expect(chunks[0]).toEqual({
      id: 'chatcmpl-req1',
      object: 'chat.completion.chunk',
      created: 1_750_000_000,
      model: 'public-model',
      system_fingerprint: 'fp_0aa8d3e20b',
      choices: [{
        index: 0,
        delta: { role: 'assistant', content: '', refusal: null },
        logprobs: null,
        finish_reason: null,
      }],
    });
    expect(streamedText(chunks)).toBe('Hello there!');
    expect(finishReasons(chunks)).toEqual(['stop']);
    const usage = {
      prompt_tokens: 9,
      completion_tokens: 3,
      total_tokens: 12,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    };
    expect(chunks[4]).toEqual({
      id: 'chatcmpl-req1',
      object: 'chat.completion.chunk',
      created: 1_750_000_000,
      model: 'public-model',
      choices: [],
      usage,
    });
    expect(translator.usage()).toEqual(usage);
    expect(translator.done()).toBe(true);
  });

  it('does not emit the usage chunk when the caller did not ask for it', async () => {
    const translator = adapter.createStreamTranslator(chatContext('openai', { stream: true }));
    const chunks = await translateStream(streamOfText(OPENAI_TEXT_STREAM), translator);
    expect(chunks).toHaveLength(4);
    expect(chunks.every((c) => c.choices.length === 1 && !('usage' in c))).toBe(true);
    expect(translator.usage()?.total_tokens).toBe(12);
  });

  it('translates a recorded tool-call stream', async () => {
    const translator = adapter.createStreamTranslator(chatContext('openai', { stream: true }));
    const chunks = await translateStream(streamOfText(OPENAI_TOOL_STREAM), translator);
    expect(streamedToolCalls(chunks)).toEqual([{ id: 'call_Xy1', name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    expect(finishReasons(chunks)).toEqual(['tool_calls']);
    expect(translator.usage()).toEqual({ prompt_tokens: 60, completion_tokens: 15, total_tokens: 75 });
  });

  it('is not done when the stream stops before [DONE]', async () => {
    const cut = OPENAI_TEXT_STREAM.slice(0, OPENAI_TEXT_STREAM.indexOf('data: [DONE]'));
    const translator = adapter.createStreamTranslator(chatContext('openai', { stream: true }));
    await translateStream(streamOfText(cut), translator);
    expect(translator.done()).toBe(false);
  });

  it('throws the mapped error for an error object inside the stream', () => {
    const translator = adapter.createStreamTranslator(chatContext('openai', { stream: true }));
    const push = () =>
      translator.push({
        data: '{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}',
      });
    expect(push).toThrow(UpstreamFailureError);
    try {
      push();
    } catch (error) {
      expect(error instanceof UpstreamFailureError && error.upstream).toEqual({
        status: 429,
        type: 'rate_limit_error',
        code: 'upstream_rate_limited',
        message: 'OpenAI is rate limiting the gateway (in stream): Rate limit reached',
        retryable: true,
      });
    }
  });

  it('reads Groq usage from x_groq', () => {
    const translator = adapter.createStreamTranslator(chatContext('openai_compatible', { stream: true }));
    translator.push({
      data:
        '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}}',
    });
    expect(translator.usage()).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
  });
});

describe('openai adapter: embeddings', () => {
  it('passes the request through with the upstream model and maps the response', () => {
    const ctx = embeddingsContext('openai', { endpoint: { kind: 'openai', baseUrl: 'https://api.openai.com/v1' } });
    const upstream = adapter.buildEmbeddingsRequest?.({ model: 'embed-public', input: ['a', 'b'], dimensions: 3 }, ctx);
    expect(upstream?.url).toBe('https://api.openai.com/v1/embeddings');
    expect(JSON.parse(upstream?.body ?? '')).toEqual({ model: 'embed-upstream', input: ['a', 'b'], dimensions: 3 });
    const body = {
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: [0.1, 0.2, 0.3] },
        { object: 'embedding', index: 1, embedding: 'AACAPw==' },
      ],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 2, total_tokens: 2 },
    };
    expect(adapter.parseEmbeddingsResponse?.(body, ctx, { model: 'embed-public', input: ['a', 'b'] })).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: [0.1, 0.2, 0.3] },
        { object: 'embedding', index: 1, embedding: 'AACAPw==' },
      ],
      model: 'embed-public',
      usage: { prompt_tokens: 2, total_tokens: 2 },
    });
  });
});

describe('openai adapter: errors', () => {
  const body = (message: string, type: string, code: string | null) =>
    JSON.stringify({ error: { message, type, param: null, code } });

  it('maps 429 with Retry-After to a retryable rate-limit error', () => {
    expect(
      adapter.parseError(
        429,
        body('Rate limit reached for gpt-4o', 'requests', 'rate_limit_exceeded'),
        new Headers({ 'retry-after': '20' }),
        nowMs,
      ),
    ).toEqual({
      status: 429,
      type: 'rate_limit_error',
      code: 'upstream_rate_limited',
      message: 'OpenAI is rate limiting the gateway (HTTP 429): Rate limit reached for gpt-4o',
      retryable: true,
      retryAfterMs: 20_000,
    });
  });

  it('treats 429 insufficient_quota as a non-retryable 502', () => {
    expect(
      adapter.parseError(
        429,
        body('You exceeded your current quota', 'insufficient_quota', 'insufficient_quota'),
        new Headers(),
        nowMs,
      ),
    ).toMatchObject({
      status: 502,
      code: 'upstream_quota_exhausted',
      retryable: false,
    });
  });

  it('maps 401 to 502 upstream_auth_failed without echoing the key', () => {
    const error = adapter.parseError(
      401,
      body('Incorrect API key provided: sk-proj-****abcd.', 'invalid_request_error', 'invalid_api_key'),
      new Headers(),
      nowMs,
    );
    expect(error).toEqual({
      status: 502,
      type: 'upstream_error',
      code: 'upstream_auth_failed',
      message: "OpenAI rejected the gateway's credentials (HTTP 401)",
      retryable: false,
    });
  });

  it('maps 500 to a retryable 502, and a non-JSON 503 by status alone', () => {
    expect(adapter.parseError(500, body('The server had an error', 'server_error', null), new Headers(), nowMs))
      .toEqual({
        status: 502,
        type: 'upstream_error',
        code: 'upstream_unavailable',
        message: 'OpenAI failed (HTTP 500): The server had an error',
        retryable: true,
      });
    expect(adapter.parseError(503, '<html>Service Unavailable</html>', new Headers(), nowMs)).toEqual({
      status: 502,
      type: 'upstream_error',
      code: 'upstream_unavailable',
      message: 'OpenAI failed (HTTP 503)',
      retryable: true,
    });
  });

  it('keeps a 400 as the caller’s error with the upstream code', () => {
    const error = adapter.parseError(
      400,
      body("This model's maximum context length is 128000 tokens.", 'invalid_request_error', 'context_length_exceeded'),
      new Headers(),
      nowMs,
    );
    expect(error).toMatchObject({
      status: 400,
      type: 'invalid_request_error',
      code: 'context_length_exceeded',
      retryable: false,
    });
  });
});
