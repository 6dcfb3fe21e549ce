// Azure error bodies are OpenAI-shaped ({error:{code,message}}, code often a status string).
import type { UpstreamError } from '../types.ts';
import { parseOpenAIError } from '../openai/errors.ts';

export const AZURE_PROVIDER_NAME = 'Azure OpenAI';

export function parseAzureError(status: number, bodyText: string, headers: Headers, nowMs: number): UpstreamError {
  return parseOpenAIError(AZURE_PROVIDER_NAME, status, bodyText, headers, nowMs);
}
