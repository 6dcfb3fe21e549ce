import { describe, expect, it } from 'vitest';
import {
  actualCost,
  affordableOutputTokens,
  estimateCost,
} from '../../../supabase/functions/_shared/economics/pricing.ts';
import type { ModelRecord } from '../../../supabase/functions/_shared/router/catalog.ts';

// Prices in USD micro-units per million tokens: 3 per input token, 3.75 per cache write, 0.3 per cache read, 15 out.
const model: ModelRecord = {
  id: 'm',
  providerId: 'p',
  alias: 'claude',
  upstreamModel: 'claude-sonnet',
  inputCostPerMillion: 3_000_000,
  outputCostPerMillion: 15_000_000,
  cacheWriteCostPerMillion: 3_750_000,
  cacheReadCostPerMillion: 300_000,
  contextWindow: 200_000,
  maxOutputTokens: 8192,
  capabilities: new Set(['chat']),
  priority: 100,
  enabled: true,
};

describe('pricing', () => {
  it('charges uncached input, cache writes, cache reads and output each at its price, each rounded up', () => {
    const usage = { promptTokens: 1807, cacheWriteTokens: 2, cacheReadTokens: 3, completionTokens: 49 };
    // 1802 x 3 + ceil(2 x 3.75) + ceil(3 x 0.3) + 49 x 15
    expect(actualCost(model, usage)).toBe(5406 + 8 + 1 + 735);
    expect(actualCost(model, { ...usage, cacheWriteTokens: 0, cacheReadTokens: 0 })).toBe(1807 * 3 + 735);
  });

  it('estimates every prompt token at the dearest prompt price, so any mix of cache writes and reads is covered', () => {
    expect(estimateCost(model, 100, 10)).toBe(Math.ceil(100 * 3.75) + 150);
    const allWrites = actualCost(model, {
      promptTokens: 100,
      cacheWriteTokens: 100,
      cacheReadTokens: 0,
      completionTokens: 10,
    });
    expect(allWrites).toBeLessThanOrEqual(estimateCost(model, 100, 10));
    expect(affordableOutputTokens(model, 100, Math.ceil(100 * 3.75) + 150)).toBe(10);
  });
});
