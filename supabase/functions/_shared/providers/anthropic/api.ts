// Anthropic Messages API: `{baseUrl}/v1/messages`, key in x-api-key, pinned API version.
import type { ProviderEndpoint } from '../types.ts';
import { joinUrl } from '../http.ts';

const DEFAULT_ANTHROPIC_VERSION = '2023-06-01';
export const ANTHROPIC_PROVIDER_NAME = 'Anthropic';

export function anthropicUrl(endpoint: ProviderEndpoint, path: string): string {
  return joinUrl(endpoint.baseUrl, path);
}

export function anthropicHeaders(endpoint: ProviderEndpoint, apiKey: string): Record<string, string> {
  return { 'x-api-key': apiKey, 'anthropic-version': endpoint.apiVersion ?? DEFAULT_ANTHROPIC_VERSION };
}
