import { Hono } from 'hono';
import { parseAnthropicCountTokensRequest } from '../../_shared/anthropic/schemas.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { jsonBodyOf } from '../../_shared/validation.ts';
import { estimateAnthropicPromptTokens } from '../dialects/anthropic-translate.ts';
import { validated } from '../dialects/common.ts';

/**
 * POST /v1/messages/count_tokens: the router's own estimate of a Messages
 * prompt (the one admission reserves for), `{input_tokens}`. No upstream
 * call, nothing charged; the provider's count at settlement may differ.
 */
export function countTokensRoutes() {
  return new Hono<AppEnv>().post('/', async (c) => {
    const request = validated(parseAnthropicCountTokensRequest(await jsonBodyOf(c)));
    return c.json({ input_tokens: estimateAnthropicPromptTokens(request) });
  });
}
