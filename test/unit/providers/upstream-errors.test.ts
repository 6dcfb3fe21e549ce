import { describe, expect, it } from 'vitest';
import { sanitizeUpstreamMessage } from '../../../supabase/functions/_shared/providers/sanitize.ts';
import {
  parseDurationMs,
  parseRateLimitResetMs,
  parseRetryAfterMs,
} from '../../../supabase/functions/_shared/providers/retry-after.ts';
import {
  classifyUpstreamError,
  malformedResponseError,
  streamInterruptedError,
  upstreamErrorFromFetchFailure,
} from '../../../supabase/functions/_shared/providers/upstream-errors.ts';
import {
  requestMappingErrorBody,
  UnsupportedFeatureError,
  upstreamErrorBody,
} from '../../../supabase/functions/_shared/providers/errors.ts';

describe('sanitizeUpstreamMessage', () => {
  it('redacts keys, bearer tokens, Google keys, JWTs, key query params and Azure hex keys', () => {
    const text = 'Incorrect API key provided: sk-proj-abcDEF123456. Header Authorization: Bearer abc.def.ghi; ' +
      'google AIzaSyA1234567890abcdef; jwt eyJhbGciOi.eyJzdWIiOi.sig; url https://x/y?key=SECRET123&alt=sse; ' +
      'azure 0123456789abcdef0123456789abcdef';
    expect(sanitizeUpstreamMessage(text, 1000)).toBe(
      'Incorrect API key provided: sk-***. Header Authorization: *** ***; ' +
        'google AIza***; jwt ***; url https://x/y?key=***&alt=sse; azure ***',
    );
  });

  it('collapses whitespace and truncates to the limit with an ellipsis', () => {
    expect(sanitizeUpstreamMessage('a\n\n  b')).toBe('a b');
    const long = sanitizeUpstreamMessage('x'.repeat(500));
    expect(long).toHaveLength(200);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('retry-after parsing', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  it('reads Retry-After seconds, Retry-After HTTP dates and retry-after-ms', () => {
    expect(parseRetryAfterMs(new Headers({ 'retry-after': '7' }), now)).toBe(7000);
    expect(parseRetryAfterMs(new Headers({ 'retry-after': '1.5' }), now)).toBe(1500);
    expect(parseRetryAfterMs(new Headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }), now)).toBe(30_000);
    expect(parseRetryAfterMs(new Headers({ 'retry-after': 'Tue, 31 Dec 2024 00:00:00 GMT' }), now)).toBe(0);
    expect(parseRetryAfterMs(new Headers({ 'retry-after-ms': '250', 'retry-after': '9' }), now)).toBe(250);
    expect(parseRetryAfterMs(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(parseRetryAfterMs(new Headers(), now)).toBeUndefined();
  });

  it('parses Go-style durations', () => {
    expect(parseDurationMs('1s')).toBe(1000);
    expect(parseDurationMs('6m0s')).toBe(360_000);
    expect(parseDurationMs('20ms')).toBe(20);
    expect(parseDurationMs('1h2m3.5s')).toBe(3_723_500);
    expect(parseDurationMs('abc')).toBeUndefined();
    expect(parseDurationMs('5x')).toBeUndefined();
  });

  it('uses the reset of the exhausted OpenAI window', () => {
    const headers = new Headers({
      'x-ratelimit-remaining-requests': '10',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '6m0s',
    });
    expect(parseRetryAfterMs(headers, now)).toBe(360_000);
  });

  it('uses the Anthropic reset timestamps, earliest when none is exhausted', () => {
    const headers = new Headers({
      'anthropic-ratelimit-requests-remaining': '5',
      'anthropic-ratelimit-requests-reset': '2025-01-01T00:00:12Z',
      'anthropic-ratelimit-tokens-remaining': '100',
      'anthropic-ratelimit-tokens-reset': '2025-01-01T00:00:40Z',
    });
    expect(parseRateLimitResetMs(headers, now)).toBe(12_000);
  });
});

describe('classifyUpstreamError', () => {
  it.each([
    [400, { status: 400, type: 'invalid_request_error', code: 'invalid_request', retryable: false }],
    [401, { status: 502, type: 'upstream_error', code: 'upstream_auth_failed', retryable: false }],
    [403, { status: 502, type: 'upstream_error', code: 'upstream_auth_failed', retryable: false }],
    [404, { status: 502, type: 'upstream_error', code: 'upstream_model_not_found', retryable: false }],
    [408, { status: 504, type: 'timeout_error', code: 'upstream_timeout', retryable: true }],
    [429, { status: 429, type: 'rate_limit_error', code: 'upstream_rate_limited', retryable: true }],
    [500, { status: 502, type: 'upstream_error', code: 'upstream_unavailable', retryable: true }],
    [502, { status: 502, type: 'upstream_error', code: 'upstream_unavailable', retryable: true }],
    [503, { status: 502, type: 'upstream_error', code: 'upstream_unavailable', retryable: true }],
    [504, { status: 502, type: 'upstream_error', code: 'upstream_unavailable', retryable: true }],
    [529, { status: 502, type: 'upstream_error', code: 'upstream_overloaded', retryable: true }],
    [418, { status: 502, type: 'upstream_error', code: 'upstream_error', retryable: false }],
  ])('maps HTTP %i', (status, expected) => {
    expect(classifyUpstreamError({ provider: 'P', status })).toMatchObject(expected);
  });

  it('never repeats the upstream text of an auth failure', () => {
    const error = classifyUpstreamError({
      provider: 'OpenAI',
      status: 401,
      message: 'Incorrect API key provided: sk-live-abcd',
    });
    expect(error.message).toBe("OpenAI rejected the gateway's credentials (HTTP 401)");
  });

  it('forwards only identifier-like codes on 400', () => {
    expect(classifyUpstreamError({ provider: 'P', status: 400, code: 'context_length_exceeded' }).code).toBe(
      'context_length_exceeded',
    );
    expect(classifyUpstreamError({ provider: 'P', status: 400, code: 'Bad Code!' }).code).toBe('invalid_request');
  });

  it('renders the OpenAI error body', () => {
    const error = classifyUpstreamError({ provider: 'Gemini', status: 503, message: 'busy', retryAfterMs: 2000 });
    expect(error).toEqual({
      status: 502,
      type: 'upstream_error',
      code: 'upstream_unavailable',
      message: 'Gemini failed (HTTP 503): busy',
      retryable: true,
      retryAfterMs: 2000,
    });
    expect(upstreamErrorBody(error)).toEqual({
      error: {
        message: 'Gemini failed (HTTP 503): busy',
        type: 'upstream_error',
        param: null,
        code: 'upstream_unavailable',
      },
    });
  });
});

describe('fetch failures and protocol errors', () => {
  it('maps a timeout to 504 and a connection failure to 502, both retryable', () => {
    expect(upstreamErrorFromFetchFailure(new DOMException('The operation timed out.', 'TimeoutError'), 'OpenAI'))
      .toEqual({
        status: 504,
        type: 'timeout_error',
        code: 'upstream_timeout',
        message: 'OpenAI did not answer in time',
        retryable: true,
      });
    expect(upstreamErrorFromFetchFailure(new TypeError('fetch failed'))).toMatchObject({
      status: 502,
      code: 'upstream_unreachable',
      retryable: true,
    });
  });

  it('describes interrupted streams and malformed bodies', () => {
    expect(streamInterruptedError('Anthropic')).toMatchObject({
      status: 502,
      code: 'upstream_stream_interrupted',
      retryable: true,
    });
    expect(malformedResponseError('Gemini', 'candidates: expected array')).toMatchObject({
      status: 502,
      code: 'upstream_bad_response',
      message: 'Gemini returned an unexpected response: candidates: expected array',
    });
  });

  it('renders a mapping error as a 400 body naming the parameter', () => {
    expect(requestMappingErrorBody(new UnsupportedFeatureError('n', 'n must be 1'))).toEqual({
      error: { message: 'n must be 1', type: 'invalid_request_error', param: 'n', code: 'unsupported_parameter' },
    });
  });
});
