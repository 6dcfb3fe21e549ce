// Small builders for UpstreamRequest values; adapters never call fetch themselves.
import type { UpstreamRequest } from './types.ts';

/** Base URL + path without doubled or missing slashes. */
export function joinUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

export function jsonPost(url: string, headers: Record<string, string>, body: unknown, stream = false): UpstreamRequest {
  return {
    url,
    method: 'POST',
    headers: {
      ...headers,
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
    },
    body: JSON.stringify(body),
  };
}

export function jsonGet(url: string, headers: Record<string, string>): UpstreamRequest {
  return { url, method: 'GET', headers: { ...headers, accept: 'application/json' } };
}
