// zod shapes of OpenAI-format upstream bodies. Loose objects keep fields we do not model
// (logprobs, reasoning_content from vLLM/DeepSeek, annotations) so they reach the caller.
import { z } from 'zod';

export const openAIUsageSchema = z.looseObject({
  prompt_tokens: z.number(),
  completion_tokens: z.number().optional(), // absent on embeddings usage
  total_tokens: z.number(),
});

const toolCallSchema = z.looseObject({
  id: z.string(),
  type: z.literal('function').optional(),
  function: z.looseObject({ name: z.string(), arguments: z.string() }),
});

export const openAIChatResponseSchema = z.looseObject({
  choices: z.array(
    z.looseObject({
      index: z.number().int(),
      message: z.looseObject({
        content: z.string().nullable().optional(),
        tool_calls: z.array(toolCallSchema).nullable().optional(),
        refusal: z.string().nullable().optional(),
      }),
      finish_reason: z.string().nullable().optional(),
      logprobs: z.unknown().optional(),
    }),
  ),
  usage: openAIUsageSchema.nullable().optional(),
  system_fingerprint: z.string().nullable().optional(),
});

const toolCallDeltaSchema = z.looseObject({
  index: z.number().int(),
  id: z.string().optional(),
  type: z.literal('function').optional(),
  function: z.looseObject({ name: z.string().optional(), arguments: z.string().optional() }).optional(),
});

export const openAIChunkSchema = z.looseObject({
  choices: z
    .array(
      z.looseObject({
        index: z.number().int(),
        delta: z
          .looseObject({
            role: z.string().optional(),
            content: z.string().nullable().optional(),
            tool_calls: z.array(toolCallDeltaSchema).nullable().optional(),
          })
          .optional(),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .optional(),
  usage: openAIUsageSchema.nullable().optional(),
  x_groq: z.looseObject({ usage: openAIUsageSchema.optional() }).optional(), // Groq puts usage here
  system_fingerprint: z.string().nullable().optional(),
});

export const openAIEmbeddingsResponseSchema = z.looseObject({
  data: z.array(z.looseObject({ index: z.number().int(), embedding: z.union([z.array(z.number()), z.string()]) })),
  usage: openAIUsageSchema.optional(),
});

export const openAIErrorBodySchema = z.looseObject({
  error: z.looseObject({
    message: z.string().optional(),
    type: z.string().nullable().optional(),
    code: z.union([z.string(), z.number()]).nullable().optional(),
  }),
});
