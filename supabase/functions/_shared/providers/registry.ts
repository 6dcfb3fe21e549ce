// ProviderKind -> adapter. openai_compatible shares the OpenAI adapter under its own kind.
import type { ProviderAdapter, ProviderKind } from './types.ts';
import { anthropicAdapter } from './anthropic/index.ts';
import { azureOpenAIAdapter } from './azure-openai/index.ts';
import { geminiAdapter } from './gemini/index.ts';
import { createOpenAIAdapter } from './openai/index.ts';

const ADAPTERS: Readonly<Record<ProviderKind, ProviderAdapter>> = {
  openai: createOpenAIAdapter('openai'),
  openai_compatible: createOpenAIAdapter('openai_compatible'),
  azure_openai: azureOpenAIAdapter,
  anthropic: anthropicAdapter,
  gemini: geminiAdapter,
};

export const PROVIDER_KINDS: readonly ProviderKind[] = Object.keys(ADAPTERS).filter(isProviderKind);

export function isProviderKind(value: string): value is ProviderKind {
  return Object.prototype.hasOwnProperty.call(ADAPTERS, value);
}

export function getProviderAdapter(kind: ProviderKind): ProviderAdapter {
  return ADAPTERS[kind];
}
