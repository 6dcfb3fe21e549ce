// Error classes adapters throw, and the OpenAI error body the router renders from them.
import type { OpenAIErrorBody } from '../openai/types.ts';
import type { UpstreamError } from './types.ts';

/** The caller's request cannot be expressed for this provider: the router answers 400. */
export class RequestMappingError extends Error {
  readonly param: string | null;
  readonly code: string;
  constructor(message: string, param: string | null, code = 'invalid_value') {
    super(message);
    this.name = 'RequestMappingError';
    this.param = param;
    this.code = code;
  }
}

/** A feature the provider cannot do (n>1 on Anthropic…): a clear 400, not a guess. */
export class UnsupportedFeatureError extends RequestMappingError {
  constructor(param: string, message: string) {
    super(message, param, 'unsupported_parameter');
    this.name = 'UnsupportedFeatureError';
  }
}

/** An upstream failure found while reading a body or a stream (error event, bad shape). */
export class UpstreamFailureError extends Error {
  readonly upstream: UpstreamError;
  constructor(upstream: UpstreamError) {
    super(upstream.message);
    this.name = 'UpstreamFailureError';
    this.upstream = upstream;
  }
}

export function upstreamErrorBody(error: UpstreamError): OpenAIErrorBody {
  return { error: { message: error.message, type: error.type, param: null, code: error.code } };
}

export function requestMappingErrorBody(error: RequestMappingError): OpenAIErrorBody {
  return {
    error: { message: error.message, type: 'invalid_request_error', param: error.param, code: error.code },
  };
}
