import { describe, expect, it } from 'vitest';
import {
  getProviderAdapter,
  isProviderKind,
  PROVIDER_KINDS,
} from '../../../supabase/functions/_shared/providers/registry.ts';

describe('provider registry', () => {
  it('has one adapter per kind, reporting that kind', () => {
    expect([...PROVIDER_KINDS].sort()).toEqual(['anthropic', 'azure_openai', 'gemini', 'openai', 'openai_compatible']);
    for (const kind of PROVIDER_KINDS) expect(getProviderAdapter(kind).kind).toBe(kind);
  });

  it('knows its kinds and nothing else', () => {
    expect(isProviderKind('gemini')).toBe(true);
    expect(isProviderKind('cohere')).toBe(false);
    expect(isProviderKind('toString')).toBe(false);
  });

  it('states capabilities honestly', () => {
    expect(
      PROVIDER_KINDS.map((
        kind,
      ) => [kind, getProviderAdapter(kind).supports.embeddings, getProviderAdapter(kind).supports.multipleChoices]),
    ).toEqual([
      ['openai', true, true],
      ['openai_compatible', true, true],
      ['azure_openai', true, true],
      ['anthropic', false, false],
      ['gemini', true, true],
    ]);
  });
});
