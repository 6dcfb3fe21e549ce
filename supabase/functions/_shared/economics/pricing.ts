import type { ModelRecord } from '../router/catalog.ts';

/** USD micro-units for a token count at a per-million price, rounded up (never under-charge). */
function tokenCost(tokens: number, costPerMillion: number): number {
  return Math.ceil((tokens * costPerMillion) / 1_000_000);
}

/** What a request may cost at most: its prompt plus every output token it may produce. */
export function estimateCost(model: ModelRecord, promptTokens: number, maxOutputTokens: number): number {
  return tokenCost(promptTokens, model.inputCostPerMillion) + tokenCost(maxOutputTokens, model.outputCostPerMillion);
}

export function actualCost(model: ModelRecord, promptTokens: number, completionTokens: number): number {
  return tokenCost(promptTokens, model.inputCostPerMillion) + tokenCost(completionTokens, model.outputCostPerMillion);
}

/** The most output tokens that fit in `remainingMicros` after the prompt (token guard, policy cap). */
export function affordableOutputTokens(model: ModelRecord, promptTokens: number, remainingMicros: number): number {
  const left = remainingMicros - tokenCost(promptTokens, model.inputCostPerMillion);
  if (left <= 0) return 0;
  if (model.outputCostPerMillion === 0) return model.maxOutputTokens;
  return Math.max(0, Math.floor((left * 1_000_000) / model.outputCostPerMillion));
}
