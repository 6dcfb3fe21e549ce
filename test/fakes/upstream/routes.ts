// Which wire format and operation a request is, from its method and real provider path.
import type { IncomingHttpHeaders } from 'node:http';
import type { FakeRoute } from './reply.ts';
import { isRecord } from './reply.ts';

export function resolveRoute(method: string, url: URL, headers: IncomingHttpHeaders, body: unknown): FakeRoute | null {
  const path = url.pathname;
  const bodyModel = isRecord(body) && typeof body.model === 'string' ? body.model : undefined;
  const bodyStream = isRecord(body) && body.stream === true;
  if (method === 'POST' && path === '/v1/chat/completions') {
    return { format: 'openai', operation: 'chat', model: bodyModel, stream: bodyStream };
  }
  if (method === 'POST' && path === '/v1/responses') {
    return { format: 'openai', operation: 'responses', model: bodyModel, stream: bodyStream };
  }
  if (method === 'POST' && path === '/openai/v1/responses') {
    return { format: 'azure', operation: 'responses', model: bodyModel, stream: bodyStream };
  }
  if (method === 'POST' && path === '/v1/embeddings') {
    return { format: 'openai', operation: 'embeddings', model: bodyModel, stream: false };
  }
  if (method === 'POST' && path === '/v1/messages') {
    return { format: 'anthropic', operation: 'chat', model: bodyModel, stream: bodyStream };
  }
  if (method === 'GET' && path === '/v1/models') {
    // OpenAI and Anthropic share this path; Anthropic callers send their own headers
    const anthropic = headers['anthropic-version'] !== undefined || headers['x-api-key'] !== undefined;
    return { format: anthropic ? 'anthropic' : 'openai', operation: 'models', stream: false };
  }
  const azure = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(path);
  if (method === 'POST' && azure) {
    const operation = azure[2] === 'embeddings' ? 'embeddings' : 'chat';
    return {
      format: 'azure',
      operation,
      model: decodeURIComponent(azure[1]),
      stream: operation === 'chat' && bodyStream,
    };
  }
  if (method === 'GET' && path === '/openai/models') return { format: 'azure', operation: 'models', stream: false };
  const gemini = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|embedContent|batchEmbedContents)$/
    .exec(path);
  if (method === 'POST' && gemini) {
    const model = decodeURIComponent(gemini[1]);
    const methodName = gemini[2];
    if (methodName === 'embedContent') return { format: 'gemini', operation: 'embed_content', model, stream: false };
    if (methodName === 'batchEmbedContents') {
      return { format: 'gemini', operation: 'batch_embed', model, stream: false };
    }
    return {
      format: 'gemini',
      operation: 'chat',
      model,
      stream: methodName === 'streamGenerateContent' && url.searchParams.get('alt') === 'sse',
    };
  }
  if (method === 'GET' && path === '/v1beta/models') return { format: 'gemini', operation: 'models', stream: false };
  return null;
}
