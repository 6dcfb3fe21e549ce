// OpenAI and OpenAI-compatible servers: base URL already ends in the version (`…/v1`).
import type { ProviderEndpoint } from '../types.ts';
import { joinUrl } from '../http.ts';

export function openAIUrl(endpoint: ProviderEndpoint, path: string): string {
  return joinUrl(endpoint.baseUrl, path);
}

export function openAIHeaders(apiKey: string): Record<string, string> {
  return { authorization: `Bearer ${apiKey}` };
}
