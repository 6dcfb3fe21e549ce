import { describe, expect, it } from 'vitest';
import type { ChatCompletionRequest } from '../../../supabase/functions/_shared/openai/types.ts';
import {
  RequestMappingError,
  UnsupportedFeatureError,
  UpstreamFailureError,
} from '../../../supabase/functions/_shared/providers/errors.ts';
import { float32Base64 } from '../../../supabase/functions/_shared/providers/gemini/embeddings.ts';
import { getProviderAdapter } from '../../../supabase/functions/_shared/providers/registry.ts';
import { GEMINI_SAFETY_STREAM, GEMINI_TEXT_STREAM, GEMINI_TOOL_STREAM } from './fixtures/gemini-streams.ts';
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

const adapter = getProviderAdapter('gemini');
const endpoint = { kind: 'gemini' as const, baseUrl: 'https://generativelanguage.googleapis.com' };
const ctx = chatContext('gemini', { endpoint, upstreamModel: 'models/gemini-2.5-flash' });
const bodyOf = (req: ChatCompletionRequest): Record<string, unknown> =>
  JSON.parse(adapter.buildChatRequest(req, ctx).body ?? '') as Record<string, unknown>;

describe('gemini adapter: request mapping', () => {
  it('targets generateContent and streamGenerateContent?alt=sse with x-goog-api-key', () => {
    const req: ChatCompletionRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
    const plain = adapter.buildChatRequest(req, ctx);
    expect(plain.url).toBe('https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent');
    expect(plain.headers['x-goog-api-key']).toBe('sk-test-key-1234');
    expect(plain.url.includes('key=')).toBe(false);
    const streaming = adapter.buildChatRequest(req, { ...ctx, stream: true });
    expect(streaming.url).toBe(
      'https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
    );
  });

  it('maps system, roles, generationConfig and JSON mode', () => {
    expect(
      bodyOf({
        model: 'm',
        messages: [
          { role: 'system', content: 'Be terse.' },
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
          {
            role: 'user',
            content: [{ type: 'text', text: 'again' }, {
              type: 'image_url',
              image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ' },
            }],
          },
        ],
        max_tokens: 64,
        temperature: 1.5,
        top_p: 0.8,
        stop: ['END', 'STOP'],
        n: 2,
        seed: 42,
        presence_penalty: 0.1,
        frequency_penalty: 0.2,
        response_format: { type: 'json_object' },
      }),
    ).toEqual({
      systemInstruction: { parts: [{ text: 'Be terse.' }] },
      contents: [
        { role: 'user', parts: [{ text: 'hi' }] },
        { role: 'model', parts: [{ text: 'hello' }] },
        { role: 'user', parts: [{ text: 'again' }, { inlineData: { mimeType: 'image/jpeg', data: '/9j/4AAQ' } }] },
      ],
      generationConfig: {
        maxOutputTokens: 64,
        temperature: 1.5,
        topP: 0.8,
        stopSequences: ['END', 'STOP'],
        candidateCount: 2,
        seed: 42,
        presencePenalty: 0.1,
        frequencyPenalty: 0.2,
        responseMimeType: 'application/json',
      },
    });
  });

  it('passes a json_schema through as responseJsonSchema', () => {
    const schema = { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] };
    const body = bodyOf({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_schema', json_schema: { name: 's', schema } },
    });
    expect(body.generationConfig).toEqual({ responseMimeType: 'application/json', responseJsonSchema: schema });
  });

  it('maps tools, tool_choice, function calls and merges tool results by call id', () => {
    const body = bodyOf({
      model: 'm',
      messages: [
        { role: 'user', content: 'weather and time?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: '{"temp":21}' },
        { role: 'tool', tool_call_id: 'call_b', content: '10:00' },
      ],
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } } },
          },
        },
        { type: 'function', function: { name: 'get_time' } },
      ],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    expect(body.tools).toEqual([
      {
        functionDeclarations: [
          {
            name: 'get_weather',
            description: 'Weather',
            parametersJsonSchema: { type: 'object', properties: { city: { type: 'string' } } },
          },
          { name: 'get_time' },
        ],
      },
    ]);
    expect(body.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } });
    expect(body.contents).toEqual([
      { role: 'user', parts: [{ text: 'weather and time?' }] },
      {
        role: 'model',
        parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }, {
          functionCall: { name: 'get_time', args: {} },
        }],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'get_weather', response: { temp: 21 } } },
          { functionResponse: { name: 'get_time', response: { output: '10:00' } } },
        ],
      },
    ]);
  });

  it.each(
    [
      ['auto', { mode: 'AUTO' }],
      ['none', { mode: 'NONE' }],
      ['required', { mode: 'ANY' }],
    ] as const,
  )('maps tool_choice %s', (choice, expected) => {
    const body = bodyOf({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      tools: [{ type: 'function', function: { name: 'f' } }],
      tool_choice: choice,
    });
    expect(body.toolConfig).toEqual({ functionCallingConfig: expected });
  });

  it('refuses an unknown tool_call_id, http image URLs and logprobs, naming the field', () => {
    const cases: Array<[ChatCompletionRequest, string]> = [
      [{ model: 'm', messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }, 'messages.0.tool_call_id'],
      [{
        model: 'm',
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }],
      }, 'messages.0.content.0.image_url.url'],
      [{ model: 'm', messages: [{ role: 'user', content: 'x' }], logprobs: true }, 'logprobs'],
    ];
    for (const [req, param] of cases) {
      try {
        adapter.buildChatRequest(req, ctx);
        expect.unreachable(`expected a mapping error for ${param}`);
      } catch (error) {
        expect(error).toBeInstanceOf(RequestMappingError);
        expect(error instanceof RequestMappingError && error.param).toBe(param);
      }
    }
    expect(() => adapter.buildChatRequest(cases[2]![0], ctx)).toThrow(UnsupportedFeatureError);
  });
});

describe('gemini adapter: response', () => {
  it('maps candidates, function calls, finish reasons and usage', () => {
    const body = {
      candidates: [
        {
          content: { parts: [{ text: 'thinking', thought: true }, { text: 'Hi there' }], role: 'model' },
          finishReason: 'STOP',
          index: 0,
        },
        {
          content: { parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }], role: 'model' },
          finishReason: 'STOP',
          index: 1,
        },
        { content: { parts: [{ text: 'cut' }], role: 'model' }, finishReason: 'MAX_TOKENS', index: 2 },
        { finishReason: 'SAFETY', index: 3 },
      ],
      usageMetadata: {
        promptTokenCount: 10,
        candidatesTokenCount: 7,
        thoughtsTokenCount: 3,
        cachedContentTokenCount: 2,
        totalTokenCount: 20,
      },
    };
    const response = adapter.parseChatResponse(body, ctx);
    expect(response.choices).toEqual([
      { index: 0, message: { role: 'assistant', content: 'Hi there' }, finish_reason: 'stop', logprobs: null },
      {
        index: 1,
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [{
            id: 'call_req1_1_0',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          }],
        },
        finish_reason: 'tool_calls',
        logprobs: null,
      },
      { index: 2, message: { role: 'assistant', content: 'cut' }, finish_reason: 'length', logprobs: null },
      { index: 3, message: { role: 'assistant', content: '' }, finish_reason: 'content_filter', logprobs: null },
    ]);
    expect(response.usage).toEqual({
      prompt_tokens: 10,
      completion_tokens: 10,
      total_tokens: 20,
      prompt_tokens_details: { cached_tokens: 2 },
      completion_tokens_details: { reasoning_tokens: 3 },
    });
    expect(response.model).toBe('public-model');
  });

  it('answers content_filter when the prompt itself was blocked', () => {
    const response = adapter.parseChatResponse({
      promptFeedback: { blockReason: 'SAFETY' },
      usageMetadata: { promptTokenCount: 5, totalTokenCount: 5 },
    }, ctx);
    expect(response.choices).toEqual([{
      index: 0,
      message: { role: 'assistant', content: null },
      finish_reason: 'content_filter',
      logprobs: null,
    }]);
    expect(response.usage).toEqual({ prompt_tokens: 5, completion_tokens: 0, total_tokens: 5 });
  });
});

describe('gemini adapter: stream', () => {
  it('translates a recorded CRLF text stream; thoughts are dropped and the last usage wins', async () => {
    const translator = adapter.createStreamTranslator({ ...ctx, stream: true, includeUsage: true });
    const chunks = await translateStream(streamOfText(GEMINI_TEXT_STREAM), translator);
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([
      { role: 'assistant' },
      { content: 'Hello' },
      { content: ' world' },
      {},
      null,
    ]);
    expect(streamedText(chunks)).toBe('Hello world');
    expect(finishReasons(chunks)).toEqual(['stop']);
    expect(chunks[4]?.usage).toEqual({
      prompt_tokens: 8,
      completion_tokens: 6,
      total_tokens: 14,
      completion_tokens_details: { reasoning_tokens: 4 },
    });
    expect(translator.done()).toBe(true);
  });

  it('translates a function call into a complete tool call delta', async () => {
    const translator = adapter.createStreamTranslator({ ...ctx, stream: true });
    const chunks = await translateStream(streamOfText(GEMINI_TOOL_STREAM), translator);
    expect(chunks[0]?.choices[0]?.delta).toEqual({
      role: 'assistant',
      tool_calls: [{
        index: 0,
        id: 'call_req1_0_0',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
      }],
    });
    expect(streamedToolCalls(chunks)).toEqual([{
      id: 'call_req1_0_0',
      name: 'get_weather',
      arguments: '{"city":"Paris"}',
    }]);
    expect(finishReasons(chunks)).toEqual(['tool_calls']);
    expect(translator.usage()).toEqual({ prompt_tokens: 30, completion_tokens: 5, total_tokens: 35 });
  });

  it('maps a SAFETY stop to content_filter', async () => {
    const translator = adapter.createStreamTranslator({ ...ctx, stream: true });
    const chunks = await translateStream(streamOfText(GEMINI_SAFETY_STREAM), translator);
    expect(streamedText(chunks)).toBe('Part');
    expect(finishReasons(chunks)).toEqual(['content_filter']);
  });

  it('is not done before a finishReason, and throws on an error object', () => {
    const translator = adapter.createStreamTranslator({ ...ctx, stream: true });
    translator.push({ data: JSON.stringify({ candidates: [{ content: { parts: [{ text: 'a' }] }, index: 0 }] }) });
    expect(translator.done()).toBe(false);
    expect(() =>
      translator.push({ data: '{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}' })
    ).toThrow(UpstreamFailureError);
  });
});

describe('gemini adapter: embeddings', () => {
  const ectx = embeddingsContext('gemini', { endpoint, upstreamModel: 'text-embedding-004' });

  it('builds a batchEmbedContents request', () => {
    const upstream = adapter.buildEmbeddingsRequest?.({ model: 'e', input: ['a b', 'c'], dimensions: 4 }, ectx);
    expect(upstream?.url).toBe(
      'https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:batchEmbedContents',
    );
    expect(JSON.parse(upstream?.body ?? '')).toEqual({
      requests: [
        { model: 'models/text-embedding-004', content: { parts: [{ text: 'a b' }] }, outputDimensionality: 4 },
        { model: 'models/text-embedding-004', content: { parts: [{ text: 'c' }] }, outputDimensionality: 4 },
      ],
    });
  });

  it('maps vectors, estimates usage, and encodes base64 like OpenAI', () => {
    const body = { embeddings: [{ values: [1, -2] }, { values: [0.5, 0] }] };
    expect(adapter.parseEmbeddingsResponse?.(body, ectx, { model: 'e', input: ['abcdefgh', 'xyz'] })).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: [1, -2] },
        { object: 'embedding', index: 1, embedding: [0.5, 0] },
      ],
      model: 'embed-public',
      usage: { prompt_tokens: 3, total_tokens: 3 },
    });
    const encoded = adapter.parseEmbeddingsResponse?.(body, ectx, {
      model: 'e',
      input: ['a', 'b'],
      encoding_format: 'base64',
    });
    expect(encoded?.data[0]?.embedding).toBe(float32Base64([1, -2]));
    expect(Buffer.from(float32Base64([1, -2]), 'base64').readFloatLE(4)).toBe(-2);
  });

  it('refuses token-id input', () => {
    expect(() => adapter.buildEmbeddingsRequest?.({ model: 'e', input: [1, 2, 3] }, ectx)).toThrow(
      UnsupportedFeatureError,
    );
  });
});

describe('gemini adapter: errors', () => {
  const errorBody = (code: number, status: string, message: string, details?: unknown[]) =>
    JSON.stringify({ error: { code, message, status, ...(details ? { details } : {}) } });

  it('maps 429 RESOURCE_EXHAUSTED with RetryInfo to a retryable rate-limit error', () => {
    const body = errorBody(429, 'RESOURCE_EXHAUSTED', 'Resource has been exhausted', [
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '34s' },
    ]);
    expect(adapter.parseError(429, body, new Headers(), nowMs)).toEqual({
      status: 429,
      type: 'rate_limit_error',
      code: 'upstream_rate_limited',
      message: 'Gemini is rate limiting the gateway (HTTP 429): Resource has been exhausted',
      retryable: true,
      retryAfterMs: 34_000,
    });
  });

  it('treats a per-day quota as exhausted, not retryable', () => {
    const body = errorBody(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded', [
      {
        '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
        violations: [{ quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' }],
      },
    ]);
    expect(adapter.parseError(429, body, new Headers(), nowMs)).toMatchObject({
      status: 502,
      code: 'upstream_quota_exhausted',
      retryable: false,
    });
  });

  it('maps the 400 API_KEY_INVALID answer to 502 upstream_auth_failed, not a caller 400', () => {
    const body = errorBody(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' },
    ]);
    expect(adapter.parseError(400, body, new Headers(), nowMs)).toEqual({
      status: 502,
      type: 'upstream_error',
      code: 'upstream_auth_failed',
      message: "Gemini rejected the gateway's credentials (HTTP 400)",
      retryable: false,
    });
  });

  it('maps 500 INTERNAL and 503 UNAVAILABLE to retryable 502s, and a plain 400 to the caller', () => {
    expect(adapter.parseError(500, errorBody(500, 'INTERNAL', 'An internal error has occurred.'), new Headers(), nowMs))
      .toMatchObject({ status: 502, retryable: true });
    expect(
      adapter.parseError(503, errorBody(503, 'UNAVAILABLE', 'overloaded'), new Headers({ 'retry-after': '3' }), nowMs),
    )
      .toMatchObject({
        status: 502,
        code: 'upstream_unavailable',
        retryAfterMs: 3000,
      });
    expect(
      adapter.parseError(
        400,
        errorBody(400, 'INVALID_ARGUMENT', 'Invalid value at generation_config.temperature'),
        new Headers(),
        nowMs,
      ),
    ).toMatchObject({
      status: 400,
      type: 'invalid_request_error',
      retryable: false,
    });
  });
});
