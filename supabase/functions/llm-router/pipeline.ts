// The metered pipeline: every endpoint that costs money runs these stages, in
// this order, and supplies only a dialect (its wire format). Read top to bottom:
//   authenticate -> parse -> (resolve) -> plan -> (cache) -> admit -> dispatch -> settle or release -> (keep)
import { type Context, Hono } from 'hono';
import { resolveTenant, type TenantContext } from '../_shared/auth/tenant.ts';
import {
  cacheTtlSeconds,
  findCachedResponse,
  recordCacheHit,
  storeCachedResponse,
} from '../_shared/economics/response-cache.ts';
import type { DialectName } from '../_shared/economics/ledger.ts';
import { admitRequest, releaseRequest, settleRequest } from '../_shared/economics/saga.ts';
import { HttpError } from '../_shared/errors.ts';
import type { AppEnv } from '../_shared/hono-env.ts';
import { getProviderAdapter } from '../_shared/providers/registry.ts';
import type { UpstreamRequest } from '../_shared/providers/types.ts';
import { meteredRequestId, requestIdAlreadyUsed } from '../_shared/request-id.ts';
import type { CatalogSnapshot, ModelCapability } from '../_shared/router/catalog.ts';
import { dispatch, type DispatchResult } from '../_shared/router/dispatch.ts';
import {
  bucketKey,
  planRoute,
  type RouteCandidate,
  type RoutePlan,
  type RouteRequest,
} from '../_shared/router/plan.ts';
import { type QualityOutcome, signalOf } from '../_shared/router/quality-signals.ts';
import { exchangeJson, openUpstreamStream } from '../_shared/router/upstream.ts';
import { jsonBodyOf } from '../_shared/validation.ts';
import { admittedHeaders, type RateLimitHeaders, rateLimitHeaders, refusalError } from './ledger-answers.ts';
import type { RouterServices } from './services.ts';
import { primeStream, relayStream, type StreamSource, type TokenUsage } from './stream.ts';

/** The pipeline's own view of a request, whatever its wire format. */
export interface MeteredRequest<Wire> {
  /** The dialect's validated request, handed back to it for each upstream call. */
  wire: Wire;
  /** The `model` the client asked for. */
  alias: string;
  requires: ModelCapability[];
  /** Estimated prompt tokens (settlement uses the upstream's count when it reports one). */
  promptTokens: number;
  /** max_tokens asked for; undefined = the model's maximum; 0 for endpoints that produce no tokens. */
  maxOutputTokens?: number;
  stream: boolean;
}

/** One upstream call: this request (capped when the token guard lowered max_tokens) to this candidate. */
export interface Attempt<Wire> {
  request: MeteredRequest<Wire>;
  candidate: RouteCandidate;
  apiKey: string;
  requestId: string;
  /** Unix seconds: the `created` of the answer. */
  created: number;
}

/** What a dialect's database stages (resolve, keep) act with. */
export interface DialectContext {
  services: RouterServices;
  tenant: TenantContext;
  requestId: string;
}

/** What an endpoint supplies: its wire format in and out. Everything else is the pipeline's. */
export interface Dialect<Wire, Answer> {
  /** What usage records call this wire format (usage_records.dialect). */
  name: DialectName;
  /** Validates the JSON body (HttpError 400 naming the field); headers for what a dialect forwards. */
  parse(body: unknown, headers: Headers): MeteredRequest<Wire>;
  /** The request with the token guard's lower output limit. */
  withMaxTokens(wire: Wire, maxOutputTokens: number): Wire;
  /** The upstream request for this attempt (the adapter's mapping; a 400 when it cannot express it). */
  upstreamRequest(attempt: Attempt<Wire>): UpstreamRequest;
  /** The upstream's JSON body as this dialect's answer. */
  answer(body: unknown, attempt: Attempt<Wire>): Answer;
  usage(answer: Answer): TokenUsage;
  render(c: Context<AppEnv>, answer: Answer): Response;
  /** What the answer says about the model (refusal, broken JSON); no signal when absent. */
  outcome?(request: Wire, answer: Answer): QualityOutcome;
  /** The upstream's SSE body as the client's stream (streaming dialects only). */
  streamSource?(body: ReadableStream<Uint8Array>, attempt: Attempt<Wire>): StreamSource<Answer>;
  /** After parse: what the request needs from the database (the stored conversation it continues). */
  resolve?(request: MeteredRequest<Wire>, context: DialectContext): Promise<MeteredRequest<Wire>>;
  /** After settlement: keeps a complete answer (stored Responses). A failure is logged; the answer stands. */
  keep?(answer: Answer, request: MeteredRequest<Wire>, context: DialectContext): Promise<void>;
  /** Rate-limit headers in this dialect's names (default: OpenAI's x-ratelimit-*). */
  rateLimitHeaders?: RateLimitHeaders;
  /** The exact-match response cache (dialects whose answers may be stored). */
  cache?: {
    key(wire: Wire): Promise<string>;
    /** A stored answer as this request's: its id, time and model. */
    restore(stored: Answer, request: MeteredRequest<Wire>, requestId: string, created: number): Answer;
    render(c: Context<AppEnv>, answer: Answer, request: MeteredRequest<Wire>): Response;
  };
}

/** A Hono sub-app answering POST / with the metered pipeline in this dialect. */
export function meteredRoute<Wire, Answer>(services: RouterServices, dialect: Dialect<Wire, Answer>) {
  return new Hono<AppEnv>().post('/', (c) => runPipeline(c, services, dialect));
}

async function runPipeline<Wire, Answer>(
  c: Context<AppEnv>,
  services: RouterServices,
  dialect: Dialect<Wire, Answer>,
): Promise<Response> {
  const tenant = await authenticate(c, services);
  const parsed = dialect.parse(await jsonBodyOf(c), c.req.raw.headers);
  const { requestId, chosenByCaller } = meteredRequestId(c);
  const context: DialectContext = { services, tenant, requestId };
  const request = dialect.resolve ? await dialect.resolve(parsed, context) : parsed;
  const now = () => services.deps.clock.now().getTime();
  const created = Math.floor(now() / 1000);
  const snapshot = await services.catalog.get();
  const route: RouteRequest = {
    tenantId: tenant.tenantId,
    userId: tenant.userId,
    alias: request.alias,
    domain: c.req.header('x-switchyard-domain'),
    requires: request.requires,
    promptTokens: request.promptTokens,
    maxOutputTokens: request.maxOutputTokens,
    requestId,
  };
  const firstPlan = plan(services, snapshot, route);
  const started = now();
  const cache = await lookUpCache(c, services, dialect, tenant, request, firstPlan);
  if (cache.hit) return cache.hit;
  const { plan: chosen, request: admitted } = await admit(c, services, snapshot, route, firstPlan, {
    tenant,
    request,
    dialect,
    requestId,
    chosenByCaller,
  });
  const signal = c.req.raw.signal; // Deno aborts it when the client disconnects
  const attempt = (candidate: RouteCandidate, apiKey: string): Attempt<Wire> => ({
    request: admitted,
    candidate,
    apiKey,
    requestId,
    created,
  });
  const settle = (candidate: RouteCandidate, usage: TokenUsage, status: 'succeeded' | 'cancelled') =>
    settleRequest(services.ledger, services.deps.logger, requestId, {
      model: candidate.model,
      provider: candidate.provider.slug,
      dialect: dialect.name,
      promptTokens: usage.promptTokens ?? request.promptTokens,
      completionTokens: usage.completionTokens,
      cacheWriteTokens: usage.cacheWriteTokens ?? 0,
      cacheReadTokens: usage.cacheReadTokens ?? 0,
      latencyMs: now() - started,
      status,
    });

  try {
    if (admitted.stream && dialect.streamSource) {
      const streamSource = dialect.streamSource.bind(dialect);
      const result = await dispatch(chosen, tenant.tenantId, requestId, signal, services.dispatch, async (input) => {
        const call = attempt(input.candidate, input.apiKey);
        const startedAt = now();
        const exchange = await openUpstreamStream(
          services.deps.fetch,
          dialect.upstreamRequest(call),
          input.candidate.provider,
          getProviderAdapter(input.candidate.provider.kind),
          signal,
          services.deps.clock,
        );
        return primeStream(input.candidate, exchange, streamSource(exchange.response.body, call), startedAt);
      });
      services.signals.record(signalOf(tenant.tenantId, chosen, result.candidate, 'ok'));
      setRouteHeaders(c, chosen, result);
      // From here the stream owns the admission: it settles what was produced.
      return relayStream(c, services, result.value, async (outcome) => {
        await settle(result.candidate, outcome.usage, outcome.complete ? 'succeeded' : 'cancelled');
        if (outcome.answer !== undefined) await keep(services, dialect, outcome.answer, admitted, context);
      });
    }

    const result = await dispatch(chosen, tenant.tenantId, requestId, signal, services.dispatch, async (input) => {
      const call = attempt(input.candidate, input.apiKey);
      const { provider } = input.candidate;
      const adapter = getProviderAdapter(provider.kind);
      const body = await exchangeJson(
        services.deps.fetch,
        dialect.upstreamRequest(call),
        provider,
        adapter,
        signal,
        services.deps.clock,
      );
      return dialect.answer(body, call);
    });
    if (dialect.outcome) {
      const outcome = dialect.outcome(admitted.wire, result.value);
      services.signals.record(signalOf(tenant.tenantId, chosen, result.candidate, outcome));
    }
    await settle(result.candidate, dialect.usage(result.value), 'succeeded');
    await keep(services, dialect, result.value, admitted, context);
    // A streaming miss is not stored; a stored answer serves both kinds.
    if (cache.key) {
      await storeCachedResponse(services.deps.db, tenant.tenantId, cache.key, request.alias, result.value, cache.ttl);
    }
    setRouteHeaders(c, chosen, result);
    return dialect.render(c, result.value);
  } catch (error) {
    await releaseRequest(
      services.ledger,
      services.deps.logger,
      requestId,
      error instanceof HttpError ? error.code : 'error',
    );
    throw error;
  }
}

/** authenticate: the tenant this request acts for (the caller was verified by the middleware). */
function authenticate(c: Context<AppEnv>, services: RouterServices): Promise<TenantContext> {
  return resolveTenant(services.deps.db, c.get('caller'), c.req.header('x-tenant-id'));
}

/**
 * plan: the request's route with this isolate's circuit breaker and the A/B
 * buckets known to be over their cap (remembered for one catalog TTL, so a
 * raised cap applies again within it).
 */
export function plan(
  services: RouterServices,
  snapshot: CatalogSnapshot,
  request: RouteRequest,
  alsoSpent: readonly string[] = [],
): RoutePlan {
  const now = services.deps.clock.now();
  const spent = new Set<string>(alsoSpent);
  for (const [key, until] of services.spentBuckets) {
    if (until > now.getTime()) spent.add(key);
    else services.spentBuckets.delete(key);
  }
  return planRoute(snapshot, request, {
    now,
    isCoolingDown: (providerId, model) => services.health.isCoolingDown(providerId, model),
    random: services.random,
    spentBuckets: spent,
  });
}

/**
 * cache: an exact-match hit answers at zero cost, no admission, with a usage
 * record marked as a hit; a miss says how long to store the answer.
 */
async function lookUpCache<Wire, Answer>(
  c: Context<AppEnv>,
  services: RouterServices,
  dialect: Dialect<Wire, Answer>,
  tenant: TenantContext,
  request: MeteredRequest<Wire>,
  firstPlan: RoutePlan,
): Promise<{ hit?: Response; key?: string; ttl: number }> {
  if (!dialect.cache) return { ttl: 0 };
  const ttl = cacheTtlSeconds(
    c.req.header('x-switchyard-cache'),
    firstPlan.policy?.cacheTtlSeconds,
    services.deps.config.economics.cacheDefaultTtlSeconds,
  );
  if (ttl <= 0) return { ttl };
  const key = await dialect.cache.key(request.wire);
  const stored = await findCachedResponse<Answer>(services.deps.db, tenant.tenantId, key);
  if (stored === undefined) {
    c.header('x-switchyard-cache', 'miss');
    return { key, ttl };
  }
  const started = services.deps.clock.now().getTime();
  const requestId = c.get('requestId');
  const answer = dialect.cache.restore(stored, request, requestId, Math.floor(started / 1000));
  const usage = dialect.usage(answer);
  const recorded = await recordCacheHit(services.deps.db, {
    requestId,
    tenant,
    alias: request.alias,
    dialect: dialect.name,
    promptTokens: usage.promptTokens ?? 0,
    completionTokens: usage.completionTokens,
    latencyMs: services.deps.clock.now().getTime() - started,
  });
  // Not recorded: the id is already used (a reservation or another usage record has it).
  if (!recorded) throw requestIdAlreadyUsed();
  c.header('x-switchyard-cache', 'hit');
  c.header('x-switchyard-route-reason', 'cache');
  return { hit: dialect.cache.render(c, answer, request), key, ttl };
}

/**
 * admit: reserves the estimate (a budget lease's slice, or a reservation of
 * its own). When the chosen A/B bucket's cap is spent, the bucket is
 * remembered as spent and the request planned again, into the control bucket.
 * Refusals are the caller's 402, 409 or 429.
 */
async function admit<Wire, Answer>(
  c: Context<AppEnv>,
  services: RouterServices,
  snapshot: CatalogSnapshot,
  route: RouteRequest,
  firstPlan: RoutePlan,
  input: {
    tenant: TenantContext;
    request: MeteredRequest<Wire>;
    dialect: Dialect<Wire, Answer>;
    requestId: string;
    chosenByCaller: boolean;
  },
): Promise<{ plan: RoutePlan; request: MeteredRequest<Wire> }> {
  const { tenant, request } = input;
  const headersOf = input.dialect.rateLimitHeaders ?? rateLimitHeaders;
  let chosen = firstPlan;
  for (let attempt = 0;; attempt++) {
    const admission = await admitRequest(services.ledger, {
      requestId: input.requestId,
      tenantId: tenant.tenantId,
      apiKeyId: tenant.apiKeyId ?? null,
      userId: tenant.userId ?? null,
      chosenByCaller: input.chosenByCaller,
      alias: request.alias,
      plan: chosen,
      promptTokens: request.promptTokens,
      requestedMaxTokens: request.maxOutputTokens,
      ttlSeconds: services.reservationTtlSeconds,
    });
    if (admission.status === 'admitted') {
      const headers = admittedHeaders(admission, headersOf, services.deps.clock.now());
      for (const [name, value] of Object.entries(headers)) c.header(name, value);
      if (!admission.capped) return { plan: chosen, request };
      const wire = input.dialect.withMaxTokens(request.wire, admission.maxOutputTokens);
      return { plan: chosen, request: { ...request, wire, maxOutputTokens: admission.maxOutputTokens } };
    }
    // One fallback is enough: the replanned request is in the control bucket, which is never spent.
    if (admission.status !== 'bucket_spent') throw refusalError(admission, headersOf, services.deps.clock.now());
    if (attempt > 0) throw refusalError({ status: 'over_budget' }, headersOf, services.deps.clock.now());
    const until = services.deps.clock.now().getTime() + services.deps.config.router.catalogTtlMs;
    services.spentBuckets.set(bucketKey(admission.policyId, admission.bucket), until);
    chosen = plan(services, snapshot, route, [bucketKey(admission.policyId, admission.bucket)]);
  }
}

/** keep: the dialect keeps the answer; the caller was charged and has it, so a failure here is only logged. */
async function keep<Wire, Answer>(
  services: RouterServices,
  dialect: Dialect<Wire, Answer>,
  answer: Answer,
  request: MeteredRequest<Wire>,
  context: DialectContext,
): Promise<void> {
  if (!dialect.keep) return;
  try {
    await dialect.keep(answer, request, context);
  } catch (error) {
    services.deps.logger.error('answer_not_kept', {
      request_id: context.requestId,
      message: error instanceof Error ? error.message : String(error),
    });
  }
}

/** Says which provider and model served the call, how many upstream calls it took, and why this route. */
function setRouteHeaders(c: Context<AppEnv>, chosen: RoutePlan, result: DispatchResult<unknown>): void {
  c.header('x-switchyard-provider', result.candidate.provider.slug);
  c.header('x-switchyard-model', result.candidate.model.upstreamModel);
  c.header('x-switchyard-attempts', String(result.attempts));
  c.header('x-switchyard-route-reason', chosen.reason);
}
