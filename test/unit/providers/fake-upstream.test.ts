// The fake upstream itself: real auth refusals, recording with masked secrets, fault
// matching, the /__fake control API, and the CLI entry.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../../helpers/eventually.ts';
import { type FakeUpstream, startFakeUpstream } from '../../fakes/fake-upstream.ts';

let fake: FakeUpstream;
const KEY = 'sk-accepted-key-4242';

beforeAll(async () => {
  fake = await startFakeUpstream({ apiKeys: [KEY], models: ['m-one', 'm-two'] });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.clearFaults();
  fake.clearRequests();
});

const openAIChat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };

async function post(
  path: string,
  headers: Record<string, string>,
  body: unknown,
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(`${fake.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

describe('fake upstream: authentication as each provider does it', () => {
  it('OpenAI: missing and wrong bearer keys', async () => {
    const missing = await post('/v1/chat/completions', {}, openAIChat);
    expect(missing.status).toBe(401);
    expect(missing.json).toMatchObject({ error: { type: 'invalid_request_error', code: null } });
    const wrong = await post('/v1/chat/completions', { authorization: 'Bearer sk-wrong-000000' }, openAIChat);
    expect(wrong.status).toBe(401);
    expect(wrong.json).toMatchObject({
      error: { type: 'invalid_request_error', code: 'invalid_api_key', param: null },
    });
  });

  it('Azure: api-key header', async () => {
    const wrong = await post('/openai/deployments/d1/chat/completions?api-version=2024-10-21', { 'api-key': 'nope' }, {
      messages: openAIChat.messages,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toMatchObject({ error: { code: '401' } });
    const ok = await post('/openai/deployments/d1/chat/completions?api-version=2024-10-21', { 'api-key': KEY }, {
      messages: openAIChat.messages,
    });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ model: 'd1', choices: [{ message: { content: 'echo: hi' } }] });
  });

  it('Anthropic: x-api-key, then anthropic-version', async () => {
    const body = { model: 'claude', max_tokens: 10, messages: openAIChat.messages };
    const wrong = await post('/v1/messages', { 'x-api-key': 'nope', 'anthropic-version': '2023-06-01' }, body);
    expect(wrong).toMatchObject({
      status: 401,
      json: { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } },
    });
    const noVersion = await post('/v1/messages', { 'x-api-key': KEY }, body);
    expect(noVersion).toMatchObject({
      status: 400,
      json: {
        type: 'error',
        error: { type: 'invalid_request_error', message: 'anthropic-version: header is required' },
      },
    });
  });

  it('Anthropic: system turns between messages only with the mid-conversation-system beta', async () => {
    const body = {
      model: 'claude',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }, { role: 'system', content: 'be brief' }],
    };
    const headers = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };
    const refused = await post('/v1/messages', headers, body);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ error: { message: expect.stringMatching(/Unexpected role "system"/) } });
    const beta = await post(
      '/v1/messages',
      { ...headers, 'anthropic-beta': 'mid-conversation-system-2026-04-07' },
      body,
    );
    expect(beta.status).toBe(200);
  });

  it('Gemini: 403 without a key, 400 API_KEY_INVALID with a wrong one, ?key= accepted', async () => {
    const body = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] };
    const path = '/v1beta/models/gemini-2.0-flash:generateContent';
    expect(await post(path, {}, body)).toMatchObject({
      status: 403,
      json: { error: { code: 403, status: 'PERMISSION_DENIED' } },
    });
    expect(await post(path, { 'x-goog-api-key': 'nope' }, body)).toMatchObject({
      status: 400,
      json: { error: { code: 400, status: 'INVALID_ARGUMENT', details: [{ reason: 'API_KEY_INVALID' }] } },
    });
    const viaQuery = await post(`${path}?key=${KEY}`, {}, body);
    expect(viaQuery).toMatchObject({
      status: 200,
      json: { candidates: [{ content: { parts: [{ text: 'echo: hi' }] }, finishReason: 'STOP' }] },
    });
    expect(fake.requests.at(-1)?.path).toBe(`${path}?key=****4242`);
  });

  it('accepts any non-empty key by default', async () => {
    const open = await startFakeUpstream();
    try {
      const res = await fetch(`${open.url}/v1/models`, { headers: { authorization: 'Bearer anything' } });
      expect(res.status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe('fake upstream: wire validation the adapters must satisfy', () => {
  it('OpenAI refuses stream_options on a non-streaming call', async () => {
    const res = await post('/v1/chat/completions', { authorization: `Bearer ${KEY}` }, {
      ...openAIChat,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({
      error: { message: "The 'stream_options' parameter is only allowed when 'stream' is enabled." },
    });
  });

  it('Anthropic refuses a system role inside messages and a missing max_tokens', async () => {
    const headers = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };
    const system = await post('/v1/messages', headers, {
      model: 'c',
      max_tokens: 5,
      messages: [{ role: 'system', content: 'x' }],
    });
    expect(system.status).toBe(400);
    const noMax = await post('/v1/messages', headers, { model: 'c', messages: [{ role: 'user', content: 'x' }] });
    expect(noMax).toMatchObject({ status: 400, json: { error: { type: 'invalid_request_error' } } });
  });

  it('Gemini refuses roles other than user and model', async () => {
    const res = await post('/v1beta/models/g:generateContent', { 'x-goog-api-key': KEY }, {
      contents: [{ role: 'assistant', parts: [{ text: 'x' }] }],
    });
    expect(res).toMatchObject({ status: 400, json: { error: { message: 'Please use a valid role: user, model.' } } });
  });

  it('answers 404 on an unknown path', async () => {
    const res = await post('/v2/whatever', {}, {});
    expect(res).toMatchObject({ status: 404, json: { error: { code: 'unknown_url' } } });
  });

  it('lists the configured models in each format', async () => {
    const openai = await (await fetch(`${fake.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).json();
    expect(openai).toEqual({
      object: 'list',
      data: [
        { id: 'm-one', object: 'model', created: 1_700_000_000, owned_by: 'fake-upstream' },
        { id: 'm-two', object: 'model', created: 1_700_000_000, owned_by: 'fake-upstream' },
      ],
    });
    const anthropic =
      await (await fetch(`${fake.url}/v1/models`, { headers: { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' } }))
        .json();
    expect(anthropic).toMatchObject({
      data: [{ type: 'model', id: 'm-one' }, { type: 'model', id: 'm-two' }],
      has_more: false,
      first_id: 'm-one',
      last_id: 'm-two',
    });
    const gemini = await (await fetch(`${fake.url}/v1beta/models`, { headers: { 'x-goog-api-key': KEY } })).json();
    expect(gemini).toMatchObject({ models: [{ name: 'models/m-one' }, { name: 'models/m-two' }] });
  });

  it('Gemini embedContent returns one deterministic vector', async () => {
    const body = { content: { parts: [{ text: 'same text' }] }, outputDimensionality: 3 };
    const first = await post('/v1beta/models/text-embedding-004:embedContent', { 'x-goog-api-key': KEY }, body);
    const second = await post('/v1beta/models/text-embedding-004:embedContent', { 'x-goog-api-key': KEY }, body);
    expect(first.status).toBe(200);
    expect(first.json).toEqual(second.json);
    expect((first.json as { embedding: { values: number[] } }).embedding.values).toHaveLength(3);
  });
});

describe('fake upstream: recording and faults', () => {
  it('records requests with credentials masked to their last 4 characters', async () => {
    await post('/v1/chat/completions', { authorization: `Bearer ${KEY}` }, openAIChat);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({
      seq: expect.any(Number),
      method: 'POST',
      path: '/v1/chat/completions',
      format: 'openai',
      operation: 'chat',
      model: 'gpt-4o-mini',
      body: openAIChat,
      authorized: true,
      fault: null,
    });
    expect(fake.requests[0]?.headers.authorization).toBe('Bearer ****4242');
    expect(JSON.stringify(fake.requests)).not.toContain(KEY);
  });

  it('matches faults by model and path, consumes them `times` times, and keeps `forever` ones', async () => {
    fake.enqueue({ kind: 'status', status: 503 }, { match: { model: 'other-model' } });
    fake.enqueue({ kind: 'status', status: 500 }, { match: { path: '/v1/chat' }, times: 2 });
    const headers = { authorization: `Bearer ${KEY}` };
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await post('/v1/chat/completions', headers, openAIChat)).status);
    expect(statuses).toEqual([500, 500, 200]);
    expect(fake.faults()).toEqual([{
      fault: { kind: 'status', status: 503 },
      remaining: 1,
      match: { model: 'other-model' },
    }]);
    fake.enqueue({ kind: 'status', status: 429, retryAfterSeconds: 2 }, {
      times: 'forever',
      match: { format: 'openai' },
    });
    for (let i = 0; i < 3; i += 1) {
      const res = await post('/v1/chat/completions', headers, openAIChat);
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(res.json).toMatchObject({ error: { type: 'requests', code: 'rate_limit_exceeded' } });
    }
    expect(fake.requests.at(-1)?.fault).toBe('status');
  });

  it('uses each provider’s own error body for a fault', async () => {
    fake.enqueue({ kind: 'status', status: 429 }, { times: 'forever' });
    const anthropic = await post('/v1/messages', { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' }, {
      model: 'c',
      max_tokens: 5,
      messages: openAIChat.messages,
    });
    expect(anthropic.json).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
    const gemini = await post('/v1beta/models/g:generateContent', { 'x-goog-api-key': KEY }, {
      contents: [{ parts: [{ text: 'x' }] }],
    });
    expect(gemini.json).toMatchObject({ error: { code: 429, status: 'RESOURCE_EXHAUSTED' } });
  });

  it('is scriptable over the /__fake control API', async () => {
    const queued = await post('/__fake/faults', {}, [
      { fault: { kind: 'status', status: 529 }, match: { format: 'anthropic' } },
      { fault: { kind: 'delay', ms: 10 }, times: 2 },
    ]);
    expect(queued).toMatchObject({ status: 201, json: { queued: 2 } });
    const listed = await (await fetch(`${fake.url}/__fake/faults`)).json();
    expect(listed).toEqual({
      faults: [
        { fault: { kind: 'status', status: 529 }, remaining: 1, match: { format: 'anthropic' } },
        { fault: { kind: 'delay', ms: 10 }, remaining: 2, match: {} },
      ],
    });
    const bad = await post('/__fake/faults', {}, { fault: { kind: 'explode' } });
    expect(bad.status).toBe(400);
    await post('/v1/chat/completions', { authorization: `Bearer ${KEY}` }, openAIChat);
    const recorded = (await (await fetch(`${fake.url}/__fake/requests`)).json()) as {
      requests: Array<{ fault: string | null; headers: Record<string, string> }>;
    };
    expect(recorded.requests).toHaveLength(1);
    expect(recorded.requests[0]).toMatchObject({ fault: 'delay', headers: { authorization: 'Bearer ****4242' } });
    expect((await fetch(`${fake.url}/__fake/faults`, { method: 'DELETE' })).status).toBe(200);
    expect((await fetch(`${fake.url}/__fake/requests`, { method: 'DELETE' })).status).toBe(200);
    expect(fake.faults()).toEqual([]);
    expect(fake.requests).toEqual([]);
  });

  it('closes promptly even with a hanging request open', async () => {
    const hanging = await startFakeUpstream();
    hanging.enqueue({ kind: 'hang' });
    const pending = fetch(`${hanging.url}/v1/models`, { headers: { authorization: 'Bearer k' } }).then(
      (res) => res.status,
      () => 'failed',
    );
    // Open at the fake (recorded) before it closes.
    expect(await eventually(() => Promise.resolve(hanging.requests.length), (count) => count === 1)).toBe(1);
    await hanging.close();
    expect(await pending).toBe('failed');
  });
});

describe('fake upstream CLI', () => {
  it('prints its URL as one JSON line, serves, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [
      '--import',
      'tsx',
      'test/fakes/fake-upstream-server.ts',
      '--port',
      '0',
      '--api-key',
      KEY,
    ], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const lines = createInterface({ input: child.stdout });
      const [line] = (await once(lines, 'line')) as [string];
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
      expect(res.status).toBe(200);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
