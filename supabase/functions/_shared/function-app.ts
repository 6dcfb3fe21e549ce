import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import type { AppDependencies } from './dependencies.ts';
import { createErrorHandler, errorBody, type ErrorFormat, HttpError } from './errors.ts';
import type { AppEnv } from './hono-env.ts';
import { operatorNetworkOnly } from './middleware/operator-network.ts';
import { requestLog } from './middleware/request-log.ts';
import { assignRequestId } from './request-id.ts';
import { isolateRequestMetrics, type RequestMetrics, requestMetricsMiddleware } from './metrics/request-metrics.ts';

export interface FunctionAppOptions {
  /** The LLM endpoints answer in OpenAI's error shape; everything else in the standard one. */
  errorFormat?: ErrorFormat;
  /** Operator endpoints answer only clients in OPS_ALLOWED_CIDRS (when set). */
  operatorEndpoint?: boolean;
  /** Where request counts and latencies go (default: this isolate's, which the metrics function exposes). */
  requestMetrics?: RequestMetrics;
}

const allowedRequestHeaders = [
  'authorization',
  'apikey',
  'content-type',
  'x-client-info',
  'x-request-id',
  'idempotency-key',
  'x-switchyard-domain',
  'x-switchyard-cache',
  'x-tenant-id',
  // Anthropic clients: the tenant key, and the headers a Messages request carries.
  'x-api-key',
  'anthropic-version',
  'anthropic-beta',
];

/**
 * The Hono app every function starts from: basePath `/<name>`, request id,
 * security headers, CORS from the allow-list, body-size limit, one error
 * handler rendering the error contract, and a JSON 404.
 */
export function createFunctionApp(name: string, deps: AppDependencies, options: FunctionAppOptions = {}) {
  const format = options.errorFormat ?? 'standard';
  const app = new Hono<AppEnv>().basePath(`/${name}`);
  const allowedOrigins = new Set(deps.config.allowedOrigins);

  app.use(requestId({ headerName: 'x-request-id', limitLength: 128, generator: assignRequestId }));
  app.use(requestMetricsMiddleware(options.requestMetrics ?? isolateRequestMetrics, name));
  app.use(requestLog(deps.logger, name));
  app.use(secureHeaders({
    strictTransportSecurity: 'max-age=63072000; includeSubDomains',
    xContentTypeOptions: 'nosniff',
    xFrameOptions: 'DENY',
    referrerPolicy: 'no-referrer',
    crossOriginResourcePolicy: false,
    crossOriginOpenerPolicy: false,
  }));
  const corsHeaders = cors({
    // Never "*": only origins on the allow-list get CORS headers.
    origin: (origin) => (allowedOrigins.has(origin) ? origin : null),
    allowHeaders: allowedRequestHeaders,
    allowMethods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    exposeHeaders: ['x-request-id', 'retry-after'],
    maxAge: 600,
  });
  // CORS is for browsers, which always send Origin. Hono's cors sets headers on a
  // placeholder response before the handler runs and with c.header() after it,
  // and each costs the response a copy; server-to-server calls (most LLM
  // traffic) skip it. Vary still tells caches the answer depends on Origin.
  app.use(async function corsForBrowsers(c, next) {
    if (c.req.header('origin') !== undefined) return corsHeaders(c, next);
    await next();
    c.res.headers.append('Vary', 'Origin');
  });
  app.use(bodyLimit({
    maxSize: deps.config.maxBodyBytes,
    onError: () => {
      throw new HttpError('payload_too_large', `request body exceeds ${deps.config.maxBodyBytes} bytes`);
    },
  }));
  // Read the (size-limited) body before any handler awaits other I/O: Deno
  // closes a keep-alive connection whose request body is still unread when
  // the response goes out, and every later reader takes it from this cache.
  // Parsing and checking it (validation.ts) comes after authentication.
  app.use(async function readBodyFirst(c, next) {
    if (c.req.raw.body) await c.req.text();
    await next();
  });

  if (options.operatorEndpoint) app.use(operatorNetworkOnly(deps.config.opsAllowedCidrs));

  app.onError(createErrorHandler(deps.logger, format));
  app.notFound((c) => {
    const error = new HttpError('route_not_found', `no route for ${c.req.method} ${c.req.path}`);
    return c.json(errorBody(error, format), error.status);
  });
  return app;
}
