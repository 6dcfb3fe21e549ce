// OpenAI embeddings -> Gemini batchEmbedContents (one request per input string).
import type { EmbeddingsRequest, EmbeddingsResponse } from '../../openai/types.ts';
import type { EmbeddingsCallContext } from '../types.ts';
import { UnsupportedFeatureError } from '../errors.ts';
import { readUpstreamBody } from '../upstream-body.ts';
import { GEMINI_PROVIDER_NAME, geminiModelName } from './api.ts';
import { geminiBatchEmbedResponseSchema } from './wire.ts';

export interface GeminiBatchEmbedBody {
  requests: Array<{ model: string; content: { parts: Array<{ text: string }> }; outputDimensionality?: number }>;
}

function embeddingInputs(req: EmbeddingsRequest): string[] {
  if (typeof req.input === 'string') return [req.input];
  const inputs: string[] = [];
  for (const item of req.input) {
    if (typeof item !== 'string') {
      throw new UnsupportedFeatureError('input', 'Gemini embeds text; token-id inputs are not supported');
    }
    inputs.push(item);
  }
  return inputs;
}

export function buildGeminiBatchEmbedBody(req: EmbeddingsRequest, ctx: EmbeddingsCallContext): GeminiBatchEmbedBody {
  const model = `models/${geminiModelName(ctx.upstreamModel)}`;
  return {
    requests: embeddingInputs(req).map((text) => ({
      model,
      content: { parts: [{ text }] },
      ...(req.dimensions === undefined ? {} : { outputDimensionality: req.dimensions }),
    })),
  };
}

export function parseGeminiBatchEmbedResponse(
  body: unknown,
  ctx: EmbeddingsCallContext,
  req: EmbeddingsRequest,
): EmbeddingsResponse {
  const parsed = readUpstreamBody(geminiBatchEmbedResponseSchema, body, GEMINI_PROVIDER_NAME);
  const base64 = req.encoding_format === 'base64';
  // Gemini reports no token counts for embeddings; ~4 characters per token is an estimate
  // so budgets still move, not a measurement
  const estimated = embeddingInputs(req).reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
  return {
    object: 'list',
    data: parsed.embeddings.map((item, index) => ({
      object: 'embedding',
      index,
      embedding: base64 ? float32Base64(item.values) : item.values,
    })),
    model: ctx.publicModel,
    usage: { prompt_tokens: estimated, total_tokens: estimated },
  };
}

/** OpenAI's base64 encoding: little-endian float32 bytes. */
export function float32Base64(values: number[]): string {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((value, i) => view.setFloat32(i * 4, value, true));
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
