import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { matchedRoutes } from 'hono/route';
import { HttpError } from '../errors.ts';
import type { AppEnv } from '../hono-env.ts';
import { latencyBuckets, metricCatalog } from './catalog.ts';
import type { Labels, MetricFamily, Sample } from './exposition.ts';

type Series<T> = Map<string, { labels: Labels; value: T }>;

interface HistogramValue {
  buckets: number[];
  sum: number;
  count: number;
}

function seriesKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels));
}

function bump(series: Series<number>, labels: Labels, by: number): void {
  const key = seriesKey(labels);
  const entry = series.get(key);
  if (entry) entry.value += by;
  else series.set(key, { labels, value: by });
}

const upstreamFailureCodes = new Set(['upstream_error', 'upstream_timeout', 'provider_unavailable']);

/** What the middleware learned about one finished request. */
export interface RequestObservation {
  functionName: string;
  route: string;
  method: string;
  status: number;
  provider: string;
  model: string;
  durationSeconds: number;
  /** The error code the request was answered with, if any. */
  errorCode?: string;
}

/**
 * Request metrics kept in this isolate's memory. On Supabase each isolate
 * has its own and they restart with it: the durable counters (usage, jobs)
 * come from the database instead (see database-metrics.ts).
 */
export class RequestMetrics {
  readonly startedAtSeconds: number;
  #requests: Series<number> = new Map();
  #durations: Series<HistogramValue> = new Map();
  #inFlight: Series<number> = new Map();
  #upstreamErrors: Series<number> = new Map();
  #rateLimited: Series<number> = new Map();
  #budgetRefused: Series<number> = new Map();

  // The isolate's start time (process_start_time_seconds) is wall-clock by nature; tests pass `now`.
  constructor(now: () => number = Date.now) {
    this.startedAtSeconds = Math.floor(now() / 1000);
  }

  requestStarted(functionName: string): void {
    bump(this.#inFlight, { function: functionName }, 1);
  }

  requestFinished(observation: RequestObservation): void {
    const fn = observation.functionName;
    bump(this.#inFlight, { function: fn }, -1);
    bump(this.#requests, {
      function: fn,
      route: observation.route,
      method: observation.method,
      status: String(observation.status),
      provider: observation.provider,
      model: observation.model,
    }, 1);
    const histogramLabels = { function: fn, route: observation.route, method: observation.method };
    const key = seriesKey(histogramLabels);
    let histogram = this.#durations.get(key);
    if (!histogram) {
      histogram = { labels: histogramLabels, value: { buckets: latencyBuckets.map(() => 0), sum: 0, count: 0 } };
      this.#durations.set(key, histogram);
    }
    const value = histogram.value;
    latencyBuckets.forEach((bound, index) => {
      if (observation.durationSeconds <= bound) value.buckets[index] += 1;
    });
    value.sum += observation.durationSeconds;
    value.count += 1;

    const code = observation.errorCode;
    if (code && upstreamFailureCodes.has(code)) {
      bump(this.#upstreamErrors, { function: fn, provider: observation.provider, type: code }, 1);
    }
    if (code === 'rate_limited' || (!code && observation.status === 429)) bump(this.#rateLimited, { function: fn }, 1);
    if (code === 'budget_exceeded' || (!code && observation.status === 402)) {
      bump(this.#budgetRefused, { function: fn }, 1);
    }
  }

  /** A snapshot of every in-memory family, ready to render. */
  families(): MetricFamily[] {
    const plain = (series: Series<number>): Sample[] =>
      [...series.values()].map(({ labels, value }) => ({ labels, value }));
    const histogramSamples: Sample[] = [];
    for (const { labels, value } of this.#durations.values()) {
      latencyBuckets.forEach((bound, index) => {
        histogramSamples.push({
          suffix: '_bucket',
          labels: { ...labels, le: String(bound) },
          value: value.buckets[index],
        });
      });
      histogramSamples.push({ suffix: '_bucket', labels: { ...labels, le: '+Inf' }, value: value.count });
      histogramSamples.push({ suffix: '_sum', labels, value: value.sum });
      histogramSamples.push({ suffix: '_count', labels, value: value.count });
    }
    const family = (description: { name: string; help: string; type: MetricFamily['type'] }, samples: Sample[]) => ({
      name: description.name,
      help: description.help,
      type: description.type,
      samples,
    });
    return [
      family(metricCatalog.httpRequests, plain(this.#requests)),
      family(metricCatalog.httpDuration, histogramSamples),
      family(metricCatalog.httpInFlight, plain(this.#inFlight)),
      family(metricCatalog.upstreamErrors, plain(this.#upstreamErrors)),
      family(metricCatalog.rateLimitRejections, plain(this.#rateLimited)),
      family(metricCatalog.budgetRejections, plain(this.#budgetRefused)),
      family(metricCatalog.isolateStart, [{ labels: {}, value: this.startedAtSeconds }]),
    ];
  }
}

/** The isolate's own request metrics, shared by every function app it serves. */
export const isolateRequestMetrics = new RequestMetrics();

/**
 * The route pattern that matched (`/ops/tenants/:id`), never the raw path, so
 * label values stay few; `unmatched` when no route did.
 */
function routeLabel(c: Context<AppEnv>): string {
  const routes = matchedRoutes(c);
  for (let index = routes.length - 1; index >= 0; index--) {
    // Middleware take (c, next); route handlers take only c.
    if (routes[index].handler.length < 2) return routes[index].path;
  }
  return 'unmatched';
}

/** Counts and times every request of a function into `metrics`. */
export function requestMetricsMiddleware(metrics: RequestMetrics, functionName: string) {
  return createMiddleware<AppEnv>(async function measureRequest(c, next) {
    // A duration for the logs/metrics, not a time of day: the monotonic clock, nothing a test needs to move.
    const started = performance.now();
    metrics.requestStarted(functionName);
    try {
      await next();
    } finally {
      const error = c.error;
      metrics.requestFinished({
        functionName,
        route: routeLabel(c),
        method: c.req.method,
        status: c.res.status,
        provider: c.res.headers.get('x-switchyard-provider') ?? '',
        model: c.res.headers.get('x-switchyard-model') ?? '',
        durationSeconds: (performance.now() - started) / 1000,
        errorCode: error instanceof HttpError ? error.code : undefined,
      });
    }
  });
}
