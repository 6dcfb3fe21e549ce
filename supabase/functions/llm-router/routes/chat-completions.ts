import { Hono } from 'hono';
import { HttpError } from '../../_shared/errors.ts';
import { meteredRequestId } from '../../_shared/request-id.ts';
import { jsonBodyOf } from '../../_shared/validation.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { parseChatCompletionRequest } from '../../_shared/openai/schemas.ts';
import type { ChatCompletionRequest, ChatCompletionResponse } from '../../_shared/openai/types.ts';
import { RequestMappingError } from '../../_shared/providers/errors.ts';
import { getProviderAdapter } from '../../_shared/providers/registry.ts';
import type { ModelCapability } from '../../_shared/router/catalog.ts';
import { dispatch } from '../../_shared/router/dispatch.ts';
import type { RouteRequest } from '../../_shared/router/plan.ts';
import { isInvalidJson, isRefusal, type QualityOutcome, signalOf } from '../../_shared/router/quality-signals.ts';
import { countPromptTokens, countTextTokens, hasImages } from '../../_shared/router/tokens.ts';
import { planAndReserve, releaseRequest, settleRequest } from '../accounting.ts';
import { exchangeJson } from '../../_shared/router/upstream.ts';
import { answerFromCache } from '../cache.ts';
import {
  cacheTtlSeconds,
  findCachedResponse,
  responseCacheKey,
  storeCachedResponse,
} from '../../_shared/economics/response-cache.ts';
import { clientSignal, planRequest, requestTenant, type RouterServices, setRouteHeaders } from '../services.ts';
import { openChatStream, streamResponse } from '../stream.ts';
import { chatContext, mappingRefusal } from '../chat-context.ts';

function requiredCapabilities(request: ChatCompletionRequest): ModelCapability[] {
  const requires: ModelCapability[] = ['chat'];
  if (request.stream) requires.push('stream');
  if (request.tools && request.tools.length > 0) requires.push('tools');
  if (hasImages(request.messages)) requires.push('vision');
  if (request.response_format && request.response_format.type !== 'text') requires.push('json');
  return requires;
}

/** What the answer says about the model: a refusal, broken JSON in JSON mode, or fine. */
function answerOutcome(request: ChatCompletionRequest, response: ChatCompletionResponse): QualityOutcome {
  const choice = response.choices[0];
  if (!choice) return 'error';
  if (isRefusal(choice)) return 'refusal';
  const jsonMode = request.response_format !== undefined && request.response_format.type !== 'text';
  if (jsonMode && isInvalidJson(choice.message.content)) return 'invalid_json';
  return 'ok';
}

export function chatCompletionRoutes(services: RouterServices) {
  const app = new Hono<AppEnv>();

  app.post('/', async (c) => {
    const tenant = await requestTenant(c, services);
    const parsed = parseChatCompletionRequest(await jsonBodyOf(c));
    if (!parsed.ok) throw new HttpError('validation_failed', parsed.message, { param: parsed.param });
    const request = parsed.value;
    const { requestId, chosenByCaller } = meteredRequestId(c);
    const created = Math.floor(services.deps.clock.now().getTime() / 1000);
    const snapshot = await services.catalog.get();
    const promptTokens = countPromptTokens(request.messages, request.tools);
    const requestedMaxTokens = request.max_completion_tokens ?? request.max_tokens;
    const route: RouteRequest = {
      tenantId: tenant.tenantId,
      userId: tenant.userId,
      alias: request.model,
      domain: c.req.header('x-switchyard-domain'),
      requires: requiredCapabilities(request),
      promptTokens,
      maxOutputTokens: requestedMaxTokens,
      requestId,
    };
    const firstPlan = planRequest(services, snapshot, route);
    const started = services.deps.clock.now().getTime();
    const cacheTtl = cacheTtlSeconds(
      c.req.header('x-switchyard-cache'),
      firstPlan.policy?.cacheTtlSeconds,
      services.deps.config.economics.cacheDefaultTtlSeconds,
    );
    const cacheKey = cacheTtl > 0 ? await responseCacheKey(request) : undefined;
    if (cacheKey) {
      const cached = await findCachedResponse(services.deps.db, tenant.tenantId, cacheKey);
      if (cached) return answerFromCache(c, services, tenant, request, cached, started);
      c.header('x-switchyard-cache', 'miss');
    }
    const { plan, reservation } = await planAndReserve(c, services, snapshot, route, firstPlan, {
      tenant,
      requestId,
      chosenByCaller,
      alias: request.model,
      promptTokens,
      requestedMaxTokens,
    });
    // The token guard may have lowered max_tokens to what the budget allows.
    const effective: ChatCompletionRequest = reservation.capped
      ? { ...request, max_tokens: reservation.maxOutputTokens, max_completion_tokens: undefined }
      : request;
    const signal = clientSignal(c);

    try {
      if (effective.stream) {
        const result = await dispatch(
          plan,
          tenant.tenantId,
          requestId,
          signal,
          services.dispatch,
          ({ candidate, apiKey }) =>
            openChatStream(
              services,
              effective,
              chatContext(effective, candidate, apiKey, requestId, created),
              candidate,
              signal,
            ),
        );
        services.signals.record(signalOf(tenant.tenantId, plan, result.value.candidate, 'ok'));
        setRouteHeaders(c, plan, result);
        // From here the stream owns the reservation: it settles what was produced.
        return streamResponse(c, services, result.value, (outcome) =>
          settleRequest(services, requestId, {
            model: result.value.candidate.model,
            provider: result.value.candidate.provider.slug,
            promptTokens: outcome.usage?.prompt_tokens ?? promptTokens,
            completionTokens: outcome.usage?.completion_tokens ?? countTextTokens(outcome.producedText),
            latencyMs: services.deps.clock.now().getTime() - started,
            status: outcome.complete ? 'succeeded' : 'cancelled',
          }));
      }

      const result = await dispatch(
        plan,
        tenant.tenantId,
        requestId,
        signal,
        services.dispatch,
        async ({ candidate, apiKey }) => {
          const adapter = getProviderAdapter(candidate.provider.kind);
          const context = chatContext(effective, candidate, apiKey, requestId, created);
          let upstreamRequest;
          try {
            upstreamRequest = adapter.buildChatRequest(effective, context);
          } catch (error) {
            if (error instanceof RequestMappingError) throw mappingRefusal(error);
            throw error;
          }
          const body = await exchangeJson(services.deps.fetch, upstreamRequest, candidate.provider, adapter, signal);
          return adapter.parseChatResponse(body, context);
        },
      );
      const response: ChatCompletionResponse = result.value;
      services.signals.record(signalOf(tenant.tenantId, plan, result.candidate, answerOutcome(effective, response)));
      await settleRequest(services, requestId, {
        model: result.candidate.model,
        provider: result.candidate.provider.slug,
        promptTokens: response.usage?.prompt_tokens ?? promptTokens,
        completionTokens: response.usage?.completion_tokens ??
          countTextTokens(response.choices.map((choice) => choice.message.content ?? '').join('')),
        latencyMs: services.deps.clock.now().getTime() - started,
        status: 'succeeded',
      });
      // A streaming miss is not stored; a stored answer serves both kinds.
      if (cacheKey) {
        await storeCachedResponse(services.deps.db, tenant.tenantId, cacheKey, request.model, response, cacheTtl);
      }
      setRouteHeaders(c, plan, result);
      return c.json(response);
    } catch (error) {
      await releaseRequest(services, requestId, error instanceof HttpError ? error.code : 'error');
      throw error;
    }
  });

  return app;
}
