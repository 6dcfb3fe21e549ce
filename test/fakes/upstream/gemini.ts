// Gemini API wire format for the fake: generateContent (JSON, SSE, JSON array),
// embedContent, batchEmbedContents, models, and Google RPC errors.
import { z } from 'zod';
import { answer, type Conversation, type FakeAnswer, fakeEmbedding, textPieces } from './conversation.ts';
import { type FakeReply, type HandlerEnv, json, sse, type SseOut } from './reply.ts';

const partSchema = z.looseObject({
  text: z.string().optional(),
  functionCall: z.looseObject({ name: z.string() }).optional(),
  functionResponse: z.looseObject({ name: z.string(), response: z.unknown() }).optional(),
});
const generateBodySchema = z.looseObject({
  contents: z.array(z.looseObject({ role: z.string().optional(), parts: z.array(partSchema) })).min(1),
  systemInstruction: z.looseObject({ parts: z.array(partSchema) }).optional(),
  tools: z.array(z.looseObject({ functionDeclarations: z.array(z.looseObject({ name: z.string() })).optional() }))
    .optional(),
  generationConfig: z
    .looseObject({
      maxOutputTokens: z.number().int().optional(),
      candidateCount: z.number().int().positive().optional(),
      responseMimeType: z.string().optional(),
    })
    .optional(),
});
const contentSchema = z.looseObject({ parts: z.array(z.looseObject({ text: z.string().optional() })) });
const embedBodySchema = z.looseObject({
  content: contentSchema,
  outputDimensionality: z.number().int().positive().optional(),
});
const batchEmbedBodySchema = z.looseObject({ requests: z.array(embedBodySchema).min(1) });

type GenerateBody = z.infer<typeof generateBodySchema>;

const STATUS_NAMES: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

export function geminiError(status: number, message: string, details?: unknown[], statusName?: string): FakeReply {
  return json(status, {
    error: {
      code: status,
      message,
      status: statusName ?? STATUS_NAMES[status] ?? 'UNAVAILABLE',
      ...(details ? { details } : {}),
    },
  });
}

export function geminiFaultReply(status: number, retryAfterSeconds?: number, message?: string): FakeReply {
  const details = status === 429 && retryAfterSeconds !== undefined
    ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${retryAfterSeconds}s` }]
    : undefined;
  const fallback = status === 429
    ? 'Resource has been exhausted (e.g. check quota).'
    : status === 500
    ? 'An internal error has occurred.'
    : 'The model is overloaded. Please try again later.';
  return geminiError(status, message ?? fallback, details);
}

function partText(part: z.infer<typeof partSchema>): string {
  if (part.text !== undefined) return part.text;
  if (part.functionResponse) {
    const response = part.functionResponse.response;
    const output = typeof response === 'object' && response !== null && 'output' in response
      ? response.output
      : undefined;
    return typeof output === 'string' ? output : JSON.stringify(response);
  }
  return '';
}

function conversationOf(body: GenerateBody): Conversation {
  const texts: string[] = (body.systemInstruction?.parts ?? []).map(partText);
  let last: Conversation['last'] = { kind: 'user_text', text: '' };
  for (const content of body.contents) {
    const text = content.parts.map(partText).join('');
    texts.push(text);
    if (content.role !== 'model') {
      last = { kind: content.parts.some((p) => p.functionResponse !== undefined) ? 'tool_result' : 'user_text', text };
    }
  }
  const toolNames = (body.tools ?? []).flatMap((tool) => (tool.functionDeclarations ?? []).map((d) => d.name));
  const config = body.generationConfig;
  return {
    texts,
    last,
    toolNames,
    maxTokens: config?.maxOutputTokens,
    json: config?.responseMimeType === 'application/json',
  };
}

export function handleGeminiGenerate(
  model: string,
  rawBody: unknown,
  env: HandlerEnv,
  mode: 'json' | 'sse' | 'json_array',
): FakeReply {
  const parsed = generateBodySchema.safeParse(rawBody);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return geminiError(400, `Invalid JSON payload received. ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`);
  }
  const body = parsed.data;
  if (body.contents.some((c) => c.role !== undefined && c.role !== 'user' && c.role !== 'model')) {
    return geminiError(400, 'Please use a valid role: user, model.');
  }
  const result = answer(conversationOf(body));
  const candidates = body.generationConfig?.candidateCount ?? 1;
  const finishReason = result.kind === 'text' && result.truncated ? 'MAX_TOKENS' : 'STOP';
  const usage = (completion: number) => ({
    promptTokenCount: result.promptTokens,
    candidatesTokenCount: completion,
    totalTokenCount: result.promptTokens + completion,
  });
  const responseOf = (parts: unknown[], finish: boolean, completion: number) => ({
    candidates: Array.from({ length: candidates }, (_, index) => ({
      content: { parts, role: 'model' },
      ...(finish ? { finishReason } : {}),
      index,
    })),
    usageMetadata: usage(completion),
    modelVersion: model,
    responseId: `fake-${env.seq}`,
  });
  if (mode === 'json') return json(200, responseOf(partsOf(result), true, result.completionTokens));
  const responses = streamedResponses(result, responseOf);
  if (mode === 'json_array') return json(200, responses);
  return sse(responses.map((r): SseOut => ({ data: JSON.stringify(r) })), '\r\n');
}

function partsOf(result: FakeAnswer): unknown[] {
  if (result.kind === 'text') return [{ text: result.text }];
  return [{ functionCall: { name: result.name, args: JSON.parse(result.arguments) as unknown } }];
}

/** One response per text piece, usage cumulative; the last carries finishReason. */
function streamedResponses(
  result: FakeAnswer,
  responseOf: (parts: unknown[], finish: boolean, completion: number) => unknown,
): unknown[] {
  if (result.kind === 'tool_call') return [responseOf(partsOf(result), true, result.completionTokens)];
  const pieces = textPieces(result.text);
  if (pieces.length === 0) return [responseOf([{ text: '' }], true, 0)];
  let soFar = '';
  return pieces.map((text, i) => {
    soFar += text;
    const completion = soFar.trim().split(/\s+/).length;
    return responseOf([{ text }], i === pieces.length - 1, completion);
  });
}

export function handleGeminiEmbed(rawBody: unknown, env: HandlerEnv): FakeReply {
  const parsed = embedBodySchema.safeParse(rawBody);
  if (!parsed.success) return geminiError(400, 'Invalid JSON payload received.');
  return json(200, { embedding: { values: embed(parsed.data, env) } });
}

export function handleGeminiBatchEmbed(rawBody: unknown, env: HandlerEnv): FakeReply {
  const parsed = batchEmbedBodySchema.safeParse(rawBody);
  if (!parsed.success) return geminiError(400, 'Invalid JSON payload received.');
  return json(200, { embeddings: parsed.data.requests.map((request) => ({ values: embed(request, env) })) });
}

function embed(request: z.infer<typeof embedBodySchema>, env: HandlerEnv): number[] {
  const text = request.content.parts.map((p) => p.text ?? '').join('');
  return fakeEmbedding(text, request.outputDimensionality ?? env.embeddingDimensions);
}

export function handleGeminiModels(env: HandlerEnv): FakeReply {
  return json(200, {
    models: env.models.map((id) => ({
      name: `models/${id}`,
      displayName: id,
      supportedGenerationMethods: ['generateContent', 'countTokens', 'embedContent'],
    })),
  });
}
