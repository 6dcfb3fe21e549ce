import type { MetricType } from './exposition.ts';

export interface MetricDescription {
  name: string;
  help: string;
  type: MetricType;
  labels: readonly string[];
  /** Where the figures come from: this isolate's memory, or the database (survives isolates). */
  source: 'isolate' | 'database';
}

function describe(
  name: string,
  type: MetricType,
  labels: readonly string[],
  source: MetricDescription['source'],
  help: string,
) {
  return { name, type, labels, source, help } as const satisfies MetricDescription;
}

/** Latency buckets in seconds: 5 ms to a minute (LLM calls are slow, everything else fast). */
export const latencyBuckets: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Every metric family the metrics function can export: dashboards and alerts may use only these. */
export const metricCatalog = {
  httpRequests: describe(
    'switchyard_http_requests_total',
    'counter',
    ['function', 'route', 'method', 'status', 'provider', 'model'],
    'isolate',
    'HTTP requests answered, by function, route pattern, method, status, and the provider and model that served them.',
  ),
  httpDuration: describe(
    'switchyard_http_request_duration_seconds',
    'histogram',
    ['function', 'route', 'method'],
    'isolate',
    'Time to the response headers, in seconds.',
  ),
  httpInFlight: describe(
    'switchyard_http_requests_in_flight',
    'gauge',
    ['function'],
    'isolate',
    'Requests being handled now.',
  ),
  upstreamErrors: describe(
    'switchyard_upstream_errors_total',
    'counter',
    ['function', 'provider', 'type'],
    'isolate',
    'Requests that failed upstream after retries, by error type (upstream_error, upstream_timeout, provider_unavailable).',
  ),
  rateLimitRejections: describe(
    'switchyard_rate_limit_rejections_total',
    'counter',
    ['function'],
    'isolate',
    'Requests refused with 429 rate_limited.',
  ),
  budgetRejections: describe(
    'switchyard_budget_rejections_total',
    'counter',
    ['function'],
    'isolate',
    'Requests refused with 402 budget_exceeded.',
  ),
  isolateStart: describe(
    'switchyard_isolate_start_time_seconds',
    'gauge',
    [],
    'isolate',
    'Unix time this isolate started; in-memory counters restart with it.',
  ),
  databaseUp: describe(
    'switchyard_database_up',
    'gauge',
    [],
    'database',
    '1 when the database answered this scrape, else 0.',
  ),
  sourceUp: describe(
    'switchyard_metrics_source_up',
    'gauge',
    ['source'],
    'database',
    '1 when a database source was collected, 0 when its query failed; absent until its tables exist.',
  ),
  scrapeDuration: describe(
    'switchyard_metrics_scrape_duration_seconds',
    'gauge',
    [],
    'database',
    'Time the database part of this scrape took.',
  ),
  llmRequests: describe(
    'switchyard_llm_requests_total',
    'counter',
    ['provider', 'model', 'status', 'cache_hit'],
    'database',
    'Finished LLM requests (usage records).',
  ),
  llmTokens: describe(
    'switchyard_llm_tokens_total',
    'counter',
    ['provider', 'model', 'kind'],
    'database',
    'Tokens used by finished LLM requests, prompt or completion.',
  ),
  llmCost: describe(
    'switchyard_llm_cost_usd_total',
    'counter',
    ['provider', 'model'],
    'database',
    'Cost charged for finished LLM requests, in USD.',
  ),
  llmOverflow: describe(
    'switchyard_llm_cost_overflow_usd_total',
    'counter',
    [],
    'database',
    'Actual cost above the reservation, recorded outside the budgets, in USD.',
  ),
  reservationsOpen: describe(
    'switchyard_budget_reservations_open',
    'gauge',
    [],
    'database',
    'Budget reservations neither settled nor released.',
  ),
  reservationsExpired: describe(
    'switchyard_budget_reservations_expired',
    'gauge',
    [],
    'database',
    'Open reservations past their expiry, waiting for the reaper.',
  ),
  invariantViolations: describe(
    'switchyard_usage_invariant_violations',
    'gauge',
    [],
    'database',
    'Rows returned by usage_invariant_violations(); 0 when budget conservation holds.',
  ),
  jobs: describe('switchyard_jobs', 'gauge', ['state'], 'database', 'Jobs by state.'),
  oldestQueuedAge: describe(
    'switchyard_jobs_oldest_queued_age_seconds',
    'gauge',
    [],
    'database',
    'Age of the oldest job due and waiting for a worker, in seconds (0 when none).',
  ),
  dlqDepth: describe('switchyard_dlq_depth', 'gauge', [], 'database', 'Dead letters not requeued.'),
  deadLetters: describe(
    'switchyard_job_dead_letters_total',
    'counter',
    [],
    'database',
    'Jobs that ever went to the dead-letter queue.',
  ),
  providerUp: describe(
    'switchyard_provider_up',
    'gauge',
    ['provider', 'model'],
    'database',
    '1 when the provider is up or degraded, 0 when down (circuit open), per upstream model.',
  ),
  providerErrorRatio: describe(
    'switchyard_provider_error_ratio',
    'gauge',
    ['provider', 'model'],
    'database',
    'Recent upstream error ratio (0 to 1).',
  ),
  providerLatencyP95: describe(
    'switchyard_provider_latency_p95_seconds',
    'gauge',
    ['provider', 'model'],
    'database',
    'Recent upstream p95 latency, in seconds.',
  ),
  providerHealthAge: describe(
    'switchyard_provider_health_age_seconds',
    'gauge',
    ['provider', 'model'],
    'database',
    'Seconds since the provider health row was updated.',
  ),
  modelReputation: describe(
    'switchyard_model_reputation',
    'gauge',
    ['provider', 'model', 'domain'],
    'database',
    'Global model reputation (0..1) from feedback and automatic signals; domain "" covers every domain.',
  ),
} as const;

export const metricNames: readonly string[] = Object.values(metricCatalog).map((metric) => metric.name);
