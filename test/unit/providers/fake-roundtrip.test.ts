// Every adapter against the fake upstream over real HTTP: build -> fetch -> parse,
// streaming through parseSseStream + the adapter's translator, and faults -> UpstreamError.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatCompletionRequest } from '../../../supabase/functions/_shared/openai/types.ts';
import { getProviderAdapter } from '../../../supabase/functions/_shared/providers/registry.ts';
import type {
  ChatCallContext,
  ProviderKind,
  UpstreamError,
  UpstreamRequest,
} from '../../../supabase/functions/_shared/providers/types.ts';
import {
  streamInterruptedError,
  upstreamErrorFromFetchFailure,
} from '../../../supabase/functions/_shared/providers/upstream-errors.ts';
import { parseSseStream } from '../../../supabase/functions/_shared/sse.ts';
import { type FakeUpstream, startFakeUpstream, type WireFormat } from '../../fakes/fake-upstream.ts';
import {
  chatContext,
  embeddingsContext,
  finishReasons,
  streamedText,
  streamedToolCalls,
  translateStream,
} from './helpers.ts';

/** A fixed "now" for parseError (only a Retry-After date would depend on it). */
const nowMs = Date.UTC(2025, 0, 1);

const GOOD_KEY = 'sk-good-key-0001';
let fake: FakeUpstream;

beforeAll(async () => {
  fake = await startFakeUpstream({ apiKeys: [GOOD_KEY] });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.clearFaults();
  fake.clearRequests();
});

interface Case {
  kind: ProviderKind;
  format: WireFormat;
  model: string;
  baseUrl: (f: FakeUpstream) => string;
  embeddings: boolean;
}

const CASES: Case[] = [
  { kind: 'openai', format: 'openai', model: 'gpt-4o-mini', baseUrl: (f) => f.endpoints.openai, embeddings: true },
  {
    kind: 'openai_compatible',
    format: 'openai',
    model: 'llama-3.1-8b',
    baseUrl: (f) => f.endpoints.openai,
    embeddings: true,
  },
  {
    kind: 'azure_openai',
    format: 'azure',
    model: 'gpt4o-deployment',
    baseUrl: (f) => f.endpoints.azure_openai,
    embeddings: true,
  },
  {
    kind: 'anthropic',
    format: 'anthropic',
    model: 'claude-sonnet-4-5',
    baseUrl: (f) => f.endpoints.anthropic,
    embeddings: false,
  },
  { kind: 'gemini', format: 'gemini', model: 'gemini-2.0-flash', baseUrl: (f) => f.endpoints.gemini, embeddings: true },
];

function send(upstream: UpstreamRequest, signal?: AbortSignal): Promise<Response> {
  return fetch(upstream.url, { method: upstream.method, headers: upstream.headers, body: upstream.body, signal });
}

function contextFor(c: Case, overrides: Partial<ChatCallContext> = {}): ChatCallContext {
  return chatContext(c.kind, {
    upstreamModel: c.model,
    apiKey: GOOD_KEY,
    endpoint: { kind: c.kind, baseUrl: c.baseUrl(fake) },
    ...overrides,
  });
}

async function chat(c: Case, req: ChatCompletionRequest, overrides: Partial<ChatCallContext> = {}) {
  const adapter = getProviderAdapter(c.kind);
  const ctx = contextFor(c, overrides);
  const res = await send(adapter.buildChatRequest(req, ctx));
  if (!res.ok) return { error: adapter.parseError(res.status, await res.text(), res.headers, nowMs) };
  return { response: adapter.parseChatResponse(await res.json(), ctx) };
}

async function chatStream(c: Case, req: ChatCompletionRequest, overrides: Partial<ChatCallContext> = {}) {
  const adapter = getProviderAdapter(c.kind);
  const ctx = contextFor(c, { stream: true, includeUsage: true, ...overrides });
  const res = await send(adapter.buildChatRequest(req, ctx));
  if (!res.ok || res.body === null) {
    return { error: adapter.parseError(res.status, await res.text(), res.headers, nowMs) };
  }
  const translator = adapter.createStreamTranslator(ctx);
  const chunks = await translateStream(res.body, translator);
  return { chunks, translator };
}

const hello: ChatCompletionRequest = {
  model: 'public-model',
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hello there world' },
  ],
};
// prompt: "be brief" (2) + "hello there world" (3); completion: "echo: hello there world" (4)
const HELLO_USAGE = { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 };

const weather: ChatCompletionRequest = {
  model: 'public-model',
  messages: [{ role: 'user', content: 'what is the weather in Paris?' }],
  tools: [{
    type: 'function',
    function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  }],
};

describe.each(CASES)('$kind adapter against the fake upstream', (c) => {
  it('completes a chat: echo text, exact usage, public model', async () => {
    const { response, error } = await chat(c, hello);
    expect(error).toBeUndefined();
    expect(response?.model).toBe('public-model');
    expect(response?.choices).toEqual([{
      index: 0,
      message: expect.objectContaining({ role: 'assistant', content: 'echo: hello there world' }),
      finish_reason: 'stop',
      logprobs: null,
    }]);
    expect(response?.usage).toMatchObject(HELLO_USAGE);
    const recorded = fake.requests[0];
    expect(recorded).toMatchObject({ format: c.format, model: c.model, authorized: true });
  });

  it('streams a chat: chunks rebuild the text, usage chunk last, stream complete', async () => {
    const { chunks, translator, error } = await chatStream(c, hello);
    expect(error).toBeUndefined();
    expect(streamedText(chunks ?? [])).toBe('echo: hello there world');
    expect(finishReasons(chunks ?? [])).toEqual(['stop']);
    expect(chunks?.at(-1)?.usage).toMatchObject(HELLO_USAGE);
    expect(chunks?.every((chunk) => chunk.model === 'public-model' && chunk.id === 'chatcmpl-req1')).toBe(true);
    expect(translator?.done()).toBe(true);
  });

  it('returns a tool call when tools are given and the user asks about the weather', async () => {
    const { response } = await chat(c, weather);
    const message = response?.choices[0]?.message;
    expect(message?.content).toBeNull();
    expect(
      message?.tool_calls?.map((t) => ({ name: t.function.name, args: JSON.parse(t.function.arguments) as unknown })),
    ).toEqual([
      { name: 'get_weather', args: { city: 'Paris' } },
    ]);
    expect(response?.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it('streams a tool call', async () => {
    const { chunks, translator } = await chatStream(c, weather);
    const calls = streamedToolCalls(chunks ?? []);
    expect(calls.map((t) => ({ name: t.name, args: JSON.parse(t.arguments) as unknown }))).toEqual([{
      name: 'get_weather',
      args: { city: 'Paris' },
    }]);
    expect(calls[0]?.id).not.toBe('');
    expect(finishReasons(chunks ?? [])).toEqual(['tool_calls']);
    expect(translator?.done()).toBe(true);
  });

  it('sends a tool result back and gets an answer built from it', async () => {
    const { response } = await chat(c, {
      ...weather,
      messages: [
        ...weather.messages,
        {
          role: 'assistant',
          content: null,
          tool_calls: [{
            id: 'call_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny 21C' },
      ],
    });
    expect(response?.choices[0]?.message.content).toBe('echo: sunny 21C');
    expect(response?.choices[0]?.finish_reason).toBe('stop');
  });

  it('stops at max_tokens with finish_reason length', async () => {
    const { response } = await chat(c, { ...hello, max_tokens: 2 });
    expect(response?.choices[0]?.message.content).toBe('echo: hello');
    expect(response?.choices[0]?.finish_reason).toBe('length');
    expect(response?.usage?.completion_tokens).toBe(2);
  });

  it('answers a health probe', async () => {
    const adapter = getProviderAdapter(c.kind);
    const res = await send(adapter.buildHealthProbe({ kind: c.kind, baseUrl: c.baseUrl(fake) }, GOOD_KEY));
    expect(res.status).toBe(200);
  });

  it('maps a wrong key to 502 upstream_auth_failed', async () => {
    const { error } = await chat(c, hello, { apiKey: 'sk-wrong-key-9999' });
    expect(error).toMatchObject({
      status: 502,
      type: 'upstream_error',
      code: 'upstream_auth_failed',
      retryable: false,
    });
  });

  it('maps a 429 fault with Retry-After', async () => {
    fake.enqueue({ kind: 'status', status: 429, retryAfterSeconds: 3 }, { match: { format: c.format } });
    const { error } = await chat(c, hello);
    expect(error).toMatchObject({
      status: 429,
      type: 'rate_limit_error',
      code: 'upstream_rate_limited',
      retryable: true,
      retryAfterMs: 3000,
    });
    const again = await chat(c, hello); // the fault was consumed
    expect(again.error).toBeUndefined();
  });

  it('maps 500 and 503 faults to retryable 502s', async () => {
    fake.enqueue({ kind: 'status', status: 500 }, { match: { model: c.model } });
    fake.enqueue({ kind: 'status', status: 503 }, { match: { model: c.model } });
    for (let i = 0; i < 2; i += 1) {
      const { error } = await chat(c, hello);
      expect(error).toMatchObject({
        status: 502,
        type: 'upstream_error',
        code: 'upstream_unavailable',
        retryable: true,
      });
    }
  });

  it('detects a stream cut mid-way: the body read fails after the first events', async () => {
    fake.enqueue({ kind: 'cut_stream', afterChunks: 2 });
    const adapter = getProviderAdapter(c.kind);
    const ctx = contextFor(c, { stream: true });
    const res = await send(adapter.buildChatRequest(hello, ctx));
    expect(res.status).toBe(200);
    const translator = adapter.createStreamTranslator(ctx);
    const seen: string[] = [];
    let failure: UpstreamError | undefined;
    try {
      for await (const event of parseSseStream(res.body ?? new ReadableStream())) {
        seen.push(event.data);
        translator.push(event);
      }
    } catch {
      failure = streamInterruptedError(c.kind);
    }
    expect(seen).toHaveLength(2);
    expect(translator.done()).toBe(false);
    expect(failure?.code).toBe('upstream_stream_interrupted');
  });

  it('times out on a slow first byte and on a hang (504)', async () => {
    fake.enqueue({ kind: 'delay', ms: 2000 });
    fake.enqueue({ kind: 'hang' });
    const adapter = getProviderAdapter(c.kind);
    // The delayed answer would succeed and the hang never ends: a 504 means the 150 ms signal ended each.
    for (let i = 0; i < 2; i += 1) {
      const error = await send(adapter.buildChatRequest(hello, contextFor(c)), AbortSignal.timeout(150)).then(
        () => undefined,
        (e: unknown) => upstreamErrorFromFetchFailure(e),
      );
      expect(error).toMatchObject({ status: 504, code: 'upstream_timeout', retryable: true });
    }
  });
});

describe.each(CASES.filter((c) => c.embeddings))('$kind embeddings against the fake upstream', (c) => {
  it('embeds two inputs', async () => {
    const adapter = getProviderAdapter(c.kind);
    const ctx = embeddingsContext(c.kind, {
      upstreamModel: c.model,
      apiKey: GOOD_KEY,
      endpoint: { kind: c.kind, baseUrl: c.baseUrl(fake) },
    });
    const req = { model: 'embed-public', input: ['one two', 'three'], dimensions: 4 };
    const upstream = adapter.buildEmbeddingsRequest?.(req, ctx);
    if (upstream === undefined) throw new Error('adapter offers embeddings');
    const res = await send(upstream);
    expect(res.status).toBe(200);
    const parsed = adapter.parseEmbeddingsResponse?.(await res.json(), ctx, req);
    expect(parsed?.model).toBe('embed-public');
    expect(parsed?.data.map((d) => d.index)).toEqual([0, 1]);
    expect(parsed?.data.every((d) => Array.isArray(d.embedding) && d.embedding.length === 4)).toBe(true);
    expect(parsed?.usage.prompt_tokens).toBe(c.kind === 'gemini' ? 4 : 3); // Gemini: estimated from characters
  });
});

describe('provider-specific behaviour against the fake', () => {
  const anthropic = CASES[3]!;
  const openai = CASES[0]!;
  const gemini = CASES[4]!;

  it('Anthropic 529 overloaded is a retryable 502', async () => {
    fake.enqueue({ kind: 'status', status: 529 });
    const { error } = await chat(anthropic, hello);
    expect(error).toEqual({
      status: 502,
      type: 'upstream_error',
      code: 'upstream_overloaded',
      message: 'Anthropic is overloaded (HTTP 529): Overloaded',
      retryable: true,
    });
  });

  it('Anthropic receives system as a top-level field and the default max_tokens', async () => {
    await chat(anthropic, hello);
    expect(fake.requests[0]?.body).toMatchObject({
      system: 'be brief',
      max_tokens: 4096,
      messages: [{ role: 'user' }],
    });
    expect(fake.requests[0]?.headers['x-api-key']).toBe('****0001');
  });

  it('OpenAI streaming requests carry include_usage even when the caller did not ask', async () => {
    const { chunks } = await chatStream(openai, hello, { includeUsage: false });
    expect(fake.requests[0]?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(chunks?.some((chunk) => chunk.choices.length === 0)).toBe(false);
  });

  it('JSON mode yields a JSON object from OpenAI and Gemini', async () => {
    for (const c of [openai, gemini]) {
      const { response } = await chat(c, { ...hello, response_format: { type: 'json_object' } });
      expect(JSON.parse(response?.choices[0]?.message.content ?? '')).toEqual({ echo: 'hello there world' });
    }
  });

  it('n=2 returns two choices from OpenAI and Gemini', async () => {
    for (const c of [openai, gemini]) {
      const { response } = await chat(c, { ...hello, n: 2 });
      expect(response?.choices.map((choice) => [choice.index, choice.message.content])).toEqual([
        [0, 'echo: hello there world'],
        [1, 'echo: hello there world'],
      ]);
    }
  });
});
