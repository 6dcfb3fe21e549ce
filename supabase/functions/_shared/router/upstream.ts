import type { Clock } from '../clock.ts';
import { HttpError } from '../errors.ts';
import { UpstreamFailureError } from '../providers/errors.ts';
import type { ProviderAdapter, UpstreamRequest } from '../providers/types.ts';
import { malformedResponseError, upstreamErrorFromFetchFailure } from '../providers/upstream-errors.ts';
import type { ProviderRecord } from './catalog.ts';

/**
 * The caller went away: stop everything. Nobody reads the answer; it is an
 * HttpError so the reservation is released and nothing is logged as a crash.
 */
export class ClientAbortedError extends HttpError {
  constructor() {
    super('client_closed_request', 'client closed the request');
    this.name = 'ClientAbortedError';
  }
}

export interface UpstreamLimits {
  /** From sending the request to the response headers (connect included). */
  firstByteMs: number;
  /** From sending the request to the last byte of the body. */
  totalMs: number;
}

export interface UpstreamExchange {
  response: Response;
  /** Aborts the exchange (client gone, or we stop reading). */
  abort(): void;
  /** Stops the total-time timer once the body has been read. */
  release(): void;
}

/**
 * Sends one request upstream with explicit time limits. A first-byte timeout
 * or total timeout surfaces as a retryable 504 UpstreamFailureError; a
 * refused connection as a retryable 502; the client's abort as
 * ClientAbortedError. The total timer keeps running while the caller reads
 * the body; call release() when done.
 */
async function sendUpstream(
  fetchImpl: typeof fetch,
  request: UpstreamRequest,
  limits: UpstreamLimits,
  clientSignal: AbortSignal,
  providerName: string,
): Promise<UpstreamExchange> {
  if (clientSignal.aborted) throw new ClientAbortedError();
  const controller = new AbortController();
  let abortedBy: 'client' | 'first_byte' | 'total' | undefined;
  const abort = (reason: 'client' | 'first_byte' | 'total') => {
    abortedBy ??= reason;
    controller.abort(new DOMException(reason, reason === 'client' ? 'AbortError' : 'TimeoutError'));
  };
  const onClientAbort = () => abort('client');
  clientSignal.addEventListener('abort', onClientAbort, { once: true });
  const totalTimer = setTimeout(() => abort('total'), limits.totalMs);
  const firstByteTimer = setTimeout(() => abort('first_byte'), limits.firstByteMs);
  const release = () => {
    clearTimeout(totalTimer);
    clearTimeout(firstByteTimer);
    clientSignal.removeEventListener('abort', onClientAbort);
  };
  try {
    const response = await fetchImpl(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: controller.signal,
    });
    clearTimeout(firstByteTimer);
    return { response, abort: () => abort('client'), release };
  } catch (error) {
    release();
    if (abortedBy === 'client') throw new ClientAbortedError();
    const failure = abortedBy ? new DOMException(abortedBy, 'TimeoutError') : error;
    throw new UpstreamFailureError(upstreamErrorFromFetchFailure(failure, providerName));
  }
}

/** Reads a body as text, turning a timeout or cut connection into an UpstreamFailureError. */
async function readUpstreamText(
  exchange: UpstreamExchange,
  clientSignal: AbortSignal,
  providerName: string,
): Promise<string> {
  try {
    return await exchange.response.text();
  } catch (error) {
    if (clientSignal.aborted) throw new ClientAbortedError();
    throw new UpstreamFailureError(upstreamErrorFromFetchFailure(error, providerName));
  } finally {
    exchange.release();
  }
}

/** The first-byte and total limits of a provider (connect is part of first byte: fetch cannot tell them apart). */
function providerLimits(provider: ProviderRecord): UpstreamLimits {
  return { firstByteMs: provider.connectTimeoutMs + provider.firstByteTimeoutMs, totalMs: provider.totalTimeoutMs };
}

/**
 * One non-streaming upstream call: send, read the body, turn a non-2xx into
 * the adapter's UpstreamError and a body that is not JSON into a malformed
 * response; the parsed JSON otherwise.
 */
export async function exchangeJson(
  fetchImpl: typeof fetch,
  request: UpstreamRequest,
  provider: ProviderRecord,
  adapter: Pick<ProviderAdapter, 'parseError'>,
  clientSignal: AbortSignal,
  clock: Clock,
): Promise<unknown> {
  const exchange = await sendUpstream(fetchImpl, request, providerLimits(provider), clientSignal, provider.slug);
  const text = await readUpstreamText(exchange, clientSignal, provider.slug);
  if (!exchange.response.ok) {
    throw new UpstreamFailureError(
      adapter.parseError(exchange.response.status, text, exchange.response.headers, clock.now().getTime()),
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UpstreamFailureError(malformedResponseError(provider.slug, 'body is not JSON'));
  }
}

/**
 * Opens a streamed upstream call: send, and turn a non-2xx (or a response
 * without a body) into the adapter's UpstreamError. The caller reads the
 * body and calls release() when done.
 */
export async function openUpstreamStream(
  fetchImpl: typeof fetch,
  request: UpstreamRequest,
  provider: ProviderRecord,
  adapter: Pick<ProviderAdapter, 'parseError'>,
  clientSignal: AbortSignal,
  clock: Clock,
): Promise<UpstreamExchange & { response: { body: ReadableStream<Uint8Array> } }> {
  const exchange = await sendUpstream(fetchImpl, request, providerLimits(provider), clientSignal, provider.slug);
  const { response } = exchange;
  if (!response.ok || !response.body) {
    const text = await readUpstreamText(exchange, clientSignal, provider.slug);
    throw new UpstreamFailureError(adapter.parseError(response.status, text, response.headers, clock.now().getTime()));
  }
  return exchange as UpstreamExchange & { response: { body: ReadableStream<Uint8Array> } };
}
