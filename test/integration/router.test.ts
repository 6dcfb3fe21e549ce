import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../fakes/fake-upstream.ts';
import { catalogCaughtUp, type CatalogFixture, createCatalogFixture } from '../helpers/catalog.ts';
import { eventually } from '../helpers/eventually.ts';
import { requestsOnOneConnection } from '../helpers/raw-http.ts';
import { call, connectDatabase, createTenant, serviceHeaders, stack } from '../helpers/stack.ts';
import { testRouterSettings } from '../setup/router-settings.ts';

// The official openai SDK against the real llm-router under Deno, provider
// keys from the key vault, fake upstreams on loopback speaking each wire format.
const sql = connectDatabase();
let fake: FakeUpstream;
let client: OpenAI;
let tenantId: string;
const fixtures: Record<string, CatalogFixture> = {};
const upstreamKeys: Record<string, string> = {};

async function storeProviderKey(provider: string, secret: string): Promise<string> {
  const response = await call('/keys', {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ provider, secret }),
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

async function providerFixture(name: string, options: Parameters<typeof createCatalogFixture>[1]) {
  const fixture = await createCatalogFixture(sql, options);
  upstreamKeys[name] = `sk-test-${name}-${crypto.randomUUID()}`;
  await storeProviderKey(fixture.providerSlug, upstreamKeys[name]);
  fixtures[name] = fixture;
  return fixture;
}

const listModels = async () => (await client.models.list()).data.map((model) => model.id);
/** The router reads the catalog through a cache: wait until it holds what the test just changed. */
const catalogRefreshed = () => catalogCaughtUp(sql, fixtures.openai.providerSlug, listModels);

beforeAll(async () => {
  fake = await startFakeUpstream();
  await providerFixture('openai', { kind: 'openai', baseUrl: fake.endpoints.openai, upstreamModel: 'gpt-4o-mini' });
  await providerFixture('compatible', {
    kind: 'openai_compatible',
    baseUrl: fake.endpoints.openai,
    upstreamModel: 'llama-3.1-8b',
  });
  await providerFixture('azure', {
    kind: 'azure_openai',
    baseUrl: fake.endpoints.azure_openai,
    upstreamModel: 'my-deployment',
    apiVersion: '2024-10-21',
  });
  await providerFixture('anthropic', {
    kind: 'anthropic',
    baseUrl: fake.endpoints.anthropic,
    upstreamModel: 'claude-3-5-haiku-latest',
    apiVersion: '2023-06-01',
    capabilities: ['chat', 'stream', 'tools', 'json'],
  });
  await providerFixture('gemini', {
    kind: 'gemini',
    baseUrl: fake.endpoints.gemini,
    upstreamModel: 'gemini-2.0-flash',
    apiVersion: 'v1beta',
  });
  tenantId = await createTenant('Router');
  const created = await call(`/ops/tenants/${tenantId}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: '{"name":"router"}',
  });
  const { key } = (await created.json()) as { key: string };
  client = new OpenAI({
    baseURL: `${stack.functionsUrl}/llm-router/v1`,
    apiKey: key,
    maxRetries: 0,
    defaultHeaders: { apikey: stack.anonKey },
  });
  await catalogRefreshed();
});
afterAll(async () => {
  // Providers of this file's fake go with it: the smoke check invokes the first model listed.
  await sql`update public.llm_providers set enabled = false where base_url like ${`${fake.url}%`}`;
  await fake.close();
  await sql.end();
});

describe.each(['openai', 'compatible', 'azure', 'anthropic', 'gemini'])('the %s adapter through the router', (name) => {
  it('answers a chat completion, with the headers that say who served it', async () => {
    const { data, response } = await client.chat.completions
      .create({
        model: fixtures[name].alias,
        messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello from the sdk' }],
      })
      .withResponse();
    expect(data.choices[0].message.content).toBe('echo: hello from the sdk');
    expect(data.model).toBe(fixtures[name].alias);
    expect(data.usage?.completion_tokens).toBe(5);
    expect(response.headers.get('x-switchyard-provider')).toBe(fixtures[name].providerSlug);
    expect(response.headers.get('x-switchyard-model')).toBe(fixtures[name].upstreamModel);
    expect(response.headers.get('x-switchyard-attempts')).toBe('1');
    expect(response.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
    // The upstream got the vault's key, never the caller's.
    const seen = fake.requests.filter((request) => JSON.stringify(request).includes(upstreamKeys[name].slice(-4)));
    expect(seen.length).toBeGreaterThan(0);
  });

  it('streams, with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: fixtures[name].alias,
      messages: [{ role: 'user', content: 'stream this please' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('echo: stream this please');
    expect(usage?.completion_tokens).toBe(4);
  });

  it('relays a tool call', async () => {
    const response = await client.chat.completions.create({
      model: fixtures[name].alias,
      messages: [{ role: 'user', content: 'what is the weather' }],
      tools: [{
        type: 'function',
        function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
      }],
    });
    const call = response.choices[0].message.tool_calls?.[0];
    expect(response.choices[0].finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' ? call.function.name : undefined).toBe('get_weather');
    expect(call?.type === 'function' ? JSON.parse(call.function.arguments) : undefined).toEqual({ city: 'Paris' });
  });
});

// Anthropic has no embeddings API: its refusal is asserted below.
describe.each(['openai', 'compatible', 'azure', 'gemini'])('the %s adapter', (name) => {
  it('embeds through the router', async () => {
    const response = await client.embeddings.create({ model: fixtures[name].alias, input: ['one two', 'three'] });
    expect(response.data).toHaveLength(2);
    expect(response.data[0].embedding.length).toBeGreaterThan(0);
  });
});

describe('the router', () => {
  it('keeps the client connection alive across chat completions with request bodies larger than 1 KB', async () => {
    // Deno 2.8.3–2.9.5 answered such requests with `connection: close`, which costs every
    // client a reconnect per call (issue 9); package.json pins a Deno without that fault.
    const chat = {
      method: 'POST',
      path: new URL(`${stack.functionsUrl}/llm-router/v1/chat/completions`).pathname,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${client.apiKey}`, apikey: stack.anonKey },
      body: JSON.stringify({
        model: fixtures.openai.alias,
        messages: [{ role: 'user', content: `keep-alive ${'padding '.repeat(200)}` }],
      }),
    };
    expect(chat.body.length).toBeGreaterThan(1024);
    const responses = await requestsOnOneConnection(stack.functionsUrl, [chat, chat, chat]);
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200]);
    for (const response of responses) {
      expect(response.headers.connection ?? 'keep-alive').not.toMatch(/close/i);
      expect((JSON.parse(response.body) as { choices: { message: { content: string } }[] }).choices[0].message.content)
        .toMatch(/^echo: keep-alive/);
    }
  });

  it('lists the models the caller can use: those a provider with a vault key serves', async () => {
    const keyless = await createCatalogFixture(sql, { baseUrl: fake.endpoints.openai });
    await catalogRefreshed();
    const ids = (await client.models.list()).data.map((model) => model.id);
    for (const fixture of Object.values(fixtures)) expect(ids).toContain(fixture.alias);
    expect(ids).not.toContain(keyless.alias);
    // The seeded catalog's real providers have no key here.
    expect(ids).not.toContain('gpt-4o');
  });

  it('refuses embeddings on a model that has none, naming the field', async () => {
    const error = await client.embeddings.create({ model: fixtures.anthropic.alias, input: 'x' }).catch((
      caught: unknown,
    ) => caught);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(400);
    expect((error as APIError).code).toBe('unsupported_parameter');
  });

  it("answers 404 model_not_found, 400 naming the field, and 400 over the context window, in OpenAI's shape", async () => {
    const unknown =
      (await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })
        .catch((caught: unknown) => caught)) as APIError;
    expect(unknown.status).toBe(404);
    expect(unknown.code).toBe('model_not_found');
    expect(unknown.type).toBe('invalid_request_error');

    const response = await call('/llm-router/v1/chat/completions', {
      method: 'POST',
      headers: { apikey: stack.anonKey, authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: fixtures.openai.alias, messages: [{ role: 'robot', content: 'x' }] }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as {
      error: { message: string; type: string; param: string | null; code: string };
    };
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.param).toBe('messages.0.role');

    const small = await createCatalogFixture(sql, { baseUrl: fake.endpoints.openai, contextWindow: 50 });
    await catalogRefreshed();
    const tooLong = (await client.chat.completions.create({
      model: small.alias,
      messages: [{ role: 'user', content: 'word '.repeat(200) }],
    })
      .catch((caught: unknown) => caught)) as APIError;
    expect(tooLong.status).toBe(400);
    expect(tooLong.code).toBe('context_length_exceeded');
  });

  it('retries a failing provider, then falls back to the next candidate', async () => {
    const first = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `primary-${crypto.randomUUID()}`,
      maxRetries: 1,
    });
    const second = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `backup-${crypto.randomUUID()}`,
      alias: first.alias,
      priority: 200,
    });
    await storeProviderKey(first.providerSlug, 'sk-test-primary');
    await storeProviderKey(second.providerSlug, 'sk-test-backup');
    await catalogRefreshed();
    fake.enqueue({ kind: 'status', status: 503 }, { times: 2, match: { model: first.upstreamModel } });
    const { data, response } = await client.chat.completions.create({
      model: first.alias,
      messages: [{ role: 'user', content: 'fall back' }],
    }).withResponse();
    expect(data.choices[0].message.content).toBe('echo: fall back');
    expect(response.headers.get('x-switchyard-provider')).toBe(second.providerSlug);
    expect(response.headers.get('x-switchyard-attempts')).toBe('3');
    expect(fake.requests.filter((request) => JSON.stringify(request.body).includes(first.upstreamModel))).toHaveLength(
      2,
    );
  });

  it('cools a provider down after repeated failures and sends nothing to it until the cooldown ends', async () => {
    const flaky = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `flaky-${crypto.randomUUID()}`,
      maxRetries: 0,
    });
    const steady = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `steady-${crypto.randomUUID()}`,
      alias: flaky.alias,
      priority: 200,
    });
    await storeProviderKey(flaky.providerSlug, 'sk-test-flaky');
    await storeProviderKey(steady.providerSlug, 'sk-test-steady');
    await catalogRefreshed();
    const sentToFlaky = () =>
      fake.requests.filter((request) => JSON.stringify(request.body).includes(flaky.upstreamModel)).length;
    fake.enqueue({ kind: 'status', status: 500 }, { times: 'forever', match: { model: flaky.upstreamModel } });
    for (let i = 0; i < testRouterSettings.failureThreshold; i++) {
      await client.chat.completions.create({ model: flaky.alias, messages: [{ role: 'user', content: 'x' }] });
    }
    expect(sentToFlaky()).toBe(testRouterSettings.failureThreshold);
    const { response } = await client.chat.completions.create({
      model: flaky.alias,
      messages: [{ role: 'user', content: 'x' }],
    }).withResponse();
    expect(response.headers.get('x-switchyard-attempts')).toBe('1');
    expect(response.headers.get('x-switchyard-route-reason')).toMatch(/cooling_down=/);
    expect(sentToFlaky()).toBe(testRouterSettings.failureThreshold);
    fake.clearFaults();
    // Until the cooldown ends the steady provider answers; then the flaky one again.
    const recovered = await eventually(
      () =>
        client.chat.completions.create({ model: flaky.alias, messages: [{ role: 'user', content: 'x' }] })
          .withResponse(),
      ({ response }) => response.headers.get('x-switchyard-provider') === flaky.providerSlug,
      { timeoutMs: testRouterSettings.cooldownMs + 20_000, intervalMs: 200 },
    );
    expect(recovered.response.headers.get('x-switchyard-provider')).toBe(flaky.providerSlug);
  });

  it('answers 504 when the upstream does not answer within the first-byte timeout', async () => {
    const slow = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `slow-${crypto.randomUUID()}`,
      maxRetries: 0,
      connectTimeoutMs: 100,
      firstByteTimeoutMs: 300,
    });
    await storeProviderKey(slow.providerSlug, 'sk-test-slow');
    await catalogRefreshed();
    fake.enqueue({ kind: 'delay', ms: 2_000 }, { times: 1, match: { model: slow.upstreamModel } });
    const error =
      (await client.chat.completions.create({ model: slow.alias, messages: [{ role: 'user', content: 'x' }] })
        .catch((caught: unknown) => caught)) as APIError;
    expect(error.status).toBe(504);
    expect(error.code).toBe('upstream_timeout');
  });

  it('answers 502 after retries without echoing the upstream body or key', async () => {
    const broken = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `broken-${crypto.randomUUID()}`,
      maxRetries: 1,
    });
    await storeProviderKey(broken.providerSlug, 'sk-test-broken-secret-value');
    await catalogRefreshed();
    fake.enqueue({ kind: 'status', status: 500, message: 'internal detail sk-test-broken-secret-value' }, {
      times: 2,
      match: { model: broken.upstreamModel },
    });
    const response = await call('/llm-router/v1/chat/completions', {
      method: 'POST',
      headers: { apikey: stack.anonKey, authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: broken.alias, messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(response.status).toBe(502);
    const text = await response.text();
    expect(text).not.toContain('sk-test-broken-secret-value');
    expect(JSON.parse(text).error.code).toBe('upstream_error');
  });

  it('picks up a new routing policy within the catalog TTL', async () => {
    const alias = `policy-${crypto.randomUUID().slice(0, 8)}`;
    const a = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `model-a-${alias}`,
      alias,
    });
    const b = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `model-b-${alias}`,
      alias,
      priority: 500,
    });
    await storeProviderKey(a.providerSlug, 'sk-test-a');
    await storeProviderKey(b.providerSlug, 'sk-test-b');
    await catalogRefreshed();
    const ask = async () =>
      (await client.chat.completions.create({ model: alias, messages: [{ role: 'user', content: 'x' }] })
        .withResponse())
        .response.headers.get('x-switchyard-provider');
    expect(await ask()).toBe(a.providerSlug);
    const [policy] = await sql<{ id: string }[]>`
      insert into public.routing_policies (name, model_alias, strategy) values (${`prefer b ${alias}`}, ${alias}, 'priority') returning id`;
    await sql`insert into public.routing_policy_targets (policy_id, model_id, position) values (${policy.id}, ${b.modelId}, 0), (${policy.id}, ${a.modelId}, 1)`;
    await catalogRefreshed();
    expect(await ask()).toBe(b.providerSlug);
  });

  it('keeps answering while the provider key is rotated mid-traffic', async () => {
    const rotating = await createCatalogFixture(sql, {
      baseUrl: fake.endpoints.openai,
      upstreamModel: `rotating-${crypto.randomUUID()}`,
    });
    const keyId = await storeProviderKey(rotating.providerSlug, 'sk-test-rotation-old1');
    await catalogRefreshed();
    // Traffic runs before, during and after the rotation: until five answers came after it.
    const rotation: { answersBefore?: number } = {};
    const statuses: number[] = [];
    const traffic = (async () => {
      while (rotation.answersBefore === undefined || statuses.length < rotation.answersBefore + 5) {
        const { response } = await client.chat.completions.create({
          model: rotating.alias,
          messages: [{ role: 'user', content: 'x' }],
        }).withResponse();
        statuses.push(response.status);
      }
    })();
    await eventually(() => Promise.resolve(statuses.length), (count) => count >= 3);
    const rotated = await call(`/keys/${keyId}/rotate`, {
      method: 'POST',
      headers: serviceHeaders(),
      body: JSON.stringify({ secret: 'sk-test-rotation-new2', grace_seconds: 60 }),
    });
    rotation.answersBefore = statuses.length;
    expect(rotated.status).toBe(201);
    await traffic;
    expect(rotation.answersBefore).toBeGreaterThanOrEqual(3);
    expect(statuses.every((status) => status === 200)).toBe(true);
    // The router's vault cache picks the new version up within its TTL.
    const upstreamKeyTail = async () => {
      fake.clearRequests();
      await client.chat.completions.create({ model: rotating.alias, messages: [{ role: 'user', content: 'x' }] });
      return JSON.stringify(fake.requests.at(-1)?.headers);
    };
    // The fake keeps the last four characters of each key: the new version is in use.
    expect(await eventually(upstreamKeyTail, (headers) => headers.includes('new2'))).toContain('new2');
  });
});

describe('provider-health', () => {
  it('probes each enabled provider with its key and records up or down in provider_health', async () => {
    const probed = await createCatalogFixture(sql, { baseUrl: fake.endpoints.openai, maxRetries: 0 });
    await storeProviderKey(probed.providerSlug, 'sk-test-probe');
    const run = async () => {
      const response = await call('/provider-health/run', {
        method: 'POST',
        headers: serviceHeaders({ 'x-job-token': stack.jobToken }),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { results: { provider: string; outcome: string }[] };
      return body.results.find((result) => result.provider === probed.providerSlug)?.outcome;
    };
    expect(await run()).toBe('up');
    // Every enabled provider is probed at once and several use this fake: fail them all for one run.
    fake.enqueue({ kind: 'status', status: 500 }, { times: 'forever', match: { path: '/models' } });
    expect(await run()).toBe('down');
    fake.clearFaults();
    const [health] = await sql<{ sample_count: number; error_rate: number }[]>`
      select sample_count, error_rate from public.provider_health where provider_id = ${probed.providerId} and upstream_model = ''`;
    expect(health.sample_count).toBe(2);
    expect(health.error_rate).toBeCloseTo(0.5, 5);
  });

  it('is for the service role with a job token only', async () => {
    const asTenant = await call('/provider-health/run', {
      method: 'POST',
      headers: { apikey: stack.anonKey, authorization: `Bearer ${client.apiKey}`, 'x-job-token': stack.jobToken },
    });
    expect(asTenant.status).toBe(403);
    const withoutToken = await call('/provider-health/run', { method: 'POST', headers: serviceHeaders() });
    expect(withoutToken.status).toBe(401);
    expect(((await withoutToken.json()) as { error: { message: string } }).error.message).toBe(
      'missing X-Job-Token header',
    );
    const wrongToken = await call('/provider-health/run', {
      method: 'POST',
      headers: serviceHeaders({ 'x-job-token': 'nope' }),
    });
    expect(wrongToken.status).toBe(401);
  });
});
