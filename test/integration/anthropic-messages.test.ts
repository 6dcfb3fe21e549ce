import Anthropic, { APIError } from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countTextTokens } from '../../supabase/functions/_shared/router/tokens.ts';
import {
  FAKE_CACHE_USAGE,
  FAKE_CACHED_TOKENS,
  FAKE_THINKING,
  type FakeUpstream,
  startFakeUpstream,
} from '../fakes/fake-upstream.ts';
import { catalogCaughtUp, type CatalogFixture, createCatalogFixture } from '../helpers/catalog.ts';
import { eventually } from '../helpers/eventually.ts';
import { call, connectDatabase, createTenant, serviceHeaders, signUserToken, stack } from '../helpers/stack.ts';

// The official @anthropic-ai/sdk against POST /llm-router/v1/messages on the
// real Deno server, configured as Claude Code is: a base URL and a tenant key
// (sent as x-api-key, no apikey header). Through an Anthropic upstream it is a
// pass-through; through an OpenAI upstream a translation; metered either way.
const sql = connectDatabase();
let fake: FakeUpstream;
let anthropic: CatalogFixture;
let openai: CatalogFixture;
/** The same upstreams with prompt-cache prices of their own in the catalog (cachePrices). */
let anthropicCached: CatalogFixture;
let openaiCached: CatalogFixture;
let key: string;
let client: Anthropic;
const routerUrl = () => `${stack.functionsUrl}/llm-router`;

async function newTenantKey(name: string): Promise<{ tenantId: string; key: string }> {
  const id = await createTenant(name);
  const created = await call(`/ops/tenants/${id}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ name }),
  });
  expect(created.status).toBe(201);
  return { tenantId: id, key: ((await created.json()) as { key: string }).key };
}

async function fixtureWithKey(options: Parameters<typeof createCatalogFixture>[1]) {
  const fixture = await createCatalogFixture(sql, options);
  const stored = await call('/keys', {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ provider: fixture.providerSlug, secret: `sk-test-${crypto.randomUUID()}` }),
  });
  expect(stored.status).toBe(201);
  return fixture;
}

/** POST /v1/messages without the SDK, to assert whole bodies and headers. */
function postMessages(tenantKey: string, body: unknown, headers: Record<string, string> = {}) {
  return call('/llm-router/v1/messages', {
    method: 'POST',
    headers: {
      'x-api-key': tenantKey,
      'anthropic-version': '2023-06-01',
      'content-type': 'application/json',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

interface UsageRecord {
  prompt_tokens: number;
  completion_tokens: number;
  cache_write_tokens: number;
  cache_read_tokens: number;
  cost_usd_micros: string;
  status: string;
  provider: string;
  dialect: string;
}

/** The usage record of a request, once written (settlement precedes the answer; the lease path flushes in batches). */
async function usageRecordOf(requestId: string): Promise<UsageRecord> {
  const rows = await eventually(
    () =>
      sql<UsageRecord[]>`
      select prompt_tokens, completion_tokens, cache_write_tokens, cache_read_tokens, cost_usd_micros::text, status,
             provider, dialect
      from public.usage_records where request_id = ${requestId}`,
    (found) => found.length === 1,
  );
  expect(rows).toHaveLength(1);
  return rows[0];
}

/** Catalog prices of the fixtures: 1 micro-USD per prompt token, 2 per completion token. */
const costOf = (prompt: number, completion: number) => String(prompt + 2 * completion);

/** Prompt-cache prices (USD micro-units per million tokens): a write 1.25, a read 0.1 micro-USD a token. */
const cachePrices = { cacheWriteCostPerMillion: 1_250_000, cacheReadCostPerMillion: 100_000 };
/** Each part at its price, rounded up on its own: uncached input, cache writes, cache reads, output. */
const cachedCostOf = (usage: { input: number; write: number; read: number; output: number }) =>
  String(
    usage.input + Math.ceil(usage.write * 1.25) + Math.ceil(usage.read * 0.1) + 2 * usage.output,
  );

type FixtureOptions = Partial<Parameters<typeof createCatalogFixture>[1]>;
const anthropicUpstream = (name: string, options: FixtureOptions) =>
  fixtureWithKey({
    kind: 'anthropic',
    baseUrl: fake.endpoints.anthropic,
    upstreamModel: `${name}-${crypto.randomUUID().slice(0, 8)}`,
    apiVersion: '2023-06-01',
    maxOutputTokens: 4096,
    ...options,
  });
const openAIUpstream = (name: string, options: FixtureOptions) =>
  fixtureWithKey({
    kind: 'openai',
    baseUrl: fake.endpoints.openai,
    upstreamModel: `${name}-${crypto.randomUUID().slice(0, 8)}`,
    ...options,
  });

const upstreamCallsFor = (model: string) => fake.requests.filter((request) => request.model === model);

beforeAll(async () => {
  fake = await startFakeUpstream({ models: ['claude-sonnet-4-5', 'gpt-4o-mini'] });
  const capabilities = ['chat', 'stream', 'tools', 'vision'];
  anthropic = await anthropicUpstream('claude-pass', { capabilities });
  openai = await openAIUpstream('gpt-translated', { capabilities });
  anthropicCached = await anthropicUpstream('claude-cached', cachePrices);
  openaiCached = await openAIUpstream('gpt-cached', cachePrices);
  ({ key } = await newTenantKey('Messages'));
  client = new Anthropic({ baseURL: routerUrl(), apiKey: key, maxRetries: 0 });
  const listModels = async () => {
    const response = await call('/llm-router/v1/models', { headers: { 'x-api-key': key } });
    return ((await response.json()) as { data: { id: string }[] }).data.map((model) => model.id);
  };
  await catalogCaughtUp(sql, openai.providerSlug, listModels);
});
afterAll(async () => {
  await sql`update public.llm_providers set enabled = false where id in (${anthropic.providerId}, ${openai.providerId})`;
  await fake.close();
  await sql.end();
});

describe('POST /v1/messages to an Anthropic upstream (pass-through)', () => {
  const beta = 'interleaved-thinking-2025-05-14';
  const system: Anthropic.TextBlockParam[] = [{
    type: 'text',
    text: 'Be brief.',
    cache_control: { type: 'ephemeral' },
  }];

  it('forwards the body unchanged but for the model, and anthropic-beta; thinking arrives with its signature', async () => {
    const params = {
      model: anthropic.alias,
      max_tokens: 2048,
      thinking: { type: 'enabled' as const, budget_tokens: 1024 },
      system,
      messages: [{ role: 'user' as const, content: 'hello there' }],
    };
    const { data, response } = await client.messages.create(params, { headers: { 'anthropic-beta': beta } })
      .withResponse();
    expect(data.content[0]).toEqual(FAKE_THINKING);
    expect(data.content[1]).toEqual({ type: 'text', text: 'echo: hello there' });
    expect(data.stop_reason).toBe('end_turn');
    expect(data.usage).toMatchObject(FAKE_CACHE_USAGE);
    expect(response.headers.get('x-switchyard-provider')).toBe(anthropic.providerSlug);

    const upstream = upstreamCallsFor(anthropic.upstreamModel).at(-1)!;
    expect(upstream.path).toBe('/v1/messages');
    expect(upstream.headers['anthropic-beta']).toBe(beta);
    expect(upstream.body).toEqual({ ...params, model: anthropic.upstreamModel });

    // Without cache prices in the catalog, cache writes and reads are charged at the input price.
    const prompt = data.usage.input_tokens + FAKE_CACHE_USAGE.cache_creation_input_tokens +
      FAKE_CACHE_USAGE.cache_read_input_tokens;
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toMatchObject({
      prompt_tokens: prompt,
      completion_tokens: data.usage.output_tokens,
      cost_usd_micros: costOf(prompt, data.usage.output_tokens),
      status: 'succeeded',
      provider: anthropic.providerSlug,
    });
  });

  it('sends a thinking block back byte for byte in the next turn (multi-turn tool use)', async () => {
    const tools: Anthropic.Tool[] = [{
      name: 'get_weather',
      input_schema: { type: 'object', properties: { city: { type: 'string' } } },
    }];
    const first = await client.messages.create({
      model: anthropic.alias,
      max_tokens: 2048,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      tools,
      messages: [{ role: 'user', content: 'what is the weather' }],
    });
    const toolUse = first.content.find((block) => block.type === 'tool_use');
    expect(first.stop_reason).toBe('tool_use');
    expect(toolUse).toMatchObject({ name: 'get_weather', input: { city: 'Paris' } });
    const second = await client.messages.create({
      model: anthropic.alias,
      max_tokens: 2048,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      tools,
      messages: [
        { role: 'user', content: 'what is the weather' },
        { role: 'assistant', content: first.content },
        {
          role: 'user',
          content: [{
            type: 'tool_result',
            tool_use_id: toolUse!.type === 'tool_use' ? toolUse!.id : '',
            content: 'sunny',
          }],
        },
      ],
    });
    expect(second.content.at(-1)).toEqual({ type: 'text', text: 'echo: sunny' });
    const sent = upstreamCallsFor(anthropic.upstreamModel).at(-1)!.body as { messages: { content: unknown[] }[] };
    expect(JSON.stringify(sent.messages[1].content[0])).toBe(JSON.stringify(FAKE_THINKING));
  });

  it('streams the upstream events as they are, with the usage record exact', async () => {
    const stream = client.messages.stream(
      {
        model: anthropic.alias,
        max_tokens: 2048,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        system,
        messages: [{ role: 'user', content: 'stream this please' }],
      },
      { headers: { 'anthropic-beta': beta } },
    );
    const kinds = new Set<string>();
    stream.on('streamEvent', (event) => kinds.add(event.type));
    const message = await stream.finalMessage();
    const { response } = await stream.withResponse();
    expect(message.content[0]).toEqual(FAKE_THINKING);
    expect(message.content[1]).toEqual({ type: 'text', text: 'echo: stream this please' });
    expect([...kinds]).toEqual(expect.arrayContaining([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]));
    expect(upstreamCallsFor(anthropic.upstreamModel).at(-1)!.headers['anthropic-beta']).toBe(beta);
    const prompt = message.usage.input_tokens + FAKE_CACHE_USAGE.cache_creation_input_tokens +
      FAKE_CACHE_USAGE.cache_read_input_tokens;
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toMatchObject({
      prompt_tokens: prompt,
      completion_tokens: message.usage.output_tokens,
      cost_usd_micros: costOf(prompt, message.usage.output_tokens),
    });
  });
});

describe('POST /v1/messages to an OpenAI upstream (translation)', () => {
  const tools: Anthropic.Tool[] = [{
    name: 'get_weather',
    description: 'The weather in a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } } },
  }];

  it('answers a tool-use turn and its result as Anthropic messages, each with its usage record', async () => {
    const first = await client.messages.create({
      model: openai.alias,
      max_tokens: 100,
      system: 'Be brief.',
      tools,
      messages: [{ role: 'user', content: 'what is the weather' }],
    }).withResponse();
    const toolUse = first.data.content[0];
    expect(first.data).toMatchObject({
      type: 'message',
      role: 'assistant',
      model: openai.alias,
      stop_reason: 'tool_use',
    });
    expect(toolUse).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } });
    const sentFirst = upstreamCallsFor(openai.upstreamModel).at(-1)!.body as Record<string, unknown>;
    expect(sentFirst).toMatchObject({
      model: openai.upstreamModel,
      max_tokens: 100,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'what is the weather' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: tools[0].input_schema } }],
    });
    const firstRecord = await usageRecordOf(first.response.headers.get('x-request-id')!);
    expect(firstRecord).toMatchObject({
      prompt_tokens: first.data.usage.input_tokens,
      completion_tokens: first.data.usage.output_tokens,
      cost_usd_micros: costOf(first.data.usage.input_tokens, first.data.usage.output_tokens),
    });

    const second = await client.messages.create({
      model: openai.alias,
      max_tokens: 100,
      tools,
      messages: [
        { role: 'user', content: 'what is the weather' },
        { role: 'assistant', content: first.data.content },
        {
          role: 'user',
          content: [{
            type: 'tool_result',
            tool_use_id: toolUse.type === 'tool_use' ? toolUse.id : '',
            content: 'sunny',
          }],
        },
      ],
    }).withResponse();
    expect(second.data.content).toEqual([{ type: 'text', text: 'echo: sunny' }]);
    expect(second.data.stop_reason).toBe('end_turn');
    const sentSecond = upstreamCallsFor(openai.upstreamModel).at(-1)!.body as { messages: unknown[] };
    expect(sentSecond.messages.slice(1)).toMatchObject([
      { role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'get_weather' } }] },
      { role: 'tool', content: 'sunny' },
    ]);
    const secondRecord = await usageRecordOf(second.response.headers.get('x-request-id')!);
    expect(secondRecord).toMatchObject({
      prompt_tokens: second.data.usage.input_tokens,
      completion_tokens: second.data.usage.output_tokens,
    });
  });

  it("streams Anthropic's events from OpenAI chunks, with the usage record exact", async () => {
    const stream = client.messages.stream({
      model: openai.alias,
      max_tokens: 100,
      messages: [{ role: 'user', content: 'stream this please' }],
    });
    const message = await stream.finalMessage();
    const { response } = await stream.withResponse();
    expect(message.content).toEqual([expect.objectContaining({ type: 'text', text: 'echo: stream this please' })]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage.output_tokens).toBe(4);
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toMatchObject({
      prompt_tokens: message.usage.input_tokens,
      completion_tokens: 4,
      cost_usd_micros: costOf(message.usage.input_tokens, 4),
    });
  });

  it('streams a tool call as a tool_use block', async () => {
    const message = await client.messages.stream({
      model: openai.alias,
      max_tokens: 100,
      tools,
      messages: [{ role: 'user', content: 'what is the weather' }],
    }).finalMessage();
    expect(message.stop_reason).toBe('tool_use');
    expect(message.content[0]).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } });
  });

  it("takes a request shaped like Claude Code's: system turns between messages, adaptive thinking", async () => {
    const response = await postMessages(key, {
      model: openai.alias,
      max_tokens: 100,
      thinking: { type: 'adaptive' },
      context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
      output_config: { effort: 'high' },
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'hi there', cache_control: { type: 'ephemeral' } }] },
        { role: 'system', content: 'Answer briefly.' },
      ],
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { content: unknown[] }).content).toEqual([{
      type: 'text',
      text: 'echo: hi there',
    }]);
    const sent = upstreamCallsFor(openai.upstreamModel).at(-1)!.body as Record<string, unknown>;
    expect(sent.messages).toEqual([{ role: 'user', content: 'hi there' }, {
      role: 'system',
      content: 'Answer briefly.',
    }]);
    expect(Object.keys(sent)).not.toContain('thinking');
  });

  it('refuses what the provider cannot express with a 400 naming the field', async () => {
    const response = await postMessages(key, {
      model: openai.alias,
      max_tokens: 10,
      top_k: 5,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: "top_k cannot be sent to this model's provider" },
    });
  });
});

describe("refusals in Anthropic's shape", () => {
  it('answers bad input with 400 invalid_request_error, charging nothing', async () => {
    const { tenantId: badTenant, key: badKey } = await newTenantKey('Messages bad input');
    const upstreamBefore = fake.requests.length;
    const missing = await postMessages(badKey, { model: openai.alias, messages: [{ role: 'user', content: 'x' }] });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringMatching(/^max_tokens: /) },
    });
    const unknownBlock = await postMessages(badKey, {
      model: openai.alias,
      max_tokens: 10,
      messages: [{ role: 'user', content: [{ type: 'hologram', text: 'x' }] }],
    });
    expect(unknownBlock.status).toBe(400);
    expect(await unknownBlock.json()).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringMatching(/^messages\.0\.content\.0\.type: /) },
    });
    expect(fake.requests.length).toBe(upstreamBefore);
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.usage_records where tenant_id = ${badTenant}`;
    expect(n).toBe(0);
  });

  it('answers an exhausted budget with 402 billing_error', async () => {
    const { tenantId: poor, key: poorKey } = await newTenantKey('Messages budget');
    await sql`insert into public.budgets (tenant_id, scope, unit, period, limit_amount)
              values (${poor}, 'tenant', 'usd_micros', 'total', 1)`;
    const client402 = new Anthropic({ baseURL: routerUrl(), apiKey: poorKey, maxRetries: 0 });
    const error = await client402.messages.create({
      model: openai.alias,
      max_tokens: 100,
      messages: [{ role: 'user', content: 'too expensive' }],
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(402);
    expect((error as APIError).error).toEqual({
      type: 'error',
      error: { type: 'billing_error', message: expect.stringMatching(/^Budget exceeded/) },
    });
  });

  it('answers a spent rate limit with 429 rate_limit_error and retry-after', async () => {
    const { tenantId: busy, key: busyKey } = await newTenantKey('Messages rate');
    await sql`insert into public.rate_limits (tenant_id, requests_per_minute) values (${busy}, 1)`;
    const body = { model: openai.alias, max_tokens: 10, messages: [{ role: 'user', content: 'again' }] };
    // One request a minute: of three in a row, at least one falls in a minute already used.
    const responses = [];
    for (let i = 0; i < 3; i++) responses.push(await postMessages(busyKey, body));
    const refused = responses.find((response) => response.status === 429);
    expect(refused).toBeDefined();
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused!.headers.get('anthropic-ratelimit-requests-limit')).toBe('1');
    expect(refused!.headers.get('anthropic-ratelimit-requests-remaining')).toBe('0');
    expect(refused!.headers.get('anthropic-ratelimit-requests-reset')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(refused!.headers.get('x-ratelimit-limit-requests')).toBeNull();
    const admitted = responses.find((response) => response.status === 200);
    expect(admitted?.headers.get('anthropic-ratelimit-requests-limit')).toBe('1');
    expect(await refused!.json()).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: expect.any(String) },
    });
    for (const response of responses) if (!response.bodyUsed) await response.text();
  });
});

describe('a tenant key is enough', () => {
  it('authenticates as x-api-key or Authorization: Bearer without the apikey header', async () => {
    const bearer = await call('/llm-router/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: openai.alias, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
    });
    expect(bearer.status).toBe(200);
    await bearer.body?.cancel();
    const counted = await client.messages.countTokens({
      model: openai.alias,
      messages: [{ role: 'user', content: 'count these words please' }],
    });
    expect(counted.input_tokens).toBeGreaterThan(0);
  });

  it('still wants the apikey header for a user JWT, and refuses an unknown key in Anthropic shape', async () => {
    const jwt = await signUserToken(crypto.randomUUID());
    const user = await call('/llm-router/v1/models', { headers: { authorization: `Bearer ${jwt}` } });
    expect(user.status).toBe(401);
    expect(((await user.json()) as { error: { message: string } }).error.message).toMatch(/missing apikey header/);
    const unknown = await postMessages(`sy_${'x'.repeat(40)}`, { model: openai.alias, max_tokens: 5, messages: [] });
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toEqual({
      type: 'error',
      error: { type: 'authentication_error', message: 'API key is unknown or revoked' },
    });
  });
});

describe('usage records: the dialect and prompt-cache prices', () => {
  it('records each call with its dialect, and /ops/usage groups by it', async () => {
    const { tenantId, key: ownKey } = await newTenantKey('Dialects');
    const anthropicClient = new Anthropic({ baseURL: routerUrl(), apiKey: ownKey, maxRetries: 0 });
    const openaiClient = new OpenAI({ baseURL: `${routerUrl()}/v1`, apiKey: ownKey, maxRetries: 0 });
    const message = await anthropicClient.messages.create({
      model: openai.alias,
      max_tokens: 50,
      messages: [{ role: 'user', content: 'one two three' }],
    }).withResponse();
    const chat = await openaiClient.chat.completions.create({
      model: openai.alias,
      max_tokens: 50,
      messages: [{ role: 'user', content: 'four five' }],
    }).withResponse();
    const messageRecord = await usageRecordOf(message.response.headers.get('x-request-id')!);
    const chatRecord = await usageRecordOf(chat.response.headers.get('x-request-id')!);
    expect(messageRecord.dialect).toBe('anthropic_messages');
    expect(chatRecord.dialect).toBe('openai_chat');

    const usage = await call(`/ops/usage?tenant_id=${tenantId}&group_by=dialect`, { headers: serviceHeaders() });
    expect(usage.status).toBe(200);
    const body = (await usage.json()) as { group_by: string[]; items: Record<string, unknown>[] };
    expect(body.group_by).toEqual(['dialect']);
    expect(body.items).toEqual([
      {
        dialect: 'anthropic_messages',
        requests: 1,
        prompt_tokens: messageRecord.prompt_tokens,
        completion_tokens: messageRecord.completion_tokens,
        cost_usd_micros: Number(messageRecord.cost_usd_micros),
        cache_hits: 0,
      },
      {
        dialect: 'openai_chat',
        requests: 1,
        prompt_tokens: chatRecord.prompt_tokens,
        completion_tokens: chatRecord.completion_tokens,
        cost_usd_micros: Number(chatRecord.cost_usd_micros),
        cache_hits: 0,
      },
    ]);
    const unknown = await call(`/ops/usage?tenant_id=${tenantId}&group_by=dialects`, { headers: serviceHeaders() });
    expect(unknown.status).toBe(400);
  });

  it('charges Anthropic cache writes and reads at their own catalog prices (messages, pass-through)', async () => {
    const { data, response } = await client.messages.create({
      model: anthropicCached.alias,
      max_tokens: 100,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: 'cache me please' }],
    }).withResponse();
    expect(data.usage).toMatchObject(FAKE_CACHE_USAGE);
    const write = FAKE_CACHE_USAGE.cache_creation_input_tokens;
    const read = FAKE_CACHE_USAGE.cache_read_input_tokens;
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toMatchObject({
      prompt_tokens: data.usage.input_tokens + write + read,
      cache_write_tokens: write,
      cache_read_tokens: read,
      completion_tokens: data.usage.output_tokens,
      cost_usd_micros: cachedCostOf({ input: data.usage.input_tokens, write, read, output: data.usage.output_tokens }),
      dialect: 'anthropic_messages',
    });
  });

  it('charges the same streamed, from message_start and message_delta', async () => {
    const stream = client.messages.stream({
      model: anthropicCached.alias,
      max_tokens: 100,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: 'stream the cache' }],
    });
    const message = await stream.finalMessage();
    const { response } = await stream.withResponse();
    const write = FAKE_CACHE_USAGE.cache_creation_input_tokens;
    const read = FAKE_CACHE_USAGE.cache_read_input_tokens;
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toMatchObject({
      cache_write_tokens: write,
      cache_read_tokens: read,
      cost_usd_micros: cachedCostOf({
        input: message.usage.input_tokens,
        write,
        read,
        output: message.usage.output_tokens,
      }),
    });
  });

  it("charges OpenAI's cached_tokens as cache reads at the read price (chat, streamed and not)", async () => {
    const openaiClient = new OpenAI({ baseURL: `${routerUrl()}/v1`, apiKey: key, maxRetries: 0 });
    const params = {
      model: openaiCached.alias,
      max_tokens: 50,
      prompt_cache_key: 'agent-1',
      messages: [{ role: 'user' as const, content: 'a cached prompt of six words' }],
    };
    const { data, response } = await openaiClient.chat.completions.create(params).withResponse();
    expect(data.usage?.prompt_tokens_details?.cached_tokens).toBe(FAKE_CACHED_TOKENS);
    const prompt = data.usage!.prompt_tokens;
    const output = data.usage!.completion_tokens;
    expect(await usageRecordOf(response.headers.get('x-request-id')!)).toMatchObject({
      prompt_tokens: prompt,
      cache_write_tokens: 0,
      cache_read_tokens: FAKE_CACHED_TOKENS,
      cost_usd_micros: cachedCostOf({ input: prompt - FAKE_CACHED_TOKENS, write: 0, read: FAKE_CACHED_TOKENS, output }),
      dialect: 'openai_chat',
    });

    const streamed = await openaiClient.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    }).withResponse();
    for await (const _chunk of streamed.data) { /* to the end */ }
    expect(await usageRecordOf(streamed.response.headers.get('x-request-id')!)).toMatchObject({
      cache_read_tokens: FAKE_CACHED_TOKENS,
      cost_usd_micros: cachedCostOf({ input: prompt - FAKE_CACHED_TOKENS, write: 0, read: FAKE_CACHED_TOKENS, output }),
    });
  });
});

describe("GET /v1/models in the caller's dialect", () => {
  it("answers the Anthropic SDK in Anthropic's list shape", async () => {
    const page = await client.models.list();
    const ids = page.data.map((model) => model.id);
    expect(ids).toEqual(expect.arrayContaining([anthropic.alias, openai.alias]));
    expect(page.data.find((model) => model.id === anthropic.alias)).toEqual({
      type: 'model',
      id: anthropic.alias,
      display_name: anthropic.alias,
      created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
    });
    const raw = await call('/llm-router/v1/models', { headers: { 'x-api-key': key } });
    const body = (await raw.json()) as { data: { id: string }[]; has_more: boolean; first_id: string; last_id: string };
    expect(body).toMatchObject({ has_more: false, first_id: body.data[0].id, last_id: body.data.at(-1)!.id });
  });

  it("answers HEAD of the base URL (Claude Code's probe) with 200 and no body, without authentication", async () => {
    const head = await call('/llm-router', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const unknown = await call('/llm-router/nowhere', { method: 'HEAD' });
    expect(unknown.status).toBe(404);
  });

  it("answers the OpenAI SDK in OpenAI's list shape", async () => {
    const openaiClient = new OpenAI({ baseURL: `${routerUrl()}/v1`, apiKey: key, maxRetries: 0 });
    const page = await openaiClient.models.list();
    expect(page.data.find((model) => model.id === openai.alias)).toEqual({
      id: openai.alias,
      object: 'model',
      created: expect.any(Number),
      owned_by: 'switchyard',
    });
    // anthropic-version says Anthropic even with Bearer auth (Claude Code with ANTHROPIC_AUTH_TOKEN).
    const versioned = await call('/llm-router/v1/models', {
      headers: { authorization: `Bearer ${key}`, 'anthropic-version': '2023-06-01' },
    });
    expect(((await versioned.json()) as { data: { type: string }[] }).data[0].type).toBe('model');
  });
});

describe('a /v1/messages stream the client cancels', () => {
  it('is charged what was produced, and leaves nothing reserved', async () => {
    const { tenantId, key: ownKey } = await newTenantKey('Messages cancel');
    await sql`insert into public.budgets (tenant_id, scope, unit, period, limit_amount)
              values (${tenantId}, 'tenant', 'usd_micros', 'total', 1000000)`;
    const requestId = `cancel-${crypto.randomUUID()}`;
    // message_start, content_block_start, ping and two text deltas, then the upstream holds the stream open.
    fake.enqueue({ kind: 'stall_stream', afterChunks: 5 }, { match: { model: anthropic.upstreamModel } });
    const cancelClient = new Anthropic({ baseURL: routerUrl(), apiKey: ownKey, maxRetries: 0 });
    const stream = await cancelClient.messages.create({
      model: anthropic.alias,
      max_tokens: 100,
      stream: true,
      messages: [{ role: 'user', content: 'one two three four five six' }],
    }, { headers: { 'x-request-id': requestId } });
    let produced = '';
    let inputTokens = 0;
    for await (const event of stream) {
      if (event.type === 'message_start') inputTokens = event.message.usage.input_tokens;
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') produced += event.delta.text;
      if (produced.split(' ').length === 2) break; // leaving the loop aborts the request
    }
    expect(produced).toBe('echo: one');

    const record = await usageRecordOf(requestId);
    expect(record).toMatchObject({
      status: 'cancelled',
      prompt_tokens: inputTokens,
      completion_tokens: countTextTokens(produced),
      cost_usd_micros: costOf(inputTokens, countTextTokens(produced)),
      dialect: 'anthropic_messages',
    });
    const [reservation] = await sql<{ status: string }[]>`
      select status from public.budget_reservations where request_id = ${requestId}`;
    expect(reservation.status).toBe('settled');
    const [counter] = await sql<{ reserved: number; spent: number }[]>`
      select c.reserved::int, c.spent::int from public.usage_counters c
      join public.budgets b on b.id = c.budget_id where b.tenant_id = ${tenantId}`;
    expect(counter).toEqual({ reserved: 0, spent: Number(record.cost_usd_micros) });
    // The router hung up on the upstream.
    const upstream = await eventually(
      () =>
        fake.requests.filter((request) =>
          request.fault === 'stall_stream' && request.model === anthropic.upstreamModel
        ),
      (calls) => calls.length === 1 && calls[0].closedEarly,
    );
    expect(upstream[0].closedEarly).toBe(true);
  });
});
