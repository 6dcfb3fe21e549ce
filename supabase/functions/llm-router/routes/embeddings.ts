import { Hono } from 'hono';
import { HttpError } from '../../_shared/errors.ts';
import { meteredRequestId } from '../../_shared/request-id.ts';
import { jsonBodyOf } from '../../_shared/validation.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { parseEmbeddingsRequest } from '../../_shared/openai/schemas.ts';
import { getProviderAdapter } from '../../_shared/providers/registry.ts';
import type { EmbeddingsCallContext } from '../../_shared/providers/types.ts';
import { dispatch } from '../../_shared/router/dispatch.ts';
import type { RouteRequest } from '../../_shared/router/plan.ts';
import { countInputTokens } from '../../_shared/router/tokens.ts';
import { exchangeJson } from '../../_shared/router/upstream.ts';
import { planAndReserve, releaseRequest, settleRequest } from '../accounting.ts';
import { clientSignal, planRequest, requestTenant, type RouterServices, setRouteHeaders } from '../services.ts';

export function embeddingRoutes(services: RouterServices) {
  const app = new Hono<AppEnv>();

  app.post('/', async (c) => {
    const tenant = await requestTenant(c, services);
    const parsed = parseEmbeddingsRequest(await jsonBodyOf(c));
    if (!parsed.ok) throw new HttpError('validation_failed', parsed.message, { param: parsed.param });
    const request = parsed.value;
    const { requestId, chosenByCaller } = meteredRequestId(c);
    const promptTokens = countInputTokens(request.input);
    const snapshot = await services.catalog.get();
    const route: RouteRequest = {
      tenantId: tenant.tenantId,
      userId: tenant.userId,
      alias: request.model,
      domain: c.req.header('x-switchyard-domain'),
      requires: ['embeddings'],
      promptTokens,
      maxOutputTokens: 0,
      requestId,
    };
    const { plan } = await planAndReserve(c, services, snapshot, route, planRequest(services, snapshot, route), {
      tenant,
      requestId,
      chosenByCaller,
      alias: request.model,
      promptTokens,
      requestedMaxTokens: 0,
    });
    const signal = clientSignal(c);
    const started = services.deps.clock.now().getTime();
    let result;
    try {
      result = await dispatch(
        plan,
        tenant.tenantId,
        requestId,
        signal,
        services.dispatch,
        async ({ candidate, apiKey }) => {
          const adapter = getProviderAdapter(candidate.provider.kind);
          if (!adapter.buildEmbeddingsRequest || !adapter.parseEmbeddingsResponse) {
            throw new HttpError(
              'unsupported_parameter',
              `${candidate.provider.kind} providers have no embeddings API`,
              {
                param: 'model',
              },
            );
          }
          const context: EmbeddingsCallContext = {
            upstreamModel: candidate.model.upstreamModel,
            publicModel: request.model,
            apiKey,
            endpoint: {
              kind: candidate.provider.kind,
              baseUrl: candidate.provider.baseUrl,
              apiVersion: candidate.provider.apiVersion,
            },
            requestId,
          };
          const body = await exchangeJson(
            services.deps.fetch,
            adapter.buildEmbeddingsRequest(request, context),
            candidate.provider,
            adapter,
            signal,
          );
          return adapter.parseEmbeddingsResponse(body, context, request);
        },
      );
      await settleRequest(services, requestId, {
        model: result.candidate.model,
        provider: result.candidate.provider.slug,
        promptTokens: result.value.usage?.prompt_tokens ?? promptTokens,
        completionTokens: 0,
        latencyMs: services.deps.clock.now().getTime() - started,
        status: 'succeeded',
      });
    } catch (error) {
      await releaseRequest(services, requestId, error instanceof HttpError ? error.code : 'error');
      throw error;
    }
    setRouteHeaders(c, plan, result);
    return c.json(result.value);
  });

  return app;
}
