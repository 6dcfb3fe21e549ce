// OpenAI Responses requests as clients send them (Codex CLI, the openai SDK's
// `responses.create`, the Agents SDK): the router's public API in that
// dialect. Objects are loose, so a pass-through to OpenAI keeps every field;
// item and content types are closed lists, so an unknown one is a 400 naming it.
import { z } from 'zod';
import { parsed } from '../anthropic/schemas.ts';
import type { ParseResult } from './schemas.ts';

const inputText = z.looseObject({ type: z.literal('input_text'), text: z.string() });
const outputText = z.looseObject({ type: z.literal('output_text'), text: z.string() });
const refusal = z.looseObject({ type: z.literal('refusal'), refusal: z.string() });
const inputImage = z.looseObject({
  type: z.literal('input_image'),
  image_url: z.string().nullable().optional(),
  file_id: z.string().nullable().optional(),
  detail: z.enum(['auto', 'low', 'high']).optional(),
});
const inputFile = z.looseObject({ type: z.literal('input_file') });
const inputAudio = z.looseObject({ type: z.literal('input_audio') });

export const responseContentPartSchema = z.discriminatedUnion('type', [
  inputText,
  outputText,
  refusal,
  inputImage,
  inputFile,
  inputAudio,
]);

const messageItem = z.looseObject({
  type: z.literal('message'),
  role: z.enum(['user', 'assistant', 'system', 'developer']),
  content: z.union([z.string(), z.array(responseContentPartSchema)]),
  id: z.string().optional(),
  status: z.string().optional(),
});
const functionCallItem = z.looseObject({
  type: z.literal('function_call'),
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
  id: z.string().optional(),
});
const functionCallOutputItem = z.looseObject({
  type: z.literal('function_call_output'),
  call_id: z.string().min(1),
  output: z.union([z.string(), z.array(responseContentPartSchema)]),
  id: z.string().nullable().optional(),
});
const reasoningItem = z.looseObject({
  type: z.literal('reasoning'),
  summary: z.array(z.looseObject({ type: z.string(), text: z.string().optional() })).optional(),
  encrypted_content: z.string().nullable().optional(),
});
/** Items of OpenAI's built-in tools and item references: only an OpenAI upstream understands them. */
const passThroughItem = z.looseObject({
  type: z.enum([
    'item_reference',
    'web_search_call',
    'file_search_call',
    'computer_call',
    'computer_call_output',
    'code_interpreter_call',
    'image_generation_call',
    'local_shell_call',
    'local_shell_call_output',
    'shell_call',
    'shell_call_output',
    'apply_patch_call',
    'apply_patch_call_output',
    'mcp_list_tools',
    'mcp_approval_request',
    'mcp_approval_response',
    'mcp_call',
    'custom_tool_call',
    'custom_tool_call_output',
    'compaction',
  ]),
});

export const responseItemSchema = z.discriminatedUnion('type', [
  messageItem,
  functionCallItem,
  functionCallOutputItem,
  reasoningItem,
  passThroughItem,
]);

/** A message without `type` (OpenAI's "easy input message") is a message item. */
const inputItemSchema = z.preprocess(
  (item) =>
    typeof item === 'object' && item !== null && !Array.isArray(item) && !('type' in item) && 'role' in item
      ? { ...item, type: 'message' }
      : item,
  responseItemSchema,
);

const functionTool = z.looseObject({
  type: z.literal('function'),
  name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, _ or -'),
  description: z.string().nullable().optional(),
  parameters: z.record(z.string(), z.unknown()).nullable().optional(),
  strict: z.boolean().nullable().optional(),
});
/** Any type but `function`: a malformed function tool is refused, not taken for a built-in one. */
const otherType = z.string().min(1).refine((type) => type !== 'function', 'a function needs its name');
/** Built-in tools run by OpenAI itself (web_search, file_search, ...): any other type. */
const builtInTool = z.looseObject({ type: otherType });

const toolChoice = z.union([
  z.enum(['none', 'auto', 'required']),
  z.looseObject({ type: z.literal('function'), name: z.string().min(1) }),
  z.looseObject({ type: otherType }),
]);

const textFormat = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text') }),
  z.looseObject({ type: z.literal('json_object') }),
  z.looseObject({
    type: z.literal('json_schema'),
    name: z.string().min(1),
    schema: z.record(z.string(), z.unknown()),
    description: z.string().optional(),
    strict: z.boolean().nullable().optional(),
  }),
]);

export const responsesRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(inputItemSchema)]),
  instructions: z.string().nullable().optional(),
  tools: z.array(z.union([functionTool, builtInTool])).optional(),
  tool_choice: toolChoice.optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  text: z.looseObject({ format: textFormat.optional(), verbosity: z.string().nullable().optional() }).nullable()
    .optional(),
  reasoning: z.looseObject({
    effort: z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh']).nullable().optional(),
    summary: z.string().nullable().optional(),
  }).nullable().optional(),
  max_output_tokens: z.number().int().positive().nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  store: z.boolean().nullable().optional(),
  previous_response_id: z.string().min(1).max(200).nullable().optional(),
  include: z.array(z.string()).nullable().optional(),
  user: z.string().optional(),
});

export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;
export type ResponseItem = z.infer<typeof responseItemSchema>;
export type ResponseContentPart = z.infer<typeof responseContentPartSchema>;
export type ResponsesTool = NonNullable<ResponsesRequest['tools']>[number];

export function parseResponsesRequest(body: unknown): ParseResult<ResponsesRequest> {
  return parsed(responsesRequestSchema.safeParse(body));
}

/**
 * A stored response's items, read back from the database: validated when they
 * came in (input) or from the provider (output); an output item of a type this
 * router does not know is left out.
 */
export function parseStoredItems(value: unknown): ResponseItem[] {
  if (!Array.isArray(value)) return [];
  const items: ResponseItem[] = [];
  for (const item of value) {
    const result = inputItemSchema.safeParse(item);
    if (result.success) items.push(result.data);
  }
  return items;
}
