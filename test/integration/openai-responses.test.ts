import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_ENCRYPTED_REASONING, type FakeUpstream, startFakeUpstream } from '../fakes/fake-upstream.ts';
import { catalogCaughtUp, type CatalogFixture } from '../helpers/catalog.ts';
import { eventually } from '../helpers/eventually.ts';
import { call, connectDatabase, stack } from '../helpers/stack.ts';
import { fixtureWithKey, newTenantKey, usageRecordOf as recordOf } from '../helpers/metered.ts';

// The official `openai` SDK's Responses API (responses.create, responses.stream)
// against POST /llm-router/v1/responses on the real Deno server, configured as
// Codex CLI is: a base URL and a tenant key. Through an OpenAI or Azure
// upstream it is a pass-through to /v1/responses; through an OpenAI-compatible
// or Anthropic upstream a translation through chat; metered either way.
const sql = connectDatabase();
let fake: FakeUpstream;
let openai: CatalogFixture;
let azure: CatalogFixture;
let compat: CatalogFixture;
let anthropic: CatalogFixture;
let tenantId: string;
let key: string;
let client: OpenAI;
const baseURL = () => `${stack.functionsUrl}/llm-router/v1`;

/** POST /v1/responses without the SDK, to assert whole bodies and headers. */
function postResponses(tenantKey: string, body: unknown) {
  return call('/llm-router/v1/responses', {
    method: 'POST',
    headers: { authorization: `Bearer ${tenantKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const usageRecordOf = (requestId: string) => recordOf(sql, requestId);

async function usageRecordCount(tenant: string): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from public.usage_records where tenant_id = ${tenant}`;
  return n;
}

/** Catalog prices of the fixtures: 1 micro-USD per prompt token, 2 per completion token. */
const costOf = (prompt: number, completion: number) => String(prompt + 2 * completion);

const upstreamCallsFor = (model: string) => fake.requests.filter((request) => request.model === model);
const lastUpstreamBody = (fixture: CatalogFixture) =>
  upstreamCallsFor(fixture.upstreamModel).at(-1)!.body as Record<string, unknown>;

const weatherTool: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  strict: false,
};

beforeAll(async () => {
  fake = await startFakeUpstream({ models: ['gpt-4o-mini', 'claude-sonnet-4-5'] });
  const capabilities = ['chat', 'stream', 'tools', 'json', 'vision'];
  const suffix = crypto.randomUUID().slice(0, 8);
  openai = await fixtureWithKey(sql, {
    kind: 'openai',
    baseUrl: fake.endpoints.openai,
    upstreamModel: `gpt-pass-${suffix}`,
    capabilities,
  });
  azure = await fixtureWithKey(sql, {
    kind: 'azure_openai',
    baseUrl: fake.endpoints.azure_openai,
    upstreamModel: `azure-pass-${suffix}`,
    capabilities,
  });
  compat = await fixtureWithKey(sql, {
    kind: 'openai_compatible',
    baseUrl: fake.endpoints.openai,
    upstreamModel: `compat-translated-${suffix}`,
    capabilities,
  });
  anthropic = await fixtureWithKey(sql, {
    kind: 'anthropic',
    baseUrl: fake.endpoints.anthropic,
    upstreamModel: `claude-translated-${suffix}`,
    apiVersion: '2023-06-01',
    capabilities,
  });
  ({ tenantId, key } = await newTenantKey('Responses'));
  client = new OpenAI({ baseURL: baseURL(), apiKey: key, maxRetries: 0 });
  const listModels = async () => (await client.models.list()).data.map((model) => model.id);
  await catalogCaughtUp(sql, anthropic.providerSlug, listModels);
});
afterAll(async () => {
  const ids = [openai.providerId, azure.providerId, compat.providerId, anthropic.providerId];
  await sql`update public.llm_providers set enabled = false where id = any(${ids})`;
  await fake.close();
  await sql.end();
});

describe('POST /v1/responses translated to chat (OpenAI-compatible and Anthropic upstreams)', () => {
  it('answers text in, text out as a Response object, with the usage record exact', async () => {
    const { data, response } = await client.responses.create({
      model: compat.alias,
      instructions: 'Be brief.',
      input: 'hello there',
      metadata: { ticket: 'T-1' },
    }).withResponse();
    expect(data).toMatchObject({
      object: 'response',
      status: 'completed',
      model: compat.alias,
      instructions: 'Be brief.',
      metadata: { ticket: 'T-1' },
      output: [{
        type: 'message',
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text: 'echo: hello there', annotations: [] }],
      }],
    });
    expect(data.id).toMatch(/^resp_/);
    expect(data.output_text).toBe('echo: hello there');
    expect(lastUpstreamBody(compat)).toMatchObject({
      model: compat.upstreamModel,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }],
    });
    const usage = data.usage!;
    // The fake counts words: "Be brief." + "hello there" in, "echo: hello there" out.
    expect(usage).toMatchObject({ input_tokens: 4, output_tokens: 3, total_tokens: 7 });
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toEqual({
      prompt_tokens: 4,
      completion_tokens: 3,
      cost_usd_micros: costOf(4, 3),
      status: 'succeeded',
      provider: compat.providerSlug,
      dialect: 'openai_responses',
    });
  });

  it('runs a multi-turn function-call conversation, each turn metered', async () => {
    const first = await client.responses.create({
      model: compat.alias,
      tools: [weatherTool],
      tool_choice: 'auto',
      input: [{ role: 'user', content: 'what is the weather' }],
    }).withResponse();
    const call = first.data.output[0];
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Paris"}' });
    if (call.type !== 'function_call') throw new Error('expected a function call');
    expect(lastUpstreamBody(compat)).toMatchObject({
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: weatherTool.parameters } }],
      tool_choice: 'auto',
    });

    const second = await client.responses.create({
      model: compat.alias,
      tools: [weatherTool],
      input: [
        { role: 'user', content: 'what is the weather' },
        ...first.data.output as OpenAI.Responses.ResponseInputItem[],
        { type: 'function_call_output', call_id: call.call_id, output: 'sunny' },
      ],
    }).withResponse();
    expect(second.data.output_text).toBe('echo: sunny');
    expect((lastUpstreamBody(compat).messages as unknown[]).slice(1)).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [{
          id: call.call_id,
          type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
        }],
      },
      { role: 'tool', tool_call_id: call.call_id, content: 'sunny' },
    ]);
    for (const turn of [first, second]) {
      const record = await usageRecordOf(turn.response.headers.get('x-request-id')!);
      expect(record).toMatchObject({
        prompt_tokens: turn.data.usage!.input_tokens,
        completion_tokens: turn.data.usage!.output_tokens,
        status: 'succeeded',
      });
    }
  });

  it("answers through npm start's demo provider (OpenAI-compatible: translated)", async () => {
    const { data, response } = await client.responses.create({ model: 'demo-chat', input: 'hello demo' })
      .withResponse();
    expect(response.headers.get('x-switchyard-provider')).toBe('switchyard-demo');
    // A translated answer has the router's id; a pass-through would have the upstream's (resp_fake_…).
    expect(data.id).toBe(`resp_${response.headers.get('x-request-id')}`);
    expect(data.output_text).toBe('echo: hello demo');
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toMatchObject({ provider: 'switchyard-demo', prompt_tokens: 2, completion_tokens: 3 });
  });

  it('maps text.format json_schema to response_format, and max_output_tokens, temperature, top_p', async () => {
    const schema = { type: 'object', properties: { echo: { type: 'string' } }, required: ['echo'] };
    const response = await client.responses.create({
      model: compat.alias,
      input: 'give json',
      text: { format: { type: 'json_schema', name: 'echo', schema, strict: true } },
      reasoning: { effort: 'low' },
      max_output_tokens: 50,
      temperature: 0.5,
      top_p: 0.9,
    });
    expect(JSON.parse(response.output_text)).toEqual({ echo: 'give json' });
    expect(lastUpstreamBody(compat)).toMatchObject({
      response_format: { type: 'json_schema', json_schema: { name: 'echo', schema, strict: true } },
      reasoning_effort: 'low',
      max_tokens: 50,
      temperature: 0.5,
      top_p: 0.9,
    });
  });

  it('translates to an Anthropic upstream, and drops reasoning items it cannot take', async () => {
    const response = await client.responses.create({
      model: anthropic.alias,
      instructions: 'Be brief.',
      input: [
        { type: 'reasoning', id: 'rs_earlier', summary: [], encrypted_content: 'opaque' },
        { role: 'user', content: [{ type: 'input_text', text: 'hello anthropic' }] },
      ],
      max_output_tokens: 100,
    });
    expect(response.output_text).toBe('echo: hello anthropic');
    expect(lastUpstreamBody(anthropic)).toMatchObject({
      system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hello anthropic' }] }],
      max_tokens: 100,
    });
  });

  it('refuses a built-in tool the provider lacks with a 400 naming it, charging nothing', async () => {
    const { tenantId: tenant, key: tenantKey } = await newTenantKey('Responses built-in tool');
    const before = fake.requests.length;
    const response = await postResponses(tenantKey, {
      model: compat.alias,
      input: 'search the web',
      tools: [weatherTool, { type: 'web_search' }],
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: {
        message: "the built-in tool web_search is not available on this model's provider; only function tools are",
        type: 'invalid_request_error',
        param: 'tools.1',
        code: 'unsupported_parameter',
      },
    });
    expect(fake.requests.length).toBe(before);
    expect(await usageRecordCount(tenant)).toBe(0);
  });

  it('streams the semantic events with sequence numbers, and the usage record is exact', async () => {
    const requestId = `responses-stream-${crypto.randomUUID()}`;
    const stream = client.responses.stream(
      { model: compat.alias, input: 'stream this please' },
      { headers: { 'x-request-id': requestId } },
    );
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    stream.on('event', (event) => events.push(event));
    const final = await stream.finalResponse();
    expect(final.output_text).toBe('echo: stream this please');
    expect(events.map((event) => event.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.map((event) => event.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.response.usage).toMatchObject({ input_tokens: 3, output_tokens: 4, total_tokens: 7 });
    const record = await usageRecordOf(requestId);
    expect(record).toMatchObject({
      prompt_tokens: 3,
      completion_tokens: 4,
      cost_usd_micros: costOf(3, 4),
      status: 'succeeded',
    });
  });

  it('streams a function call with its argument deltas', async () => {
    const stream = client.responses.stream({
      model: compat.alias,
      tools: [weatherTool],
      input: 'what is the weather',
    });
    const types: string[] = [];
    stream.on('event', (event) => types.push(event.type));
    const final = await stream.finalResponse();
    expect(final.output).toEqual([expect.objectContaining({
      type: 'function_call',
      name: 'get_weather',
      arguments: '{"city":"Paris"}',
      status: 'completed',
    })]);
    expect(types).toEqual(expect.arrayContaining([
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]));
  });

  it('charges what was produced when the upstream cuts the stream', async () => {
    fake.enqueue({ kind: 'cut_stream', afterChunks: 3 }, { times: 1, match: { model: compat.upstreamModel } });
    const response = await postResponses(key, { model: compat.alias, input: 'one two three four five', stream: true });
    expect(response.status).toBe(200);
    const text = await response.text();
    fake.clearFaults();
    expect(text).toContain('event: error');
    expect(text).not.toContain('response.completed');
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record.status).toBe('cancelled');
    expect(record.completion_tokens).toBeGreaterThan(0);
  });
});

describe('stored responses and previous_response_id', () => {
  it('continues a stored conversation, and GET/DELETE answer for the tenant only', async () => {
    const first = await client.responses.create({ model: compat.alias, input: 'remember apples' });
    const second = await client.responses.create({
      model: compat.alias,
      previous_response_id: first.id,
      input: 'and pears',
    });
    expect(second.previous_response_id).toBe(first.id);
    expect(lastUpstreamBody(compat).messages).toEqual([
      { role: 'user', content: 'remember apples' },
      { role: 'assistant', content: 'echo: remember apples' },
      { role: 'user', content: 'and pears' },
    ]);
    const third = await client.responses.create({
      model: compat.alias,
      previous_response_id: second.id,
      input: 'and plums',
    });
    expect((lastUpstreamBody(compat).messages as unknown[]).length).toBe(5);

    expect(await client.responses.retrieve(third.id)).toEqual(third);

    // Another tenant: the same 404 as for an id that never existed, and nothing charged.
    const other = await newTenantKey('Responses other tenant');
    const otherClient = new OpenAI({ baseURL: baseURL(), apiKey: other.key, maxRetries: 0 });
    const continued = await otherClient.responses.create({
      model: compat.alias,
      previous_response_id: first.id,
      input: 'steal it',
    }).catch((caught: unknown) => caught);
    expect(continued).toBeInstanceOf(APIError);
    expect((continued as APIError).status).toBe(404);
    expect((continued as APIError).error).toEqual({
      message: `Response with id '${first.id}' not found.`,
      type: 'invalid_request_error',
      param: 'previous_response_id',
      code: 'not_found',
    });
    expect(await usageRecordCount(other.tenantId)).toBe(0);
    const theirs = await call(`/llm-router/v1/responses/${first.id}`, {
      headers: { authorization: `Bearer ${other.key}` },
    });
    const nobodys = await call('/llm-router/v1/responses/resp_nobody', {
      headers: { authorization: `Bearer ${other.key}` },
    });
    expect(theirs.status).toBe(404);
    expect(nobodys.status).toBe(404);
    const [theirBody, nobodyBody] = [await theirs.json(), await nobodys.json()] as { error: { message: string } }[];
    expect(theirBody).toEqual({
      ...nobodyBody,
      error: { ...nobodyBody.error, message: nobodyBody.error.message.replace('resp_nobody', first.id) },
    });
    const deleteTheirs = await call(`/llm-router/v1/responses/${first.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${other.key}` },
    });
    expect(deleteTheirs.status).toBe(404);

    // Deleting a turn ends the conversations that went through it.
    const deleted = await call(`/llm-router/v1/responses/${second.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({ id: second.id, object: 'response', deleted: true });
    const gone = await client.responses.retrieve(second.id).catch((caught: unknown) => caught);
    expect((gone as APIError).status).toBe(404);
    const broken = await postResponses(key, { model: compat.alias, previous_response_id: third.id, input: 'x' });
    expect(broken.status).toBe(404);
    await broken.body?.cancel();
    expect(await client.responses.retrieve(first.id)).toMatchObject({ id: first.id });
  });

  it('keeps nothing when store is false, and stores a streamed turn', async () => {
    const unstored = await client.responses.create({ model: compat.alias, input: 'forget me', store: false });
    const missing = await client.responses.retrieve(unstored.id).catch((caught: unknown) => caught);
    expect((missing as APIError).status).toBe(404);
    const streamed = await client.responses.stream({ model: compat.alias, input: 'streamed turn' }).finalResponse();
    const stored = await eventually(
      () =>
        sql<
          { id: string }[]
        >`select id from public.stored_responses where tenant_id = ${tenantId} and id = ${streamed.id}`,
      (rows) => rows.length === 1,
    );
    expect(stored).toHaveLength(1);
    expect((await client.responses.retrieve(streamed.id)).output_text).toBe('echo: streamed turn');
  });
});

describe('POST /v1/responses passed through to OpenAI and Azure', () => {
  it('forwards the body unchanged but for the model, encrypted reasoning included', async () => {
    const params = {
      model: openai.alias,
      instructions: 'Be brief.',
      input: [{ role: 'user' as const, content: [{ type: 'input_text' as const, text: 'hello upstream' }] }],
      reasoning: { effort: 'low' as const },
      include: ['reasoning.encrypted_content' as const],
      store: false,
      tools: [weatherTool, { type: 'web_search' as const }],
    };
    const { data, response } = await client.responses.create(params).withResponse();
    const upstream = upstreamCallsFor(openai.upstreamModel).at(-1)!;
    expect(upstream.path).toBe('/v1/responses');
    expect(upstream.body).toEqual({ ...params, model: openai.upstreamModel });
    expect(data.output[0]).toMatchObject({ type: 'reasoning', encrypted_content: FAKE_ENCRYPTED_REASONING });
    expect(data.output_text).toBe('echo: hello upstream');
    const record = await usageRecordOf(response.headers.get('x-request-id')!);
    expect(record).toEqual({
      prompt_tokens: data.usage!.input_tokens,
      completion_tokens: data.usage!.output_tokens,
      cost_usd_micros: costOf(data.usage!.input_tokens, data.usage!.output_tokens),
      status: 'succeeded',
      provider: openai.providerSlug,
      dialect: 'openai_responses',
    });
  });

  it('forwards the stream, and takes usage from response.completed', async () => {
    const requestId = `responses-stream-${crypto.randomUUID()}`;
    const final = await client.responses.stream(
      { model: openai.alias, input: 'stream upstream please' },
      { headers: { 'x-request-id': requestId } },
    ).finalResponse();
    expect(final.output_text).toBe('echo: stream upstream please');
    const record = await usageRecordOf(requestId);
    expect(record).toMatchObject({
      prompt_tokens: final.usage!.input_tokens,
      completion_tokens: final.usage!.output_tokens,
      status: 'succeeded',
    });
    expect((await client.responses.retrieve(final.id)).id).toBe(final.id);
  });

  it('expands previous_response_id here: the upstream gets the whole conversation', async () => {
    const first = await client.responses.create({ model: openai.alias, input: 'first upstream turn' });
    await client.responses.create({ model: openai.alias, previous_response_id: first.id, input: 'second turn' });
    const sent = lastUpstreamBody(openai);
    expect(sent.previous_response_id).toBeUndefined();
    expect(sent.input).toEqual([
      { type: 'message', role: 'user', content: 'first upstream turn' },
      first.output[0],
      { type: 'message', role: 'user', content: 'second turn' },
    ]);
  });

  it('calls Azure at /openai/v1/responses with the deployment as the model', async () => {
    const response = await client.responses.create({ model: azure.alias, input: 'hello azure' });
    expect(response.output_text).toBe('echo: hello azure');
    const upstream = upstreamCallsFor(azure.upstreamModel).at(-1)!;
    expect(upstream.path).toBe('/openai/v1/responses');
    expect(upstream.headers['api-key']).toBeDefined();
  });
});

describe("refusals in OpenAI's shape, nothing charged", () => {
  it('answers malformed and unknown items with a 400 naming the field', async () => {
    const { tenantId: tenant, key: tenantKey } = await newTenantKey('Responses bad input');
    const before = fake.requests.length;
    const unknownItem = await postResponses(tenantKey, {
      model: compat.alias,
      input: [{ type: 'hologram', text: 'x' }],
    });
    expect(unknownItem.status).toBe(400);
    expect(await unknownItem.json()).toEqual({
      error: {
        message: expect.stringMatching(/^input\.0\.type: /),
        type: 'invalid_request_error',
        param: 'input.0.type',
        code: 'validation_failed',
      },
    });
    const malformed = await postResponses(tenantKey, {
      model: compat.alias,
      input: [{ type: 'function_call', name: 'get_weather', arguments: '{}' }],
    });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { param: string } }).error.param).toBe('input.0.call_id');
    const missingInput = await postResponses(tenantKey, { model: compat.alias });
    expect(missingInput.status).toBe(400);
    expect(((await missingInput.json()) as { error: { param: string } }).error.param).toBe('input');
    const untranslatable = await postResponses(tenantKey, {
      model: compat.alias,
      input: [{ type: 'item_reference', id: 'msg_1' }],
    });
    expect(untranslatable.status).toBe(400);
    expect(await untranslatable.json()).toMatchObject({
      error: { message: "a item_reference item cannot be sent to this model's provider", param: 'input.0' },
    });
    expect(fake.requests.length).toBe(before);
    expect(await usageRecordCount(tenant)).toBe(0);
  });

  it('answers an exhausted budget with 402 insufficient_quota', async () => {
    const { tenantId: poor, key: poorKey } = await newTenantKey('Responses budget');
    await sql`insert into public.budgets (tenant_id, scope, unit, period, limit_amount)
              values (${poor}, 'tenant', 'usd_micros', 'total', 1)`;
    const poorClient = new OpenAI({ baseURL: baseURL(), apiKey: poorKey, maxRetries: 0 });
    const error = await poorClient.responses.create({ model: compat.alias, input: 'too expensive' })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(402);
    expect((error as APIError).error).toEqual({
      message: expect.stringMatching(/^Budget exceeded/),
      type: 'insufficient_quota',
      param: null,
      code: 'budget_exceeded',
    });
    expect(await usageRecordCount(poor)).toBe(0);
  });

  it('answers a spent rate limit with 429 rate_limit_error and retry-after', async () => {
    const { tenantId: busy, key: busyKey } = await newTenantKey('Responses rate');
    await sql`insert into public.rate_limits (tenant_id, requests_per_minute) values (${busy}, 1)`;
    // One request a minute: of three in a row, at least one falls in a minute already used.
    const responses = [];
    for (let i = 0; i < 3; i++) responses.push(await postResponses(busyKey, { model: compat.alias, input: 'again' }));
    const refused = responses.find((response) => response.status === 429);
    expect(refused).toBeDefined();
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused!.headers.get('x-ratelimit-limit-requests')).toBe('1');
    expect(await refused!.json()).toEqual({
      error: { message: expect.any(String), type: 'rate_limit_error', param: null, code: 'rate_limited' },
    });
    for (const response of responses) if (!response.bodyUsed) await response.text();
  });
});
