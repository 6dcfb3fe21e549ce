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
  const model = await chatModel(ctx);
  try {
    const { data, response } = await ctx.openai(apiKey).chat.completions.create({
      model,
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

const demoModel = 'demo-chat';

/**
 * The chat model the run invokes: --model (SMOKE_MODEL), else `demo-chat`
 * when GET /llm-router/v1/models lists it (the local stack's demo provider),
 * else the first chat model listed; SKIP when the caller can ask for none.
 */
function chatModel(ctx: SmokeContext): Promise<string> {
  return ctx.once('model', async () => {
    if (ctx.target.model) return ctx.target.model;
    await ctx.requireDeployed('llm-router', routerIssue);
    const { key } = await ctx.apiKey();
    let ids: string[];
    try {
      ids = (await ctx.openai(key).models.list()).data.map((model) => model.id);
    } catch (error) {
      throw new CheckFailure(`GET /llm-router/v1/models failed: ${(error as Error).message}`);
    }
    if (ids.includes(demoModel)) return demoModel;
    const chatModels = ids.filter((id) => !/embed/i.test(id));
    if (chatModels.length === 0) {
      throw new CheckSkip('GET /llm-router/v1/models lists no chat model for this caller (pass --model)');
    }
    return chatModels.includes('gpt-4o-mini') ? 'gpt-4o-mini' : chatModels[0];
  });
}

interface LocalUpstream {
  /** The fake upstream's origin (its control API is /__fake/*). */
  url: string;
  provider: string;
  upstreamModel: string;
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]' || host === '::1';
}

/**
 * The provider behind the run's model when it is the local stack's fake
 * upstream (the demo provider): loopback stack, the provider's base URL on
 * loopback (read with --db-url / the local stack's DB_URL), and a fault
 * control API answering. SKIP with the reason otherwise.
 */
function localUpstream(ctx: SmokeContext): Promise<LocalUpstream> {
  return ctx.once('local-upstream', async () => {
    if (!isLoopback(ctx.target.functionsUrl)) {
      throw new CheckSkip(
        `only against a local stack with its demo upstream, not ${new URL(ctx.target.functionsUrl).host}`,
      );
    }
    const model = await chatModel(ctx);
    if (!ctx.target.databaseUrl) {
      throw new CheckSkip(
        'finding the local demo upstream needs the database URL (--db-url or the local stack status)',
      );
    }
    const rows = await ctx.sql()<{ slug: string; base_url: string | null; upstream_model: string }[]>`
      select p.slug, p.base_url, m.upstream_model
      from public.llm_models m join public.llm_providers p on p.id = m.provider_id
      where m.alias = ${model} and p.enabled
      order by p.slug`;
    const local = rows.filter((row) => row.base_url && isLoopback(row.base_url));
    if (local.length === 0 || local.length !== rows.length) {
      throw new CheckSkip(`model ${model} is not served only by a loopback (demo) upstream`);
    }
    const url = new URL(local[0].base_url as string).origin;
    const probe = await fetch(`${url}/__fake/faults`, { signal: AbortSignal.timeout(ctx.timeoutMs) }).catch(
      () => undefined,
    );
    if (probe?.status !== 200) {
      throw new CheckSkip(`the upstream of ${model} (${url}) has no fault control API (/__fake/faults)`);
    }
    return { url, provider: local[0].slug, upstreamModel: local[0].upstream_model };
  });
}

async function upstreamControl(upstream: LocalUpstream, method: 'POST' | 'DELETE', body?: unknown): Promise<void> {
  const response = await fetch(`${upstream.url}/__fake/faults`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  await response.body?.cancel();
  if (response.status >= 300) throw new CheckFailure(`${method} /__fake/faults answered ${response.status}`);
}

const smokeJobKind = 'smoke.fails-on-purpose';

interface ClaimedJob {
  id: string;
  lease_token: string;
}

/**
 * A small worker through the SQL functions, for the smoke kind only: a job
 * fails (non-retryable) into the DLQ on its first run and succeeds once
 * requeued from it, whichever run's worker claims it (runs may overlap, and
 * an interrupted run's leftovers are handled too). Works rounds (bounded)
 * until `jobId` reaches `until`; answers its last status.
 */
async function workUntil(ctx: SmokeContext, jobId: string, until: 'failed_dlq' | 'succeeded'): Promise<string> {
  const sql = ctx.sql();
  let status = 'unknown';
  for (let round = 1; round <= 20; round++) {
    const claimed = await sql<(ClaimedJob & { dead_lettered: boolean })[]>`
      select c.id, c.lease_token,
             exists (select 1 from public.job_dead_letters d where d.job_id = c.id) as dead_lettered
      from public.claim_jobs(${`${ctx.runId}-worker`}, array[${smokeJobKind}]::text[], 10, 30) c`;
    for (const job of claimed) {
      if (job.dead_lettered) {
        await sql`select public.complete_job(${job.id}::uuid, ${job.lease_token}::uuid, ${
          sql.json({ smoke: ctx.runId })
        })`;
      } else {
        await sql`select public.fail_job(${job.id}::uuid, ${job.lease_token}::uuid, 'smoke: fails on purpose', false)`;
      }
    }
    [{ status }] = await sql<{ status: string }[]>`select status from public.jobs where id = ${jobId}`;
    if (status === until) return status;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return status;
}

interface JobAnswer {
  id: string;
  status: string;
  attempts: number;
  events?: { event: string }[];
}

interface DeadLetterAnswer {
  job_id: string;
  last_error: string | null;
  requeued_at: string | null;
  requeued_by: string | null;
  requeue_reason: string | null;
  job_status: string;
}

/** The dead letters of the run's job: GET /dlq-list as the service role. */
async function deadLettersOf(ctx: SmokeContext, tenantId: string, jobId: string, status: string) {
  const answer = await ctx.invoke(`dlq-list?kind=${smokeJobKind}&tenant_id=${tenantId}&status=${status}&limit=200`, {
    bearer: ctx.requireServiceKey(),
  });
  ctx.expectStatus(answer, 200, 'GET /dlq-list');
  return (answer.body as { items: DeadLetterAnswer[] }).items.filter((item) => item.job_id === jobId);
}

async function getJob(ctx: SmokeContext, key: string, jobId: string): Promise<JobAnswer> {
  const answer = await ctx.invoke(`jobs/${jobId}`, { bearer: key });
  ctx.expectStatus(answer, 200, 'GET /jobs/:id');
  return answer.body as JobAnswer;
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
        throw new CheckSkip(
          `no usable model: no provider with a key serves ${await chatModel(ctx)} (${outcome.message}); ` +
            "store one with POST /keys, or use the local stack's demo provider",
        );
      }
      if (outcome.status !== 200) {
        throw new CheckFailure(`chat completion answered ${outcome.status} ${outcome.code ?? ''}: ${outcome.message}`);
      }
      return `chat completion of ${await chatModel(ctx)} served by ${outcome.provider ?? '?'} (${
        outcome.tokens ?? '?'
      } tokens)`;
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
      if (!ctx.target.databaseUrl) {
        throw new CheckSkip('the worker step needs the database URL (--db-url or the local stack status)');
      }
      const sql = ctx.sql();
      await sql`select public.register_job_kind(${smokeJobKind}, 'smoke runner: a job failed on purpose into the DLQ', 1, 60)`;
      const { key, tenantId } = await ctx.apiKey('dlq');
      const enqueued = await ctx.invoke('jobs', {
        method: 'POST',
        bearer: key,
        body: { kind: smokeJobKind, payload: { run: ctx.runId }, max_attempts: 1 },
      });
      ctx.expectStatus(enqueued, 201, 'POST /jobs');
      const jobId = (enqueued.body as JobAnswer).id;

      const failed = await workUntil(ctx, jobId, 'failed_dlq');
      if (failed !== 'failed_dlq') throw new CheckFailure(`the job failed by the worker is ${failed}, not failed_dlq`);
      const [letter] = await deadLettersOf(ctx, tenantId, jobId, 'pending');
      if (!letter) throw new CheckFailure(`job ${jobId} failed into the DLQ but GET /dlq-list does not show it`);

      const reason = `smoke ${ctx.runId}: DLQ round trip`;
      const retried = await ctx.invoke('dlq-retry', {
        method: 'POST',
        bearer: ctx.requireServiceKey(),
        body: { ids: [jobId], reason },
      });
      ctx.expectStatus(retried, 200, 'POST /dlq-retry');
      const requeued = (retried.body as { requeued: string[] }).requeued;
      if (requeued.length !== 1 || requeued[0] !== jobId) {
        throw new CheckFailure(`POST /dlq-retry requeued ${JSON.stringify(requeued)}, not the same job id ${jobId}`);
      }
      const again = await getJob(ctx, key, jobId);
      if (again.id !== jobId || again.status !== 'queued') {
        throw new CheckFailure(`after dlq-retry the job is ${again.status}, not queued`);
      }
      if (!again.events?.some((event) => event.event === 'requeued')) {
        throw new CheckFailure('the job has no requeued event');
      }
      const [audited] = await deadLettersOf(ctx, tenantId, jobId, 'requeued');
      if (!audited?.requeued_at || !audited.requeued_by || audited.requeue_reason !== reason) {
        throw new CheckFailure('the dead letter does not record who requeued it, when and why');
      }

      const ran = await workUntil(ctx, jobId, 'succeeded');
      const done = await getJob(ctx, key, jobId);
      if (ran !== 'succeeded' || done.status !== 'succeeded') {
        throw new CheckFailure(`the requeued job did not run again: it is ${done.status}`);
      }
      return `job ${jobId} failed into the DLQ, listed, requeued (same id, audited by ${audited.requeued_by}), ran again: succeeded`;
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
      // A secret the upstream accepts is only known for the local demo (fake) upstream.
      const upstream = await localUpstream(ctx);
      const { key, tenantId } = await ctx.apiKey('rotation');
      const stored = await ctx.invoke('keys', {
        method: 'POST',
        bearer: ctx.requireServiceKey(),
        body: {
          provider: upstream.provider,
          label: ctx.runId,
          secret: `smoke-${crypto.randomUUID()}`,
          tenant_id: tenantId,
        },
      });
      ctx.expectStatus(stored, 201, 'POST /keys');
      const keyId = (stored.body as { id: string }).id;

      const statuses = { before: [] as number[], during: [] as number[], after: [] as number[] };
      const send = async (phase: keyof typeof statuses, count: number) => {
        for (let i = 0; i < count; i++) statuses[phase].push((await chat(ctx, key)).status);
      };
      await send('before', 3);
      // Two request streams run while the key rotates under them.
      const traffic = Promise.all([send('during', 4), send('during', 4)]);
      const rotated = await ctx.invoke(`keys/${keyId}/rotate`, {
        method: 'POST',
        bearer: ctx.requireServiceKey(),
        body: { secret: `smoke-${crypto.randomUUID()}`, grace_seconds: 60 },
      });
      await traffic;
      ctx.expectStatus(rotated, 201, 'POST /keys/:id/rotate');
      await send('after', 3);

      const bad = Object.entries(statuses).flatMap(([phase, list]) =>
        list.filter((status) => status !== 200).map((status) => `${phase}: ${status}`)
      );
      if (bad.length > 0) throw new CheckFailure(`requests around the rotation failed (${bad.join(', ')})`);
      const metadata = await ctx.invoke(`keys/${keyId}`, { bearer: ctx.requireServiceKey() });
      ctx.expectStatus(metadata, 200, 'GET /keys/:id');
      const versions = (metadata.body as { versions?: { version: number; status: string }[] }).versions ?? [];
      const state = versions.map((version) => `v${version.version} ${version.status}`).sort().join(', ');
      if (state !== 'v1 grace, v2 active') throw new CheckFailure(`after the rotation the key versions are: ${state}`);
      const total = statuses.before.length + statuses.during.length + statuses.after.length;
      return `${total}/${total} requests answered 200 before, during and after rotating ${upstream.provider}'s key (${state})`;
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
      const working = (await firstInvoke(ctx)).status === 200;
      const { key, tenantId } = await ctx.apiKey('burst');
      await setBudget(ctx, tenantId, 5_000_000);
      const outcomes = await Promise.all(Array.from({ length: 10 }, () => chat(ctx, key)));
      const counts = new Map<string, number>();
      for (const outcome of outcomes) {
        const label = `${outcome.status}${outcome.code ? ` ${outcome.code}` : ''}`;
        counts.set(label, (counts.get(label) ?? 0) + 1);
        // Without a usable model every answer is 503 provider_unavailable; with one, that would be a failure.
        const expected = outcome.status === 200 || outcome.status === 402 || outcome.status === 429 ||
          (!working && outcome.status === 503 && outcome.code === 'provider_unavailable');
        if (!expected) throw new CheckFailure(`a burst request answered ${label}: ${outcome.message}`);
      }
      if (working && !counts.has('200')) throw new CheckFailure('no request of the burst was served');
      const served = outcomes.filter((outcome) => outcome.status === 200).length;
      const usage = await tenantUsage(ctx, tenantId);
      if (usage.requests !== served) {
        throw new CheckFailure(`${served} burst requests served but ${usage.requests} usage records exist`);
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
      const upstream = await localUpstream(ctx);
      const { key } = await ctx.apiKey('upstream-faults');
      await upstreamControl(upstream, 'DELETE');
      let during: InvokeOutcome;
      try {
        await upstreamControl(upstream, 'POST', {
          fault: { kind: 'status', status: 503 },
          times: 2,
          match: { model: upstream.upstreamModel },
        });
        during = await chat(ctx, key);
      } finally {
        await upstreamControl(upstream, 'DELETE');
      }
      if (during.status !== 200 && during.status !== 502) {
        throw new CheckFailure(
          `during the fault a request answered ${during.status} ${during.code ?? ''}, not 200 or 502`,
        );
      }
      // Failures may have opened the circuit breaker: the provider is back after its cooldown (bounded wait).
      let cooled = 0;
      for (;;) {
        const first = await chat(ctx, key);
        if (first.status === 200) break;
        if (first.status !== 503 || first.code !== 'provider_unavailable' || cooled >= 20) {
          throw new CheckFailure(`after the fault was cleared a request answered ${first.status} ${first.code ?? ''}`);
        }
        cooled += 1;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const after: number[] = [];
      for (let i = 0; i < 3; i++) after.push((await chat(ctx, key)).status);
      if (after.some((status) => status !== 200)) {
        throw new CheckFailure(`after the upstream recovered requests answered ${after.join(', ')}`);
      }
      const attempts = during.headers?.get('x-switchyard-attempts');
      return `2 upstream 503s: the request answered ${during.status}${
        attempts ? ` after ${attempts} attempts` : ''
      }; after clearing the fault ${
        cooled > 0 ? `the breaker cooled down (${cooled} refused), then ` : ''
      }4/4 answered 200`;
    },
  },
];
