import { describe, expect, it } from 'vitest';
import { getProviderAdapter } from '../../../supabase/functions/_shared/providers/registry.ts';
import { AZURE_TEXT_STREAM } from './fixtures/openai-streams.ts';
import {
  chatContext,
  embeddingsContext,
  finishReasons,
  streamedText,
  streamOfText,
  translateStream,
} from './helpers.ts';

/** A fixed "now" for parseError (only a Retry-After date would depend on it). */
const nowMs = Date.UTC(2025, 0, 1);

const adapter = getProviderAdapter('azure_openai');
const endpoint = { kind: 'azure_openai' as const, baseUrl: 'https://acme.openai.azure.com/' };

describe('azure openai adapter', () => {
  it('targets the deployment URL with api-version, the api-key header, and no model in the body', () => {
    const ctx = chatContext('azure_openai', { endpoint, upstreamModel: 'gpt4o prod', stream: true });
    const upstream = adapter.buildChatRequest({
      model: 'public-model',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
    }, ctx);
    expect(upstream.url).toBe(
      'https://acme.openai.azure.com/openai/deployments/gpt4o%20prod/chat/completions?api-version=2024-10-21',
    );
    expect(upstream.headers['api-key']).toBe('sk-test-key-1234');
    expect(upstream.headers.authorization).toBeUndefined();
    expect(JSON.parse(upstream.body ?? '')).toEqual({
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('honours an explicit api-version for chat, embeddings and the health probe', () => {
    const versioned = { ...endpoint, apiVersion: '2025-01-01-preview' };
    const chat = adapter.buildChatRequest(
      { model: 'm', messages: [{ role: 'user', content: 'x' }] },
      chatContext('azure_openai', { endpoint: versioned }),
    );
    expect(chat.url.endsWith('/openai/deployments/upstream-model/chat/completions?api-version=2025-01-01-preview'))
      .toBe(true);
    const embeddings = adapter.buildEmbeddingsRequest?.(
      { model: 'e', input: 'x' },
      embeddingsContext('azure_openai', { endpoint: versioned }),
    );
    expect(embeddings?.url).toBe(
      'https://acme.openai.azure.com/openai/deployments/embed-upstream/embeddings?api-version=2025-01-01-preview',
    );
    expect(JSON.parse(embeddings?.body ?? '')).toEqual({ input: 'x' });
    expect(adapter.buildHealthProbe(versioned, 'k').url).toBe(
      'https://acme.openai.azure.com/openai/models?api-version=2025-01-01-preview',
    );
  });

  it('skips the prompt-filter chunk of a recorded Azure stream', async () => {
    const translator = adapter.createStreamTranslator(
      chatContext('azure_openai', { stream: true, includeUsage: true }),
    );
    const chunks = await translateStream(streamOfText(AZURE_TEXT_STREAM), translator);
    expect(chunks.map((c) => c.choices.length)).toEqual([1, 1, 1, 0]);
    expect(chunks.every((c) => c.model === 'public-model' && c.id === 'chatcmpl-req1')).toBe(true);
    expect(streamedText(chunks)).toBe('Hi');
    expect(finishReasons(chunks)).toEqual(['stop']);
    expect(chunks[3]?.usage).toEqual({ prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 });
    expect(translator.done()).toBe(true);
  });

  it('maps an Azure 429 with retry-after-ms and a 401', () => {
    const rateLimited = JSON.stringify({
      error: {
        code: '429',
        message: 'Requests to the ChatCompletions_Create Operation have exceeded token rate limit.',
      },
    });
    expect(adapter.parseError(429, rateLimited, new Headers({ 'retry-after-ms': '1500', 'retry-after': '2' }), nowMs))
      .toEqual(
        {
          status: 429,
          type: 'rate_limit_error',
          code: 'upstream_rate_limited',
          message:
            'Azure OpenAI is rate limiting the gateway (HTTP 429): Requests to the ChatCompletions_Create Operation have exceeded token rate limit.',
          retryable: true,
          retryAfterMs: 1500,
        },
      );
    const denied = JSON.stringify({
      error: { code: '401', message: 'Access denied due to invalid subscription key.' },
    });
    expect(adapter.parseError(401, denied, new Headers(), nowMs)).toMatchObject({
      status: 502,
      code: 'upstream_auth_failed',
    });
  });
});
