// Azure OpenAI: deployments live under the resource root; the key goes in `api-key`.
import type { ProviderEndpoint } from '../types.ts';
import { joinUrl } from '../http.ts';

// GA version that accepts stream_options and max_completion_tokens
const DEFAULT_AZURE_API_VERSION = '2024-10-21';

export function azureDeploymentUrl(endpoint: ProviderEndpoint, deployment: string, operation: string): string {
  const path = `openai/deployments/${encodeURIComponent(deployment)}/${operation}`;
  return `${joinUrl(endpoint.baseUrl, path)}?api-version=${encodeURIComponent(azureApiVersion(endpoint))}`;
}

export function azureModelsUrl(endpoint: ProviderEndpoint): string {
  return `${joinUrl(endpoint.baseUrl, 'openai/models')}?api-version=${encodeURIComponent(azureApiVersion(endpoint))}`;
}

export function azureHeaders(apiKey: string): Record<string, string> {
  return { 'api-key': apiKey };
}

function azureApiVersion(endpoint: ProviderEndpoint): string {
  return endpoint.apiVersion ?? DEFAULT_AZURE_API_VERSION;
}
