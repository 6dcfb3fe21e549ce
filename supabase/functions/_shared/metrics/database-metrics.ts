import type { Database, Transaction } from '../db.ts';
import { type Capabilities, detectCapabilities } from '../readiness/capabilities.ts';
import { metricCatalog, type MetricDescription } from './catalog.ts';
import type { MetricFamily, Sample } from './exposition.ts';

const microsPerUsd = 1_000_000;

function family(description: MetricDescription, samples: Sample[]): MetricFamily {
  return { name: description.name, help: description.help, type: description.type, samples };
}

/** One group of families read from the tables of one capability. */
interface DatabaseSource {
  name: string;
  available(capabilities: Capabilities): boolean;
  collect(tx: Transaction): Promise<MetricFamily[]>;
}

const usageSource: DatabaseSource = {
  name: 'usage_records',
  available: (c) => c.usageRecords,
  async collect(tx) {
    const rows = await tx<{
      provider: string;
      model: string;
      status: string;
      cache_hit: boolean;
      requests: number;
      prompt_tokens: number;
      completion_tokens: number;
      cost_micros: number;
      overflow_micros: number;
    }[]>`
      select coalesce(provider, '') as provider, coalesce(upstream_model, model_alias, '') as model, status, cache_hit,
             count(*)::float8 as requests, sum(prompt_tokens)::float8 as prompt_tokens,
             sum(completion_tokens)::float8 as completion_tokens, sum(cost_usd_micros)::float8 as cost_micros,
             sum(overflow_usd_micros)::float8 as overflow_micros
      from public.usage_records
      group by 1, 2, 3, 4`;
    const cost = new Map<string, Sample>();
    const tokens: Sample[] = [];
    let overflow = 0;
    for (const row of rows) {
      const key = `${row.provider}\u0000${row.model}`;
      const entry = cost.get(key) ?? { labels: { provider: row.provider, model: row.model }, value: 0 };
      cost.set(key, { ...entry, value: entry.value + row.cost_micros / microsPerUsd });
      overflow += row.overflow_micros;
      tokens.push(
        { labels: { provider: row.provider, model: row.model, kind: 'prompt' }, value: row.prompt_tokens },
        { labels: { provider: row.provider, model: row.model, kind: 'completion' }, value: row.completion_tokens },
      );
    }
    return [
      family(
        metricCatalog.llmRequests,
        rows.map((row) => ({
          labels: { provider: row.provider, model: row.model, status: row.status, cache_hit: String(row.cache_hit) },
          value: row.requests,
        })),
      ),
      family(metricCatalog.llmTokens, mergeSamples(tokens)),
      family(metricCatalog.llmCost, [...cost.values()]),
      family(metricCatalog.llmOverflow, [{ labels: {}, value: overflow / microsPerUsd }]),
    ];
  },
};

/** Sums samples with equal labels (the usage query groups by more than the token family shows). */
function mergeSamples(samples: Sample[]): Sample[] {
  const merged = new Map<string, Sample>();
  for (const sample of samples) {
    const key = JSON.stringify(sample.labels);
    const entry = merged.get(key);
    merged.set(key, { labels: sample.labels, value: (entry?.value ?? 0) + sample.value });
  }
  return [...merged.values()];
}

const reservationsSource: DatabaseSource = {
  name: 'budget_reservations',
  available: (c) => c.budgetReservations,
  async collect(tx) {
    const [row] = await tx<{ open: number; expired: number }[]>`
      select count(*)::float8 as open, (count(*) filter (where expires_at < now()))::float8 as expired
      from public.budget_reservations where status = 'reserved'`;
    return [
      family(metricCatalog.reservationsOpen, [{ labels: {}, value: row.open }]),
      family(metricCatalog.reservationsExpired, [{ labels: {}, value: row.expired }]),
    ];
  },
};

const invariantSource: DatabaseSource = {
  name: 'usage_invariant',
  available: (c) => c.usageInvariant,
  async collect(tx) {
    const [row] = await tx<{ violations: number }[]>`
      select count(*)::float8 as violations from public.usage_invariant_violations()`;
    return [family(metricCatalog.invariantViolations, [{ labels: {}, value: row.violations }])];
  },
};

// The states of the jobs issue's state machine: each is exported, 0 included,
// so a dashboard shows a flat line instead of no data.
const jobStates = ['queued', 'assigned', 'succeeded', 'retry_scheduled', 'failed_dlq', 'cancelled'];

const jobsSource: DatabaseSource = {
  name: 'jobs',
  available: (c) => c.jobs,
  async collect(tx) {
    const rows = await tx<{ state: string; jobs: number }[]>`
      select status as state, count(*)::float8 as jobs from public.jobs group by status`;
    const [oldest] = await tx<{ age_seconds: number }[]>`
      select coalesce(extract(epoch from now() - min(run_at)), 0)::float8 as age_seconds
      from public.jobs where status in ('queued', 'retry_scheduled') and run_at <= now()`;
    const counts = new Map(jobStates.map((state) => [state, 0]));
    for (const row of rows) counts.set(row.state, row.jobs);
    return [
      family(metricCatalog.jobs, [...counts].map(([state, value]) => ({ labels: { state }, value }))),
      family(metricCatalog.oldestQueuedAge, [{ labels: {}, value: Math.max(0, oldest.age_seconds) }]),
    ];
  },
};

const deadLettersSource: DatabaseSource = {
  name: 'job_dead_letters',
  available: (c) => c.jobDeadLetters,
  async collect(tx) {
    const [row] = await tx<{ waiting: number; total: number }[]>`
      select (count(*) filter (where requeued_at is null))::float8 as waiting, count(*)::float8 as total
      from public.job_dead_letters`;
    return [
      family(metricCatalog.dlqDepth, [{ labels: {}, value: row.waiting }]),
      family(metricCatalog.deadLetters, [{ labels: {}, value: row.total }]),
    ];
  },
};

const providerHealthSource: DatabaseSource = {
  name: 'provider_health',
  available: (c) => c.providerHealth && c.providerCatalog,
  async collect(tx) {
    const rows = await tx<{
      provider: string;
      model: string;
      up: number;
      error_ratio: number;
      p95_seconds: number | null;
      age_seconds: number;
    }[]>`
      select p.slug as provider, h.upstream_model as model,
             case when h.status = 'down' then 0 else 1 end::float8 as up,
             h.error_rate::float8 as error_ratio,
             (h.p95_latency_ms / 1000.0)::float8 as p95_seconds,
             extract(epoch from now() - h.updated_at)::float8 as age_seconds
      from public.provider_health h
      join public.llm_providers p on p.id = h.provider_id
      where p.enabled`;
    const labels = (row: { provider: string; model: string }) => ({ provider: row.provider, model: row.model });
    return [
      family(metricCatalog.providerUp, rows.map((row) => ({ labels: labels(row), value: row.up }))),
      family(metricCatalog.providerErrorRatio, rows.map((row) => ({ labels: labels(row), value: row.error_ratio }))),
      family(
        metricCatalog.providerLatencyP95,
        rows.filter((row) => row.p95_seconds !== null).map((row) => ({
          labels: labels(row),
          value: row.p95_seconds ?? 0,
        })),
      ),
      family(
        metricCatalog.providerHealthAge,
        rows.map((row) => ({ labels: labels(row), value: Math.max(0, row.age_seconds) })),
      ),
    ];
  },
};

const modelReputationSource: DatabaseSource = {
  name: 'model_reputation',
  available: (c) => c.modelReputation && c.providerCatalog,
  async collect(tx) {
    const rows = await tx<{ provider: string; model: string; domain: string; score: number }[]>`
      select p.slug as provider, r.upstream_model as model, r.domain, r.score::float8 as score
      from public.model_reputation r
      join public.llm_providers p on p.id = r.provider_id
      where r.tenant_id is null and p.enabled`;
    return [
      family(
        metricCatalog.modelReputation,
        rows.map((row) => ({
          labels: { provider: row.provider, model: row.model, domain: row.domain },
          value: row.score,
        })),
      ),
    ];
  },
};

const databaseSources: readonly DatabaseSource[] = [
  usageSource,
  reservationsSource,
  invariantSource,
  jobsSource,
  deadLettersSource,
  providerHealthSource,
  modelReputationSource,
];

/**
 * Reads the durable figures: one short transaction per source (bounded by a
 * statement timeout), only for sources whose tables exist. A failed source
 * shows as switchyard_metrics_source_up 0; a down database as
 * switchyard_database_up 0, never as a failed scrape.
 */
export async function collectDatabaseMetrics(db: Database, statementTimeoutMs: number): Promise<MetricFamily[]> {
  // A duration for the logs/metrics, not a time of day: the monotonic clock, nothing a test needs to move.
  const started = performance.now();
  let capabilities: Capabilities;
  try {
    capabilities = await withDeadline(detectCapabilities(db), statementTimeoutMs);
  } catch {
    return [
      family(metricCatalog.databaseUp, [{ labels: {}, value: 0 }]),
      family(metricCatalog.scrapeDuration, [{ labels: {}, value: (performance.now() - started) / 1000 }]),
    ];
  }
  const sources = databaseSources.filter((source) => source.available(capabilities));
  const outcomes = await Promise.all(sources.map(async (source) => {
    try {
      const families = await withDeadline(
        db.begin('read only', async (tx) => {
          await tx`select set_config('statement_timeout', ${String(statementTimeoutMs)}, true)`;
          return await source.collect(tx);
        }) as Promise<MetricFamily[]>,
        statementTimeoutMs + 500,
      );
      return { source: source.name, up: 1, families };
    } catch {
      return { source: source.name, up: 0, families: [] as MetricFamily[] };
    }
  }));
  return [
    family(metricCatalog.databaseUp, [{ labels: {}, value: 1 }]),
    family(
      metricCatalog.sourceUp,
      outcomes.map((outcome) => ({ labels: { source: outcome.source }, value: outcome.up })),
    ),
    ...outcomes.flatMap((outcome) => outcome.families),
    family(metricCatalog.scrapeDuration, [{ labels: {}, value: (performance.now() - started) / 1000 }]),
  ];
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
