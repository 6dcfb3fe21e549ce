// The one contract every provider adapter implements. Adapters are pure: they build
// requests and translate bodies; the router owns fetch, timeouts, retries and fallback.
import type {
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatCompletionResponse,
  EmbeddingsRequest,
  EmbeddingsResponse,
  Usage,
} from '../openai/types.ts';
import type { SseEvent } from '../sse.ts';

export type ProviderKind = 'openai' | 'openai_compatible' | 'azure_openai' | 'anthropic' | 'gemini';

export interface ProviderEndpoint {
  kind: ProviderKind;
  /**
   * openai / openai_compatible: up to and including the version segment
   * (`https://api.openai.com/v1`, `http://vllm:8000/v1`, `https://api.groq.com/openai/v1`).
   * azure_openai: the resource root (`https://x.openai.azure.com`).
   * anthropic: `https://api.anthropic.com`. gemini: `https://generativelanguage.googleapis.com`.
   */
  baseUrl: string;
  /** azure: api-version query; anthropic: anthropic-version header; gemini: path version. */
  apiVersion?: string;
}

export interface UpstreamRequest {
  url: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body?: string;
}

export interface ChatCallContext {
  upstreamModel: string;
  publicModel: string;
  apiKey: string;
  endpoint: ProviderEndpoint;
  stream: boolean;
  requestId: string;
  created: number; // unix seconds
  /** Caller asked for stream_options.include_usage: finish() then emits the usage chunk. */
  includeUsage?: boolean;
  /** max_tokens for providers that require one (Anthropic) when the caller gave none. */
  defaultMaxTokens?: number;
}

export interface EmbeddingsCallContext {
  upstreamModel: string;
  publicModel: string;
  apiKey: string;
  endpoint: ProviderEndpoint;
  requestId: string;
}

/** Fed upstream SSE events in order; returns the OpenAI chunks to forward. */
export interface StreamTranslator {
  /** Throws UpstreamFailureError when the upstream reports an error inside the stream. */
  push(event: SseEvent): ChatCompletionChunk[];
  /** Chunks still pending at end of stream (the usage chunk when ctx.includeUsage). */
  finish(): ChatCompletionChunk[];
  usage(): Usage | undefined;
  /** Upstream signalled a proper end ([DONE], message_stop, a finishReason on every candidate). */
  done(): boolean;
}

export interface UpstreamError {
  /** HTTP status the router should answer with. */
  status: number;
  /** OpenAI error type: invalid_request_error, rate_limit_error, upstream_error, timeout_error. */
  type: string;
  code: string;
  /** Short and sanitized: never a secret, never the raw upstream body. */
  message: string;
  /** Retrying the same upstream later may succeed. */
  retryable: boolean;
  retryAfterMs?: number;
}

export interface ProviderCapabilities {
  chat: true;
  embeddings: boolean;
  streaming: boolean;
  tools: boolean;
  multipleChoices: boolean;
}

export interface ProviderAdapter {
  kind: ProviderKind;
  supports: ProviderCapabilities;
  /** Throws RequestMappingError / UnsupportedFeatureError (with `param`) -> answer 400. */
  buildChatRequest(req: ChatCompletionRequest, ctx: ChatCallContext): UpstreamRequest;
  /** Throws UpstreamFailureError when the body is not the provider's response shape. */
  parseChatResponse(body: unknown, ctx: ChatCallContext): ChatCompletionResponse;
  createStreamTranslator(ctx: ChatCallContext): StreamTranslator;
  buildEmbeddingsRequest?(req: EmbeddingsRequest, ctx: EmbeddingsCallContext): UpstreamRequest;
  /** `req` is the caller's request (Gemini needs encoding_format and the inputs). */
  parseEmbeddingsResponse?(body: unknown, ctx: EmbeddingsCallContext, req: EmbeddingsRequest): EmbeddingsResponse;
  /** A cheap authenticated call (list models) for health probes. */
  buildHealthProbe(endpoint: ProviderEndpoint, apiKey: string): UpstreamRequest;
  /** `nowMs` (the injected clock) turns a Retry-After date into a wait. */
  parseError(status: number, bodyText: string, headers: Headers, nowMs: number): UpstreamError;
}
