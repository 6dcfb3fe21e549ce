// What every dialect does at its edges: refuse a body that failed validation,
// turn an adapter's mapping refusal into the caller's 400, and read an
// OpenAI-format usage for settlement.
import { HttpError } from '../../_shared/errors.ts';
import type { ParseResult } from '../../_shared/openai/schemas.ts';
import type { Usage } from '../../_shared/openai/types.ts';
import { RequestMappingError } from '../../_shared/providers/errors.ts';
import type { ChatCallContext } from '../../_shared/providers/types.ts';
import type { Attempt } from '../pipeline.ts';
import type { TokenUsage } from '../stream.ts';

/** The validated request, or the 400 naming the field. */
export function validated<T>(parsed: ParseResult<T>): T {
  if (!parsed.ok) throw new HttpError('validation_failed', parsed.message, { param: parsed.param });
  return parsed.value;
}

/** Runs an adapter's request mapping; a RequestMappingError is the caller's 400. */
export function mapped<T>(build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (!(error instanceof RequestMappingError)) throw error;
    const code = error.code === 'unsupported_parameter' ? 'unsupported_parameter' : 'validation_failed';
    throw new HttpError(code, error.message, { param: error.param });
  }
}

/** What a chat adapter needs to call this attempt's candidate (any dialect that goes through chat). */
export function chatCallContext(
  { request, candidate, apiKey, requestId, created }: Attempt<unknown>,
  includeUsage: boolean,
): ChatCallContext {
  const { provider, model } = candidate;
  return {
    upstreamModel: model.upstreamModel,
    publicModel: request.alias,
    apiKey,
    endpoint: { kind: provider.kind, baseUrl: provider.baseUrl, apiVersion: provider.apiVersion },
    stream: request.stream,
    requestId,
    created,
    includeUsage,
    defaultMaxTokens: model.maxOutputTokens,
  };
}

/**
 * An OpenAI-format usage as the pipeline's: `cached_tokens` are prompt-cache
 * reads, inside prompt_tokens (OpenAI reports no cache writes). Without a
 * reported count, the tokens produced are counted.
 */
export function chatTokenUsage(usage: Usage | undefined, countProduced: () => number): TokenUsage {
  return {
    promptTokens: usage?.prompt_tokens,
    completionTokens: usage?.completion_tokens ?? countProduced(),
    cacheReadTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
  };
}
