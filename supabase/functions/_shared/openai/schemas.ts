// zod schemas for what the router accepts. Unknown fields pass through (looseObject) so
// OpenAI-format upstreams still receive provider extras; wrong types fail with a field path.
import { z } from 'zod';
import type { ChatCompletionRequest, EmbeddingsRequest } from './types.ts';

const textPartSchema = z.looseObject({ type: z.literal('text'), text: z.string() });
const imagePartSchema = z.looseObject({
  type: z.literal('image_url'),
  image_url: z.looseObject({
    url: z.string().min(1),
    detail: z.enum(['auto', 'low', 'high']).optional(),
  }),
});
const contentPartSchema = z.discriminatedUnion('type', [textPartSchema, imagePartSchema]);

const textContentSchema = z.union([z.string(), z.array(textPartSchema)], {
  error: 'expected a string or an array of text parts',
});
const userContentSchema = z.union([z.string(), z.array(contentPartSchema)], {
  error: 'expected a string or an array of content parts',
});

const toolCallSchema = z.looseObject({
  id: z.string().min(1),
  type: z.literal('function'),
  function: z.looseObject({ name: z.string().min(1), arguments: z.string() }),
});

const systemMessageSchema = z.looseObject({
  role: z.enum(['system', 'developer']),
  content: textContentSchema,
  name: z.string().optional(),
});
const userMessageSchema = z.looseObject({
  role: z.literal('user'),
  content: userContentSchema,
  name: z.string().optional(),
});
const assistantMessageSchema = z.looseObject({
  role: z.literal('assistant'),
  content: textContentSchema.nullable().optional(),
  tool_calls: z.array(toolCallSchema).optional(),
  refusal: z.string().nullable().optional(),
  name: z.string().optional(),
});
const toolMessageSchema = z.looseObject({
  role: z.literal('tool'),
  content: textContentSchema,
  tool_call_id: z.string().min(1),
});

const chatMessageSchema = z.discriminatedUnion('role', [
  systemMessageSchema,
  userMessageSchema,
  assistantMessageSchema,
  toolMessageSchema,
]);

const jsonObjectSchema = z.record(z.string(), z.unknown());

const functionToolSchema = z.looseObject({
  type: z.literal('function'),
  function: z.looseObject({
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, _ or -'),
    description: z.string().optional(),
    parameters: jsonObjectSchema.optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

const toolChoiceSchema = z.union(
  [
    z.enum(['none', 'auto', 'required']),
    z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string().min(1) }) }),
  ],
  { error: "expected 'none', 'auto', 'required' or {type:'function', function:{name}}" },
);

const responseFormatSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text') }),
  z.looseObject({ type: z.literal('json_object') }),
  z.looseObject({
    type: z.literal('json_schema'),
    json_schema: z.looseObject({
      name: z.string().min(1),
      description: z.string().optional(),
      schema: jsonObjectSchema.optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

const positiveInt = z.number().int().positive();

export const chatCompletionRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(chatMessageSchema).min(1),
  tools: z.array(functionToolSchema).optional(),
  tool_choice: toolChoiceSchema.optional(),
  parallel_tool_calls: z.boolean().optional(),
  response_format: responseFormatSchema.optional(),
  n: positiveInt.max(128).optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().min(0).max(1).optional(),
  max_tokens: positiveInt.optional(),
  max_completion_tokens: positiveInt.optional(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional(),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  user: z.string().optional(),
  seed: z.number().int().optional(),
  presence_penalty: z.number().min(-2).max(2).optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
  logprobs: z.boolean().optional(),
  top_logprobs: z.number().int().min(0).max(20).optional(),
});

export const embeddingsRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union(
    [
      z.string(),
      z.array(z.string()).min(1),
      z.array(z.number().int()).min(1),
      z.array(z.array(z.number().int()).min(1)).min(1),
    ],
    { error: 'expected a string, an array of strings, or token arrays' },
  ),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: positiveInt.optional(),
  user: z.string().optional(),
});

// Compile-time guard: what the schemas accept must be usable as the wire types.
type Assignable<T, U extends T> = U;
export type ValidatedChatRequest = Assignable<ChatCompletionRequest, z.infer<typeof chatCompletionRequestSchema>>;
export type ValidatedEmbeddingsRequest = Assignable<EmbeddingsRequest, z.infer<typeof embeddingsRequestSchema>>;

export type ZodIssue = z.core.$ZodIssue;

/** "messages.0.role: Invalid discriminator value…" — names the field for a 400. */
export function describeZodIssue(issue: ZodIssue): string {
  const path = issuePath(issue);
  return path === null ? issue.message : `${path}: ${issue.message}`;
}

/** Dotted field path of an issue, or null when the issue is about the whole body. */
export function issuePath(issue: ZodIssue): string | null {
  return issue.path.length === 0 ? null : issue.path.map(String).join('.');
}

/** The first issue as an OpenAI error's message and param. */
function formatZodError(error: z.ZodError): { message: string; param: string | null } {
  const first = error.issues[0];
  if (first === undefined) return { message: 'Invalid request body', param: null };
  return { message: describeZodIssue(first), param: issuePath(first) };
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string; param: string | null };

export function parseChatCompletionRequest(body: unknown): ParseResult<ChatCompletionRequest> {
  const result = chatCompletionRequestSchema.safeParse(body);
  return result.success ? { ok: true, value: result.data } : { ok: false, ...formatZodError(result.error) };
}

export function parseEmbeddingsRequest(body: unknown): ParseResult<EmbeddingsRequest> {
  const result = embeddingsRequestSchema.safeParse(body);
  return result.success ? { ok: true, value: result.data } : { ok: false, ...formatZodError(result.error) };
}
