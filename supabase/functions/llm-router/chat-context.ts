import { HttpError } from '../_shared/errors.ts';
import type { ChatCompletionRequest } from '../_shared/openai/types.ts';
import type { RequestMappingError } from '../_shared/providers/errors.ts';
import type { ChatCallContext } from '../_shared/providers/types.ts';
import type { RouteCandidate } from '../_shared/router/plan.ts';

/** What an adapter needs to call this candidate for this request. */
export function chatContext(
  request: ChatCompletionRequest,
  candidate: RouteCandidate,
  apiKey: string,
  requestId: string,
  created: number,
): ChatCallContext {
  return {
    upstreamModel: candidate.model.upstreamModel,
    publicModel: request.model,
    apiKey,
    endpoint: {
      kind: candidate.provider.kind,
      baseUrl: candidate.provider.baseUrl,
      apiVersion: candidate.provider.apiVersion,
    },
    stream: request.stream === true,
    requestId,
    created,
    includeUsage: request.stream_options?.include_usage === true,
    defaultMaxTokens: candidate.model.maxOutputTokens,
  };
}

/** An adapter could not express the request for its provider: the caller's 400. */
export function mappingRefusal(error: RequestMappingError): HttpError {
  return new HttpError(
    error.code === 'unsupported_parameter' ? 'unsupported_parameter' : 'validation_failed',
    error.message,
    {
      param: error.param,
    },
  );
}
