// One loopback HTTP server speaking the OpenAI, Azure OpenAI, Anthropic and Gemini wire
// formats on their real paths, with deterministic replies, real auth checks, scriptable
// faults and a control API (/__fake/*) for tests that run it as a separate process.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkAuth, maskHeaders, maskPath } from './upstream/auth.ts';
import { anthropicFaultReply, handleAnthropicMessages, handleAnthropicModels } from './upstream/anthropic.ts';
import {
  type FakeFault,
  type FaultOptions,
  FaultQueue,
  faultRequestSchema,
  type QueuedFault,
} from './upstream/faults.ts';
import {
  geminiFaultReply,
  handleGeminiBatchEmbed,
  handleGeminiEmbed,
  handleGeminiGenerate,
  handleGeminiModels,
} from './upstream/gemini.ts';
import { handleOpenAIChat, handleOpenAIEmbeddings, handleOpenAIModels, openAIFaultReply } from './upstream/openai.ts';
import { handleOpenAIResponses } from './upstream/openai-responses.ts';
import { encodeSse, type FakeReply, type FakeRoute, type HandlerEnv, json, type WireFormat } from './upstream/reply.ts';
import { resolveRoute } from './upstream/routes.ts';

export type { FakeFault, FaultMatch, FaultOptions, QueuedFault } from './upstream/faults.ts';
export type { WireFormat } from './upstream/reply.ts';
export { countWords, FAKE_TOOL_ARGUMENTS, fakeEmbedding } from './upstream/conversation.ts';
export { FAKE_CACHE_USAGE, FAKE_THINKING } from './upstream/anthropic.ts';
export { FAKE_CACHED_TOKENS } from './upstream/openai.ts';
export { FAKE_ENCRYPTED_REASONING } from './upstream/openai-responses.ts';

export const DEFAULT_FAKE_MODELS = [
  'gpt-4o-mini',
  'text-embedding-3-small',
  'claude-sonnet-4-5',
  'gemini-2.0-flash',
  'text-embedding-004',
];
export const FAKE_CREATED = 1_700_000_000;

export interface FakeUpstreamOptions {
  /** 0 or absent: a random free port. */
  port?: number;
  /** Accepted API keys; default: any non-empty key. */
  apiKeys?: Iterable<string>;
  models?: string[];
  /** Vector length when the request names no dimensions (default 8). */
  embeddingDimensions?: number;
  /** Words per streamed text chunk in the OpenAI format (default 1). */
  wordsPerChunk?: number;
  /** `created` in every response (default 1700000000). */
  created?: number;
  /** Oldest recorded requests are dropped past this many (default 1000). */
  maxRecordedRequests?: number;
}

export interface RecordedRequest {
  seq: number;
  method: string;
  /** Path and query; a `key` query value is masked. */
  path: string;
  format: WireFormat | null;
  operation: FakeRoute['operation'] | null;
  model: string | null;
  /** Lower-case names; credential values masked to their last 4 characters. */
  headers: Record<string, string>;
  /** Parsed JSON, the raw text when not JSON, or null when empty. */
  body: unknown;
  authorized: boolean;
  fault: FakeFault['kind'] | null;
  /** The caller closed the connection before the reply was complete (a client that left, an abort). */
  closedEarly: boolean;
}

export interface FakeUpstream {
  url: string;
  port: number;
  /** Base URLs to put in a ProviderEndpoint for each adapter. */
  endpoints: { openai: string; azure_openai: string; anthropic: string; gemini: string };
  readonly requests: RecordedRequest[];
  enqueue(fault: FakeFault, options?: FaultOptions): void;
  faults(): QueuedFault[];
  clearFaults(): void;
  clearRequests(): void;
  close(): Promise<void>;
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const acceptedKeys = options.apiKeys === undefined ? undefined : new Set(options.apiKeys);
  const accepts = (key: string): boolean => (acceptedKeys === undefined ? key.length > 0 : acceptedKeys.has(key));
  const faults = new FaultQueue();
  const maxRecorded = options.maxRecordedRequests ?? 1000;
  let requests: RecordedRequest[] = [];
  let seq = 0;
  const env = (n: number, headers: IncomingMessage['headers'] = {}): HandlerEnv => ({
    seq: n,
    created: options.created ?? FAKE_CREATED,
    models: options.models ?? DEFAULT_FAKE_MODELS,
    embeddingDimensions: options.embeddingDimensions ?? 8,
    wordsPerChunk: options.wordsPerChunk ?? 1,
    anthropicBetas: String(headers['anthropic-beta'] ?? '').split(',').map((beta) => beta.trim()).filter(Boolean),
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const raw = await readBody(req);
    if (url.pathname.startsWith('/__fake/')) {
      writeReply(res, control(method, url.pathname, raw));
      return;
    }
    const { body, invalidJson } = parseBody(raw);
    const route = resolveRoute(method, url, req.headers, body);
    seq += 1;
    const record: RecordedRequest = {
      seq,
      method,
      path: maskPath(url),
      format: route?.format ?? null,
      operation: route?.operation ?? null,
      model: route?.model ?? null,
      headers: maskHeaders(req.headers),
      body,
      authorized: false,
      fault: null,
      closedEarly: false,
    };
    res.on('close', () => {
      if (!res.writableFinished) record.closedEarly = true;
    });
    requests.push(record);
    if (requests.length > maxRecorded) requests = requests.slice(-maxRecorded);
    if (route === null) {
      writeReply(
        res,
        json(404, {
          error: {
            message: `Unknown request URL: ${method} ${url.pathname}`,
            type: 'invalid_request_error',
            param: null,
            code: 'unknown_url',
          },
        }),
      );
      return;
    }
    const denied = checkAuth(route.format, req.headers, url, accepts);
    if (denied !== null) {
      writeReply(res, denied);
      return;
    }
    record.authorized = true;
    if (invalidJson) {
      writeReply(res, faultReply(route.format, 400, undefined, 'The request body is not valid JSON'));
      return;
    }
    const fault = faults.take(route, `${url.pathname}${url.search}`);
    record.fault = fault?.kind ?? null;
    if (fault?.kind === 'hang') return; // closed by close() or by the client
    if (fault?.kind === 'status') {
      writeReply(res, faultReply(route.format, fault.status, fault.retryAfterSeconds, fault.message));
      return;
    }
    if (fault?.kind === 'delay') {
      await sleep(fault.ms);
      if (res.destroyed) return;
    }
    const reply = dispatch(route, url, body, env(record.seq, req.headers));
    if (fault?.kind === 'cut_stream') await writeCut(res, reply, fault.afterChunks);
    else if (fault?.kind === 'stall_stream') await writeCut(res, reply, fault.afterChunks, { hold: true });
    else writeReply(res, reply);
  }

  function control(method: string, path: string, raw: string): FakeReply {
    if (path === '/__fake/faults') {
      if (method === 'GET') return json(200, { faults: faults.list() });
      if (method === 'DELETE') {
        faults.clear();
        return json(200, { cleared: true });
      }
      if (method === 'POST') {
        const { body, invalidJson } = parseBody(raw);
        const entries = Array.isArray(body) ? body : [body];
        const parsed = entries.map((entry) => faultRequestSchema.safeParse(entry));
        const bad = parsed.find((p) => !p.success);
        if (invalidJson || bad?.error) {
          return json(400, { error: { message: bad?.error?.issues[0]?.message ?? 'invalid JSON' } });
        }
        for (const p of parsed) {
          if (p.success) faults.enqueue(p.data.fault, { times: p.data.times, match: p.data.match });
        }
        return json(201, { queued: parsed.length });
      }
    }
    if (path === '/__fake/requests') {
      if (method === 'GET') return json(200, { requests });
      if (method === 'DELETE') {
        requests = [];
        return json(200, { cleared: true });
      }
    }
    return json(404, { error: { message: `Unknown control route: ${method} ${path}` } });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) {
        writeReply(
          res,
          json(500, { error: { message: 'fake upstream failure', type: 'server_error', param: null, code: null } }),
        );
      } else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    endpoints: { openai: `${url}/v1`, azure_openai: url, anthropic: url, gemini: url },
    get requests() {
      return requests;
    },
    enqueue: (fault, faultOptions) => faults.enqueue(fault, faultOptions),
    faults: () => faults.list(),
    clearFaults: () => faults.clear(),
    clearRequests: () => {
      requests = [];
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections(); // also ends hanging and keep-alive connections
      }),
  };
}

function dispatch(route: FakeRoute, url: URL, body: unknown, env: HandlerEnv): FakeReply {
  switch (route.format) {
    case 'openai':
    case 'azure':
      if (route.operation === 'models') return handleOpenAIModels(env);
      if (route.operation === 'embeddings') return handleOpenAIEmbeddings(route, body, env);
      if (route.operation === 'responses') return handleOpenAIResponses(route, body, env);
      return handleOpenAIChat(route, body, env);
    case 'anthropic':
      return route.operation === 'models' ? handleAnthropicModels(env) : handleAnthropicMessages(body, env);
    case 'gemini': {
      const model = route.model ?? '';
      if (route.operation === 'models') return handleGeminiModels(env);
      if (route.operation === 'embed_content') return handleGeminiEmbed(body, env);
      if (route.operation === 'batch_embed') return handleGeminiBatchEmbed(body, env);
      const streaming = url.pathname.endsWith(':streamGenerateContent');
      return handleGeminiGenerate(model, body, env, !streaming ? 'json' : route.stream ? 'sse' : 'json_array');
    }
  }
}

function faultReply(format: WireFormat, status: number, retryAfterSeconds?: number, message?: string): FakeReply {
  const reply = format === 'anthropic'
    ? anthropicFaultReply(status, message)
    : format === 'gemini'
    ? geminiFaultReply(status, retryAfterSeconds, message)
    : openAIFaultReply(format, status, message);
  if (retryAfterSeconds === undefined || reply.kind !== 'json') return reply;
  return { ...reply, headers: { ...reply.headers, 'retry-after': String(retryAfterSeconds) } };
}

function writeReply(res: ServerResponse, reply: FakeReply): void {
  if (res.destroyed) return;
  if (reply.kind === 'json') {
    const text = JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...reply.headers,
    });
    res.end(text);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const event of reply.events) res.write(encodeSse(event, reply.lineEnding));
  res.end();
}

/**
 * Sends part of the reply, then destroys the socket, as a dropped upstream
 * connection would; with `hold`, leaves it open (closed by the caller or close()).
 */
async function writeCut(
  res: ServerResponse,
  reply: FakeReply,
  afterChunks: number,
  { hold = false } = {},
): Promise<void> {
  if (reply.kind === 'json') {
    const text = JSON.stringify(reply.body);
    res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    await write(res, text.slice(0, Math.floor(text.length / 2)));
  } else {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    for (const event of reply.events.slice(0, afterChunks)) await write(res, encodeSse(event, reply.lineEnding));
  }
  if (!hold) res.destroy();
}

function write(res: ServerResponse, text: string): Promise<void> {
  return new Promise((resolve) => res.write(text, () => resolve()));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody(raw: string): { body: unknown; invalidJson: boolean } {
  if (raw.trim() === '') return { body: null, invalidJson: false };
  try {
    return { body: JSON.parse(raw) as unknown, invalidJson: false };
  } catch {
    return { body: raw, invalidJson: true };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
