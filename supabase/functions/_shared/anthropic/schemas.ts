// Anthropic Messages requests as clients send them (Claude Code, the Anthropic
// SDKs): the router's public API in that dialect. Objects are loose, so a
// pass-through to Anthropic keeps every field; block types are a closed list,
// so an unknown one is a 400 naming it, as Anthropic answers.
import { z } from 'zod';
import { issuePath } from '../validation.ts';
import type { ParseResult } from '../openai/schemas.ts';

const cacheControl = z.looseObject({ type: z.string() }).optional();

const textBlock = z.looseObject({ type: z.literal('text'), text: z.string(), cache_control: cacheControl });
const imageBlock = z.looseObject({
  type: z.literal('image'),
  source: z.union([
    z.looseObject({ type: z.literal('base64'), media_type: z.string(), data: z.string() }),
    z.looseObject({ type: z.literal('url'), url: z.string() }),
    z.looseObject({ type: z.literal('file'), file_id: z.string() }),
  ]),
});
const toolUseBlock = z.looseObject({
  type: z.literal('tool_use'),
  id: z.string(),
  name: z.string(),
  input: z.record(z.string(), z.unknown()),
});
const toolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.union([z.string(), z.array(z.union([textBlock, imageBlock, z.looseObject({ type: z.string() })]))])
    .optional(),
  is_error: z.boolean().optional(),
});
const thinkingBlock = z.looseObject({ type: z.literal('thinking'), thinking: z.string(), signature: z.string() });
const redactedThinkingBlock = z.looseObject({ type: z.literal('redacted_thinking'), data: z.string() });
/** Blocks only an Anthropic upstream understands; they pass through as they are. */
const passThroughBlock = z.looseObject({
  type: z.enum([
    'document',
    'search_result',
    'server_tool_use',
    'web_search_tool_result',
    'web_fetch_tool_result',
    'code_execution_tool_result',
    'mcp_tool_use',
    'mcp_tool_result',
    'container_upload',
  ]),
});

const anthropicBlockSchema = z.discriminatedUnion('type', [
  textBlock,
  imageBlock,
  toolUseBlock,
  toolResultBlock,
  thinkingBlock,
  redactedThinkingBlock,
  passThroughBlock,
]);

const toolSchema = z.looseObject({
  type: z.string().optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  input_schema: z.record(z.string(), z.unknown()).optional(),
});

const anthropicMessagesRequestSchema = z.looseObject({
  model: z.string().min(1),
  max_tokens: z.number().int().positive(),
  messages: z.array(z.looseObject({
    // Claude Code sends system turns between messages (beta mid-conversation-system).
    role: z.enum(['user', 'assistant', 'system']),
    content: z.union([z.string(), z.array(anthropicBlockSchema)]),
  })).min(1),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  tools: z.array(toolSchema).optional(),
  tool_choice: z.discriminatedUnion('type', [
    z.looseObject({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
    z.looseObject({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
    z.looseObject({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
    z.looseObject({ type: z.literal('none') }),
  ]).optional(),
  stop_sequences: z.array(z.string()).optional(),
  context_management: z.looseObject({ edits: z.array(z.looseObject({ type: z.string() })).optional() }).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().nonnegative().optional(),
  stream: z.boolean().optional(),
  metadata: z.looseObject({ user_id: z.string().nullable().optional() }).optional(),
  thinking: z.looseObject({
    type: z.enum(['enabled', 'adaptive', 'disabled']),
    budget_tokens: z.number().int().optional(),
  })
    .optional(),
});

/** count_tokens takes the same request without max_tokens (and never streams). */
const anthropicCountTokensRequestSchema = anthropicMessagesRequestSchema.omit({
  max_tokens: true,
  stream: true,
});

export type AnthropicMessagesRequest = z.infer<typeof anthropicMessagesRequestSchema>;
export type AnthropicRequestBlock = z.infer<typeof anthropicBlockSchema>;

/**
 * The issue to report: inside a union (content is a string or blocks), the
 * deepest one, so an unknown block type is named as `messages.0.content.0.type`.
 */
function deepestIssue(issues: readonly z.core.$ZodIssue[], base: readonly PropertyKey[] = []) {
  let best: { path: PropertyKey[]; message: string } | undefined;
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    const candidates = issue.code === 'invalid_union' && issue.errors.length > 0
      ? issue.errors.map((branch) => deepestIssue(branch, path))
      : [{ path, message: issue.message }];
    for (const candidate of candidates) {
      if (candidate && (!best || candidate.path.length > best.path.length)) best = candidate;
    }
  }
  return best;
}

export function parsed<T>(result: z.ZodSafeParseResult<T>): ParseResult<T> {
  if (result.success) return { ok: true, value: result.data };
  const issue = deepestIssue(result.error.issues);
  const param = issue ? issuePath(issue.path) : '';
  return { ok: false, message: `${param || 'body'}: ${issue?.message ?? 'invalid'}`, param: param || null };
}

export function parseAnthropicMessagesRequest(body: unknown): ParseResult<AnthropicMessagesRequest> {
  return parsed(anthropicMessagesRequestSchema.safeParse(body));
}

export function parseAnthropicCountTokensRequest(
  body: unknown,
): ParseResult<z.infer<typeof anthropicCountTokensRequestSchema>> {
  return parsed(anthropicCountTokensRequestSchema.safeParse(body));
}
