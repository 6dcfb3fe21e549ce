import OpenAI from 'openai';
import { CheckFailure, CheckSkip, errorCode, type SmokeContext } from './context.ts';

export type Phase = 'P0' | 'P1' | 'chaos';

/** One smoke check: returns the PASS detail, throws CheckFailure (FAIL) or CheckSkip (SKIP, with the reason). */
export interface SmokeCheck {
  id: string;
  phase: Phase;
  name: string;
  run(ctx: SmokeContext): Promise<string>;
}

const routerIssue = 'LLM-router issue';

interface InvokeOutcome {
  status: number;
  code?: string;
  message: string;
  headers?: Headers;
  provider?: string;
  tokens?: number;
}

/** One chat completion through the router with the openai SDK; never throws on an API error. */
async function chat(ctx: SmokeContext, apiKey: string, maxTokens = 8): Promise<InvokeOutcome> {
  try {
    const { data, response } = await ctx.openai(apiKey).chat.completions.create({
      model: ctx.target.model,
      messages: [{ role: 'user', content: `smoke ${ctx.runId}: answer OK` }],
      max_tokens: maxTokens,
    }).withResponse();
    return {
      status: response.status,
      message: data.choices[0]?.message?.content ?? '',
      headers: response.headers,
      provider: response.headers.get('x-switchyard-provider') ?? undefined,
      tokens: data.usage?.total_tokens,
    };
  } catch (error) {
    if (error instanceof OpenAI.APIError && error.status !== undefined) {
      return {
        status: error.status,
        code: typeof error.code === 'string' ? error.code : undefined,
        message: error.message,
        headers: error.headers as Headers | undefined,
      };
    }
    if (error instanceof OpenAI.APIConnectionError) throw new CheckFailure(`cannot reach the router: ${error.message}`);
    throw error;
  }
}

/** The run's first invoke; budget checks build on it and skip when it cannot reach a provider. */
function firstInvoke(ctx: SmokeContext): Promise<InvokeOutcome> {
  return ctx.once('invoke', async () => {
    await ctx.requireDeployed('llm-router', routerIssue);
    const { key } = await ctx.apiKey();
    return await chat(ctx, key);
  });
}

async function requireWorkingInvoke(ctx: SmokeContext): Promise<void> {
  const outcome = await firstInvoke(ctx);
  if (outcome.status !== 200) {
    throw new CheckSkip(`needs a working invoke; the router answered ${outcome.status} ${outcome.code ?? ''}`.trim());
  }
}

async function setBudget(ctx: SmokeContext, tenantId: string, limit: number): Promise<void> {
  const answer = await ctx.invoke('ops/budgets', {
    method: 'POST',
    bearer: ctx.requireServiceKey(),
    body: { tenant_id: tenantId, scope: 'tenant', unit: 'usd_micros', period: 'total', limit },
  });
  if (answer.status === 404 && errorCode(answer.body) === 'route_not_found') {
    throw new CheckSkip('ops budgets API is not deployed (tenant-economics issue)');
  }
  ctx.expectStatus(answer, 201, 'setting a budget');
}

/** GET /ops/invariant: the rows of usage_invariant_violations(). */
async function invariantViolations(ctx: SmokeContext): Promise<number> {
  const answer = await ctx.invoke('ops/invariant', { bearer: ctx.requireServiceKey() });
  if (answer.status === 404 && errorCode(answer.body) === 'route_not_found') {
    throw new CheckSkip('GET /ops/invariant is not deployed (tenant-economics issue)');
  }
  ctx.expectStatus(answer, 200, 'GET /ops/invariant');
  return (answer.body as { violations: unknown[] }).violations.length;
}

async function tenantUsage(ctx: SmokeContext, tenantId: string): Promise<{ requests: number; cost: number }> {
  const answer = await ctx.invoke(`ops/usage?tenant_id=${tenantId}`, { bearer: ctx.requireServiceKey() });
  ctx.expectStatus(answer, 200, 'GET /ops/usage');
  const [row] = (answer.body as { items: { requests: number; cost_usd_micros: number | string }[] }).items;
  return { requests: row?.requests ?? 0, cost: Number(row?.cost_usd_micros ?? 0) };
}

/** Budget conservation through real invokes: every answer well-formed, invariant empty after each round. */
async function conservation(ctx: SmokeContext, label: string, rounds: number[]): Promise<string> {
  await requireWorkingInvoke(ctx);
  const { key, tenantId } = await ctx.apiKey(label);
  const limit = 5_000_000;
  await setBudget(ctx, tenantId, limit);
  const statuses: number[] = [];
  for (const parallel of rounds) {
    const outcomes = await Promise.all(Array.from({ length: parallel }, () => chat(ctx, key)));
    for (const outcome of outcomes) {
      if (![200, 402].includes(outcome.status)) {
        throw new CheckFailure(`an invoke answered ${outcome.status} ${outcome.code ?? ''}`);
      }
      statuses.push(outcome.status);
    }
    const violations = await invariantViolations(ctx);
    if (violations > 0) throw new CheckFailure(`usage_invariant_violations() returned ${violations} rows mid-run`);
  }
  const usage = await tenantUsage(ctx, tenantId);
  const ok = statuses.filter((status) => status === 200).length;
  if (usage.requests !== ok) {
    throw new CheckFailure(`${ok} invokes succeeded but ${usage.requests} usage records exist`);
  }
  if (usage.cost > limit) throw new CheckFailure(`spent ${usage.cost} over the limit ${limit}`);
  return `${ok}/${statuses.length} served, ${usage.cost} µUSD spent of ${limit}, invariant empty after every round`;
}

export const smokeChecks: readonly SmokeCheck[] = [
  {
    id: 'P0-01',
    phase: 'P0',
    name: 'health',
    async run(ctx) {
      const answer = await ctx.invoke('readiness/health');
      ctx.expectStatus(answer, 200, 'GET /readiness/health');
      if ((answer.body as { status?: string }).status !== 'ok') throw new CheckFailure('health did not say ok');
      return 'readiness/health answered ok (supabase-js functions.invoke)';
    },
  },
  {
    id: 'P0-02',
    phase: 'P0',
    name: 'ready',
    async run(ctx) {
      const answer = await ctx.invoke('readiness/ready');
      const checks = (answer.body as { checks?: { name: string; status: string; detail: string }[] }).checks ?? [];
      const failed = checks.filter((check) => check.status === 'fail');
      if (answer.status !== 200) {
        throw new CheckFailure(
          `/ready answered ${answer.status}: ${failed.map((check) => `${check.name} (${check.detail})`).join('; ')}`,
        );
      }
      const skipped = checks.filter((check) => check.status === 'skip').map((check) => check.name);
      return `${checks.length - skipped.length} checks pass${
        skipped.length > 0 ? `, skipped: ${skipped.join(', ')}` : ''
      }`;
    },
  },
  {
    id: 'P0-03',
    phase: 'P0',
    name: 'auth: service role',
    async run(ctx) {
      const tenantId = await ctx.tenant();
      return `the service role created tenant ${tenantId}`;
    },
  },
  {
    id: 'P0-04',
    phase: 'P0',
    name: 'auth: missing apikey refused',
    async run(ctx) {
      const tenantId = await ctx.tenant();
      const answer = await ctx.rawFetch(`ops/tenants/${tenantId}`, {
        authorization: `Bearer ${ctx.requireServiceKey()}`,
      });
      ctx.expectStatus(answer, 401, 'a call without apikey');
      return `401 ${errorCode(answer.body) ?? ''} without the apikey header, even with the service role`.trim();
    },
  },
  {
    id: 'P0-05',
    phase: 'P0',
    name: 'auth: user JWT (HS256)',
    async run(ctx) {
      const tenantId = await ctx.tenant();
      const token = await ctx.userToken(crypto.randomUUID(), 'secret');
      const accepted = await ctx.invoke(`ops/tenants/${tenantId}`, { bearer: token });
      // Authenticated but not a member: RLS hides the tenant (404), which proves the token was accepted.
      ctx.expectStatus(accepted, 404, 'a valid user JWT on a tenant it is not a member of');
      const forged = await ctx.invoke(`ops/tenants/${tenantId}`, {
        bearer: await ctx.userToken(crypto.randomUUID(), 'secret', crypto.randomUUID().repeat(2)),
      });
      ctx.expectStatus(forged, 401, 'a JWT signed with another secret');
      return 'a signed user JWT is accepted (RLS hides other tenants: 404); a forged one gets 401';
    },
  },
  {
    id: 'P0-06',
    phase: 'P0',
    name: 'auth: JWKS with kid (ES256)',
    async run(ctx) {
      const tenantId = await ctx.tenant();
      const token = await ctx.userToken(crypto.randomUUID(), 'test-key');
      const accepted = await ctx.invoke(`ops/tenants/${tenantId}`, { bearer: token });
      ctx.expectStatus(accepted, 404, 'a JWKS-signed user JWT');
      const [header, payload, signature] = token.split('.');
      const otherKid = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(header, 'base64url').toString()), kid: 'not-in-jwks' }),
      )
        .toString('base64url');
      const unknownKid = await ctx.invoke(`ops/tenants/${tenantId}`, { bearer: `${otherKid}.${payload}.${signature}` });
      ctx.expectStatus(unknownKid, 401, 'a JWT with an unknown kid');
      return 'a token signed by the JWKS key (by kid) is accepted; an unknown kid gets 401';
    },
  },
  {
    id: 'P0-07',
    phase: 'P0',
    name: 'auth: tenant API key (openai SDK)',
    async run(ctx) {
      await ctx.requireDeployed('llm-router', routerIssue);
      const { key } = await ctx.apiKey();
      const models = await ctx.openai(key).models.list();
      const bogus = await ctx.openai(`sy_${crypto.randomUUID().replaceAll('-', '')}`).models.list().then(
        () => 200,
        (error: unknown) => (error instanceof OpenAI.APIError ? error.status : undefined),
      );
      if (bogus !== 401) throw new CheckFailure(`an unknown API key answered ${bogus}, not 401`);
      return `GET /v1/models with a tenant API key lists ${models.data.length} models; an unknown key gets 401`;
    },
  },
  {
    id: 'P0-08',
    phase: 'P0',
    name: 'invoke through the router',
    async run(ctx) {
      const outcome = await firstInvoke(ctx);
      if (outcome.status === 503 && outcome.code === 'provider_unavailable') {
        throw new CheckSkip(`no provider reachable with a key: ${outcome.message} (key-vault issue)`);
      }
      if (outcome.status !== 200) {
        throw new CheckFailure(`chat completion answered ${outcome.status} ${outcome.code ?? ''}: ${outcome.message}`);
      }
      return `chat completion served by ${outcome.provider ?? '?'} (${outcome.tokens ?? '?'} tokens)`;
    },
  },
  {
    id: 'P0-09',
    phase: 'P0',
    name: 'budget conservation, sequential (10)',
    run: (ctx) => conservation(ctx, 'sequential', Array.from({ length: 10 }, () => 1)),
  },
  {
    id: 'P0-10',
    phase: 'P0',
    name: 'budget conservation, concurrent (5 parallel)',
    run: (ctx) => conservation(ctx, 'concurrent', [5]),
  },
  {
    id: 'P0-11',
    phase: 'P0',
    name: 'usage invariant empty',
    async run(ctx) {
      const violations = await invariantViolations(ctx);
      if (violations > 0) throw new CheckFailure(`usage_invariant_violations() returned ${violations} rows`);
      return 'GET /ops/invariant: holds, no violation';
    },
  },
  {
    id: 'P1-01',
    phase: 'P1',
    name: 'DLQ round-trip',
    async run(ctx) {
      await ctx.requireDeployed('jobs', 'jobs/DLQ issue');
      await ctx.requireDeployed('dlq-list', 'jobs/DLQ issue');
      await ctx.requireDeployed('dlq-retry', 'jobs/DLQ issue');
      throw new CheckSkip(
        'a job kind that fails on purpose and a worker are not wired into the stack yet (jobs/DLQ issue)',
      );
    },
  },
  {
    id: 'P1-02',
    phase: 'P1',
    name: 'rate limit 429',
    async run(ctx) {
      await ctx.requireDeployed('llm-router', routerIssue);
      const { key, tenantId } = await ctx.apiKey('rate');
      const answer = await ctx.invoke('ops/rate-limits', {
        method: 'POST',
        bearer: ctx.requireServiceKey(),
        body: { tenant_id: tenantId, requests_per_minute: 1, burst: 0 },
      });
      if (answer.status === 404 && errorCode(answer.body) === 'route_not_found') {
        throw new CheckSkip('ops rate-limits API is not deployed (tenant-economics issue)');
      }
      ctx.expectStatus(answer, 201, 'setting a rate limit');
      for (let attempt = 1; attempt <= 3; attempt++) {
        const outcome = await chat(ctx, key);
        if (outcome.status !== 429) continue;
        const retryAfter = outcome.headers?.get('retry-after');
        const limit = outcome.headers?.get('x-ratelimit-limit-requests');
        if (!retryAfter || !limit) throw new CheckFailure('429 without retry-after and x-ratelimit-limit-requests');
        return `429 on call ${attempt} at 1 request/min (retry-after ${retryAfter} s, limit ${limit})`;
      }
      throw new CheckFailure('3 calls at 1 request/min and no 429');
    },
  },
  {
    id: 'P1-03',
    phase: 'P1',
    name: 'key rotation mid-traffic',
    async run(ctx) {
      await ctx.requireDeployed('keys', 'key-vault issue');
      await requireWorkingInvoke(ctx);
      throw new CheckSkip(
        'rotation under traffic needs a provider key stored in the vault for the smoke upstream (key-vault issue)',
      );
    },
  },
  {
    id: 'C-01',
    phase: 'chaos',
    name: 'duplicate finalization (SQL)',
    async run(ctx) {
      const sql = ctx.sql();
      const [present] = await sql<{ exists: boolean }[]>`
        select to_regprocedure('public.usage_invariant_violations()') is not null as exists`;
      if (!present.exists) throw new CheckSkip('the budget saga is not migrated (tenant-economics issue)');
      const tenantId = await ctx.tenant('chaos');
      await setBudget(ctx, tenantId, 1_000_000);
      const requestId = `${ctx.runId}-dup`;
      const status = (row: { answer: { status: string } }[]) => row[0].answer.status;
      const reserved = status(
        await sql<{ answer: { status: string } }[]>`
        select public.reserve_budget(${requestId}, ${tenantId}, null, 'smoke-model', 1000, 10) as answer`,
      );
      const settle = () =>
        sql<{ answer: { status: string } }[]>`
        select public.settle_budget(${requestId}, 5, 5, 800, 'smoke', 'smoke-model') as answer`;
      const first = status(await settle());
      const second = status(await settle());
      const release = status(
        await sql<{ answer: { status: string } }[]>`
        select public.release_budget(${requestId}) as answer`,
      );
      if (`${reserved} ${first} ${second} ${release}` !== 'reserved settled duplicate duplicate') {
        throw new CheckFailure(`reserve/settle/settle/release answered ${reserved}/${first}/${second}/${release}`);
      }
      const [usage] = await sql<{ records: number; cost: string }[]>`
        select count(*)::int as records, coalesce(sum(cost_usd_micros), 0)::text as cost from public.usage_records where request_id = ${requestId}`;
      if (usage.records !== 1 || usage.cost !== '800') {
        throw new CheckFailure(`${usage.records} usage records costing ${usage.cost} after a double settle`);
      }
      const violations = await invariantViolations(ctx);
      if (violations > 0) throw new CheckFailure(`usage_invariant_violations() returned ${violations} rows`);
      return 'second settle and a late release answer duplicate; one usage record; invariant empty';
    },
  },
  {
    id: 'C-02',
    phase: 'chaos',
    name: 'over budget 402',
    async run(ctx) {
      await ctx.requireDeployed('llm-router', routerIssue);
      const { key, tenantId } = await ctx.apiKey('over-budget');
      await setBudget(ctx, tenantId, 0);
      const outcome = await chat(ctx, key);
      if (outcome.status !== 402 || outcome.code !== 'budget_exceeded') {
        throw new CheckFailure(`a request over a zero budget answered ${outcome.status} ${outcome.code ?? ''}`);
      }
      const usage = await tenantUsage(ctx, tenantId);
      if (usage.requests !== 0) throw new CheckFailure(`a refused request left ${usage.requests} usage records`);
      return '402 budget_exceeded (OpenAI error shape), nothing recorded';
    },
  },
  {
    id: 'C-03',
    phase: 'chaos',
    name: 'concurrent burst of 10',
    async run(ctx) {
      await ctx.requireDeployed('llm-router', routerIssue);
      const { key, tenantId } = await ctx.apiKey('burst');
      await setBudget(ctx, tenantId, 5_000_000);
      const outcomes = await Promise.all(Array.from({ length: 10 }, () => chat(ctx, key)));
      const counts = new Map<string, number>();
      for (const outcome of outcomes) {
        const label = `${outcome.status}${outcome.code ? ` ${outcome.code}` : ''}`;
        counts.set(label, (counts.get(label) ?? 0) + 1);
        const expected = outcome.status === 200 || outcome.status === 402 || outcome.status === 429 ||
          (outcome.status === 503 && outcome.code === 'provider_unavailable');
        if (!expected) throw new CheckFailure(`a burst request answered ${label}: ${outcome.message}`);
      }
      const violations = await invariantViolations(ctx);
      if (violations > 0) {
        throw new CheckFailure(`usage_invariant_violations() returned ${violations} rows after the burst`);
      }
      const summary = [...counts].map(([label, count]) => `${count}× ${label}`).join(', ');
      return `10 parallel requests answered (${summary}); invariant empty`;
    },
  },
  {
    id: 'C-04',
    phase: 'chaos',
    name: 'upstream fails then recovers',
    async run(ctx) {
      await ctx.requireDeployed('llm-router', routerIssue);
      await requireWorkingInvoke(ctx);
      throw new CheckSkip(
        'needs a fault-injecting upstream in the catalog with a vault key (LLM-router and key-vault issues)',
      );
    },
  },
];
