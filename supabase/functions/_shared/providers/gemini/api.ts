// Gemini API (Google AI): `{baseUrl}/v1beta/models/{model}:{method}`, key in x-goog-api-key.
import type { ProviderEndpoint } from '../types.ts';
import { joinUrl } from '../http.ts';

export const GEMINI_PROVIDER_NAME = 'Gemini';
const DEFAULT_GEMINI_API_VERSION = 'v1beta';

/** Accepts `gemini-2.0-flash` or the resource name `models/gemini-2.0-flash`. */
export function geminiModelName(model: string): string {
  return model.replace(/^models\//, '');
}

export function geminiModelUrl(endpoint: ProviderEndpoint, model: string, method: string): string {
  const version = endpoint.apiVersion ?? DEFAULT_GEMINI_API_VERSION;
  return joinUrl(endpoint.baseUrl, `${version}/models/${encodeURIComponent(geminiModelName(model))}:${method}`);
}

export function geminiModelsUrl(endpoint: ProviderEndpoint): string {
  return joinUrl(endpoint.baseUrl, `${endpoint.apiVersion ?? DEFAULT_GEMINI_API_VERSION}/models?pageSize=1`);
}

export function geminiHeaders(apiKey: string): Record<string, string> {
  // the header keeps the key out of URLs, and so out of access logs
  return { 'x-goog-api-key': apiKey };
}
