import type { ModelRecord } from '../router/catalog.ts';

/** USD micro-units for a token count at a per-million price, rounded up (never under-charge). */
function tokenCost(tokens: number, costPerMillion: number): number {
  return Math.ceil((tokens * costPerMillion) / 1_000_000);
}

/** Tokens of an answer by price: prompt tokens include the cache writes and reads. */
export interface PricedUsage {
  promptTokens: number;
  completionTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
}

/** The dearest price a prompt token may have (a cache write may cost more than plain input). */
function promptPricePerMillion(model: ModelRecord): number {
  return Math.max(model.inputCostPerMillion, model.cacheWriteCostPerMillion, model.cacheReadCostPerMillion);
}

/** What a request may cost at most: its prompt plus every output token it may produce. */
export function estimateCost(model: ModelRecord, promptTokens: number, maxOutputTokens: number): number {
  return tokenCost(promptTokens, promptPricePerMillion(model)) +
    tokenCost(maxOutputTokens, model.outputCostPerMillion);
}

/**
 * What a request cost: uncached input, cache writes, cache reads and output,
 * each at its catalog price and each rounded up on its own.
 */
export function actualCost(model: ModelRecord, usage: PricedUsage): number {
  const cached = usage.cacheWriteTokens + usage.cacheReadTokens;
  return tokenCost(usage.promptTokens - cached, model.inputCostPerMillion) +
    tokenCost(usage.cacheWriteTokens, model.cacheWriteCostPerMillion) +
    tokenCost(usage.cacheReadTokens, model.cacheReadCostPerMillion) +
    tokenCost(usage.completionTokens, model.outputCostPerMillion);
}

/** The most output tokens that fit in `remainingMicros` after the prompt (token guard, policy cap). */
export function affordableOutputTokens(model: ModelRecord, promptTokens: number, remainingMicros: number): number {
  const left = remainingMicros - tokenCost(promptTokens, promptPricePerMillion(model));
  if (left <= 0) return 0;
  if (model.outputCostPerMillion === 0) return model.maxOutputTokens;
  return Math.max(0, Math.floor((left * 1_000_000) / model.outputCostPerMillion));
}
