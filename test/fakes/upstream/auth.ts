// Each provider's real credential check, and its real refusal shape.
import type { IncomingHttpHeaders } from 'node:http';
import { anthropicError } from './anthropic.ts';
import { geminiError } from './gemini.ts';
import { azureError, openAIError } from './openai.ts';
import type { FakeReply, WireFormat } from './reply.ts';

export type KeyCheck = (key: string) => boolean;

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The key a request presents, per wire format; undefined when none. */
export function presentedKey(format: WireFormat, headers: IncomingHttpHeaders, url: URL): string | undefined {
  switch (format) {
    case 'openai': {
      const match = /^Bearer\s+(.+)$/i.exec(header(headers, 'authorization') ?? '');
      return match?.[1];
    }
    case 'azure':
      return header(headers, 'api-key');
    case 'anthropic':
      return header(headers, 'x-api-key');
    case 'gemini':
      return header(headers, 'x-goog-api-key') ?? url.searchParams.get('key') ?? undefined;
  }
}

/** null when the request may proceed, else the provider's own refusal. */
export function checkAuth(
  format: WireFormat,
  headers: IncomingHttpHeaders,
  url: URL,
  accepts: KeyCheck,
): FakeReply | null {
  const key = presentedKey(format, headers, url);
  const missing = key === undefined || key === '';
  if (!missing && accepts(key)) {
    if (format === 'anthropic' && header(headers, 'anthropic-version') === undefined) {
      return anthropicError(400, 'invalid_request_error', 'anthropic-version: header is required');
    }
    return null;
  }
  switch (format) {
    case 'openai':
      return missing
        ? openAIError(
          401,
          "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
          'invalid_request_error',
          null,
        )
        : openAIError(
          401,
          `Incorrect API key provided: ${key.slice(0, 3)}***${
            key.slice(-4)
          }. You can find your API key at https://platform.openai.com/account/api-keys.`,
          'invalid_request_error',
          'invalid_api_key',
        );
    case 'azure':
      return azureError(
        401,
        'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.',
      );
    case 'anthropic':
      return anthropicError(
        401,
        'authentication_error',
        missing ? 'x-api-key header is required' : 'invalid x-api-key',
      );
    case 'gemini':
      // Google answers a wrong key with 400 API_KEY_INVALID and a missing one with 403
      return missing
        ? geminiError(
          403,
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        )
        : geminiError(400, 'API key not valid. Please pass a valid API key.', [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'API_KEY_INVALID',
            domain: 'googleapis.com',
            metadata: { service: 'generativelanguage.googleapis.com' },
          },
        ]);
  }
}

/** Keep the last 4 characters so tests can tell keys apart without seeing them. */
export function maskSecret(value: string): string {
  const bearer = /^(Bearer\s+)(.*)$/i.exec(value);
  if (bearer) return `${bearer[1]}${maskSecret(bearer[2])}`;
  return value.length >= 12 ? `****${value.slice(-4)}` : '****';
}

const SECRET_HEADERS = new Set(['authorization', 'api-key', 'x-api-key', 'x-goog-api-key']);

export function maskHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(', ') : value;
    out[name] = SECRET_HEADERS.has(name) ? maskSecret(text) : text;
  }
  return out;
}

export function maskPath(url: URL): string {
  const copy = new URL(url.href);
  const key = copy.searchParams.get('key');
  if (key !== null) copy.searchParams.set('key', maskSecret(key));
  return `${copy.pathname}${copy.search}`;
}
