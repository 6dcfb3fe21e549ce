// `npm run bench:scale -- [--json] [--tenants 1000] [--keys 5000] [--usage-records 2000000]
//                         [--jobs 200000] [--connections 32] [--duration 8] [--isolate-duration 5]
//                         [--processes 1,2,4] [--spread-tenants 1000]`
// Cost as the work grows (issue 19), in one run on loopback:
//   1. at 0 rows: ledger flush latency, router requests/s, GET /ops/usage p95,
//      the daily rollup and a retention run;
//   2. a year of synthetic traffic, written in SQL (insert ... select from
//      generate_series, month by month into the monthly partitions): tenants,
//      keys, usage records, jobs with their events, and the year's rollups up
//      to the day the rollup has not reached yet;
//   3. the same measurements at full size, table and index size per million
//      usage records, the rollup of the one day left and the retention run
//      that drops the months past their retention;
//   4. N router processes (--processes) on the one database: a hot tenant
//      (every request on one tenant's budget and rate limit) and a spread over
//      --spread-tenants tenants, with requests/s, database CPU per request,
//      lock-wait samples and conservation; then, per N, a tenant whose budget
//      and one whose rate limit bind, to show neither is exceeded across processes.
// Results: bench/results/scale-<date>.md and .json.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type autocannon from 'autocannon';
import type postgres from 'postgres';
import {
  awaitNoOpenReservations,
  load,
  type LoadResult,
  lostUsageRecords,
  percentile,
  processCpuMs,
  ProcessGroup,
} from './lib/bench-harness.ts';
import {
  exitOnSetupError,
  freePort,
  prepareDatabase,
  recreateDatabase,
  startEmbeddedPostgres,
  withDatabase,
} from './lib/database.ts';
import { bin, denoExecutable, denoServerArguments, repoRoot } from './lib/paths.ts';
import { generateSecrets } from './lib/secrets.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const textOption = (name: string) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : undefined;
};
const option = (name: string, fallback: number) => {
  const text = textOption(name);
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  return value;
};
const asJson = flag('json');
const tenants = option('tenants', 1000);
const keys = Math.max(option('keys', 5000), tenants);
const usageRecords = option('usage-records', 2_000_000);
const jobs = option('jobs', 200_000);
const connections = Math.min(option('connections', 32), 256);
const duration = Math.min(option('duration', 8), 120);
const isolateDuration = Math.min(option('isolate-duration', 5), 60);
const spreadTenants = Math.min(option('spread-tenants', 1000), tenants);
const processCounts = (textOption('processes') ?? '1,2,4').split(',').map((n) => {
  const count = Number(n);
  if (!Number.isInteger(count) || count < 1 || count > 8) throw new Error('--processes: counts of 1 to 8');
  return count;
});
const log = (line: string) => {
  if (!asJson) console.error(`[bench:scale] ${line}`);
};
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const millis = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
  const started = performance.now();
  const result = await work();
  return [result, round(performance.now() - started, 1)];
};

/** The API key of synthetic key k: the same string the synthesis hashes in SQL. */
const syntheticKey = (k: number) => `sy_scale${String(k).padStart(24, '0')}`;
const syntheticTenant = (t: number) => `00000000-0000-4000-8000-${t.toString(16).padStart(12, '0')}`;

interface PhaseResult {
  usage_records: number;
  flush_ms: { p50: number; p95: number; database_cpu_ms: number | null };
  router: LoadResult;
  /** CPU per successful request: the router isolate and the database backends of its pool. */
  router_cpu_ms_per_request: { isolate: number | null; database: number | null };
  ops_usage_ms: { p50: number; p95: number };
  rollup: { ms: number; days: number };
  retention: { ms: number; rows: Record<string, number>; partitions_dropped: Record<string, string[]> };
}

interface IsolateResult {
  processes: number;
  variant: 'hot' | 'spread';
  tenants: number;
  requests_per_second: number;
  p99_ms: number;
  errors: number;
  database_cpu_ms_per_request: number | null;
  lock_waits: { samples: number; max_waiting: number; mean_waiting: number; max_ungranted: number };
  overspend: number;
  lost_usage_records: number;
  open_reservations: number;
  invariant_violations: number;
}

interface LimitCheck {
  processes: number;
  budget: { limit_usd_micros: number; admitted: number; cost_usd_micros: number; overspend: number };
  rate: { requests_per_minute: number; admitted: number; max_window_requests: number; exceeded: boolean };
}

const processes = new ProcessGroup();
// The machine may be shared: its load average at the start says how much the wall-clock figures can be trusted.
const loadAtStart = os.loadavg().map((value) => round(value, 1));
const tempDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-bench-scale-'));
let stopDatabase: (() => Promise<void>) | undefined;
try {
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    log('starting an embedded PostgreSQL 17');
    const server = await startEmbeddedPostgres({
      dataDir: path.join(tempDir, 'pgdata'),
      port: await freePort(),
      persistent: false,
    }).catch(exitOnSetupError);
    stopDatabase = server.stop;
    serverUrl = server.url;
  }
  const dbUrl = await recreateDatabase(serverUrl, process.env.BENCH_SCALE_DATABASE ?? 'switchyard_bench_scale');
  await prepareDatabase(dbUrl);
  const sql = withDatabase(dbUrl);

  const upstreamPort = await freePort();
  log('starting the fake upstream');
  await processes.start(bin('tsx'), [
    'test/fakes/fake-upstream-server.ts',
    '--port',
    String(upstreamPort),
    '--api-key',
    'bench-upstream-key',
  ], {});
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}/v1`;
  const secrets = await generateSecrets();
  const [provider] = await sql<{ id: string }[]>`
    insert into public.llm_providers (slug, kind, base_url, max_retries) values ('bench-upstream', 'openai', ${upstreamUrl}, 0) returning id`;
  await sql`insert into public.llm_models (provider_id, alias, upstream_model, input_cost_per_million, output_cost_per_million, context_window, max_output_tokens)
            values (${provider.id}, 'bench-model', 'gpt-4o-mini', 150000, 600000, 128000, 1000)`;

  /** A tenant with one API key, a monthly usd budget and a rate limit; returns its id and key. */
  const benchTenant = async (slug: string, budget = 1_000_000_000_000, rpm = 100_000_000) => {
    const apiKey = `sy_bench${crypto.randomUUID().replaceAll('-', '')}`;
    const [tenant] = await sql<{ id: string }[]>`
      insert into public.tenants (name, slug) values (${slug}, ${slug}) returning id`;
    await sql`insert into public.tenant_api_keys (tenant_id, name, key_hash, prefix)
              values (${tenant.id}, ${slug}, ${createHash('sha256').update(apiKey).digest('hex')}, ${
      apiKey.slice(0, 11)
    })`;
    await sql`insert into public.budgets (tenant_id, scope, unit, period, limit_amount)
              values (${tenant.id}, 'tenant', 'usd_micros', 'month', ${budget})`;
    await sql`insert into public.rate_limits (tenant_id, requests_per_minute, tokens_per_minute, burst)
              values (${tenant.id}, ${rpm}, 1000000000, 0)`;
    return { id: tenant.id, apiKey };
  };
  const hot = await benchTenant('bench-hot');

  const routerEnv = {
    BENCH_PROVIDER_KEY: 'bench-upstream-key',
    SUPABASE_DB_URL: dbUrl,
    SUPABASE_JWT_SECRET: secrets.jwtSecret,
    SUPABASE_ANON_KEY: secrets.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: secrets.serviceRoleKey,
    LOG_LEVEL: 'warn',
  };
  const denoRun = (script: string, env: Record<string, string>) =>
    processes.start(denoExecutable(), denoServerArguments(path.join(repoRoot, script)), { ...routerEnv, ...env });
  const startRouter = async () => {
    const port = await freePort();
    const child = await denoRun('scripts/bench/router-server.ts', { BENCH_PORT: String(port) });
    return { child, url: `http://127.0.0.1:${port}/functions/v1/llm-router/v1/chat/completions` };
  };
  const opsPort = await freePort();
  await denoRun('scripts/bench/ops-server.ts', { BENCH_PORT: String(opsPort) });
  const body = JSON.stringify({
    model: 'bench-model',
    max_tokens: 16,
    messages: [{ role: 'user', content: 'Say hello to the benchmark' }],
  });
  const headersFor = (apiKey: string) => ({
    'content-type': 'application/json',
    authorization: `Bearer ${apiKey}`,
    apikey: secrets.anonKey,
  });

  /** Reserve then settle batches of 32 fresh requests through flush_ledger, as the router's ledger does. */
  const flushSample = async (phase: string, batches = 40, size = 32) => {
    const times: number[] = [];
    // The bench's one connection is one backend: its CPU is what the flushes cost the database.
    const [{ pid }] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const cpuBefore = processCpuMs(pid);
    for (let b = 0; b < batches; b++) {
      const ids = Array.from({ length: size }, (_, i) => `flush-${phase}-${b}-${i}`);
      const reservations = ids.map((request_id) => ({
        request_id,
        tenant_id: hot.id,
        model_alias: 'bench-model',
        usd_micros: 20,
        tokens: 40,
        ttl_seconds: 60,
      }));
      const settlements = ids.map((request_id) => ({
        request_id,
        prompt_tokens: 12,
        completion_tokens: 8,
        cost_usd_micros: 7,
        provider: 'bench-upstream',
        upstream_model: 'gpt-4o-mini',
      }));
      const started = performance.now();
      await sql`select public.flush_ledger(${sql.json(reservations)}, '[]'::jsonb, '[]'::jsonb)`;
      await sql`select public.flush_ledger('[]'::jsonb, ${sql.json(settlements)}, '[]'::jsonb)`;
      times.push(performance.now() - started);
    }
    const cpuAfter = processCpuMs(pid);
    return {
      p50: round(percentile(times, 0.5)),
      p95: round(percentile(times, 0.95)),
      database_cpu_ms: cpuBefore === null || cpuAfter === null ? null : round((cpuAfter - cpuBefore) / batches),
    };
  };

  /** GET /ops/usage for one tenant over the last 30 days (rolled days and raw records), sequentially. */
  const opsUsageSample = async (tenantId: string, count = 60) => {
    const to = new Date();
    const from = new Date(to.getTime() - 30 * 86_400_000);
    const url =
      `http://127.0.0.1:${opsPort}/functions/v1/ops/usage?tenant_id=${tenantId}&from=${from.toISOString()}&to=${to.toISOString()}&group_by=model`;
    const headers = { authorization: `Bearer ${secrets.serviceRoleKey}`, apikey: secrets.serviceRoleKey };
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const response = await fetch(url, { headers });
      await response.text();
      if (!response.ok) throw new Error(`GET /ops/usage answered ${response.status}`);
      times.push(performance.now() - started);
    }
    return { p50: round(percentile(times, 0.5)), p95: round(percentile(times, 0.95)) };
  };

  const recordCount = async () =>
    (await sql<{ count: number }[]>`select count(*)::float8 as count from public.usage_records`)[0].count;

  const measurePhase = async (
    phase: string,
    routerUrl: string,
    routerPid: number | undefined,
    opsTenant: string,
  ): Promise<PhaseResult> => {
    const records = await recordCount();
    log(`${phase}: ${records} usage records`);
    const flush = await flushSample(phase);
    log(`${phase}: flush reserve+settle of 32, p50 ${flush.p50} ms, p95 ${flush.p95} ms`);
    await load(`${phase}-warmup`, routerUrl, headersFor(hot.apiKey), body, connections, 2);
    const before = await backendCpu();
    const routerCpuBefore = processCpuMs(routerPid);
    const router = await load(`router-${phase}`, routerUrl, headersFor(hot.apiKey), body, connections, duration);
    const routerCpu = cpuPerRequest(before, await backendCpu(), router.ok);
    const routerCpuAfter = processCpuMs(routerPid);
    const isolateCpu = routerCpuBefore === null || routerCpuAfter === null || router.ok === 0
      ? null
      : round((routerCpuAfter - routerCpuBefore) / router.ok, 3);
    log(`${phase}: router ${router.requests_per_second} req/s, p99 ${router.latency_ms.p99} ms`);
    const opsUsage = await opsUsageSample(opsTenant);
    log(`${phase}: GET /ops/usage p50 ${opsUsage.p50} ms, p95 ${opsUsage.p95} ms`);
    const [days, rollupMs] = await millis(async () =>
      (await sql<{ days: number }[]>`select public.rollup_usage(366) as days`)[0].days
    );
    log(`${phase}: rollup of ${days} day(s) in ${rollupMs} ms`);
    const [retention, retentionMs] = await millis(async () =>
      (await sql<{ result: Record<string, unknown> }[]>`select public.run_retention(10000, 100) as result`)[0].result
    );
    const { partitions_dropped: dropped, ...rows } = retention;
    log(`${phase}: retention in ${retentionMs} ms: ${JSON.stringify(retention)}`);
    return {
      usage_records: records,
      flush_ms: flush,
      router,
      router_cpu_ms_per_request: { isolate: isolateCpu, database: routerCpu },
      ops_usage_ms: opsUsage,
      rollup: { ms: rollupMs, days },
      retention: {
        ms: retentionMs,
        rows: rows as Record<string, number>,
        partitions_dropped: (dropped ?? {}) as Record<string, string[]>,
      },
    };
  };

  /** Sums a load over N routers, each with its share of the connections; several keys are taken in turn. */
  const loadAcross = async (routers: { url: string }[], apiKeys: string[], seconds: number, label: string) => {
    let next = 0;
    const share = Math.max(1, Math.floor(connections / routers.length));
    const rotate = (request: autocannon.Request): autocannon.Request => ({
      ...request,
      headers: { ...request.headers, authorization: `Bearer ${apiKeys[next++ % apiKeys.length]}` },
    });
    const results = await Promise.all(
      routers.map((router) =>
        load(label, router.url, headersFor(apiKeys[0]), body, share, seconds, apiKeys.length > 1 ? rotate : undefined)
      ),
    );
    const ok = results.reduce((sum, r) => sum + r.ok, 0);
    return {
      requests_per_second: Math.round(ok / seconds),
      p99_ms: Math.max(...results.map((r) => r.latency_ms.p99)),
      ok,
      errors: results.reduce((sum, r) => sum + r.errors, 0),
    };
  };

  /** The router pools' backends (application_name switchyard-functions) and their CPU so far. */
  const backendCpu = async () => {
    const rows = await sql<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = current_database() and application_name = 'switchyard-functions'`;
    return new Map(rows.map((row) => [row.pid, processCpuMs(row.pid)]));
  };

  /** Database CPU per request between two backendCpu() snapshots; null without /proc. */
  const cpuPerRequest = (before: Map<number, number | null>, after: Map<number, number | null>, ok: number) => {
    let total: number | null = 0;
    for (const [pid, cpu] of after) {
      if (cpu === null || total === null) total = null;
      else total += cpu - (before.get(pid) ?? 0);
    }
    return total !== null && ok > 0 ? round(total / ok, 3) : null;
  };

  /** Lock waits sampled every 200 ms on a connection of their own while `work` runs. */
  const sampleLocks = async <T>(work: () => Promise<T>): Promise<[T, IsolateResult['lock_waits']]> => {
    const sampler = withDatabase(dbUrl);
    const samples: { waiting: number; ungranted: number }[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        const [row] = await sampler<{ waiting: number; ungranted: number }[]>`
          select count(*) filter (where wait_event_type = 'Lock')::int as waiting,
                 (select count(*) from pg_locks where not granted)::int as ungranted
          from pg_stat_activity where datname = current_database()`;
        samples.push(row);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    try {
      return [await work(), {
        samples: samples.length,
        max_waiting: Math.max(0, ...samples.map((row) => row.waiting)),
        mean_waiting: round(samples.reduce((sum, row) => sum + row.waiting, 0) / Math.max(1, samples.length)),
        max_ungranted: Math.max(0, ...samples.map((row) => row.ungranted)),
      }];
    } finally {
      running = false;
      await loop;
      await sampler.end();
    }
  };

  const isolateRun = async (
    routers: { url: string }[],
    variant: 'hot' | 'spread',
    apiKeys: string[],
  ): Promise<IsolateResult> => {
    await loadAcross(routers, apiKeys, 2, `${variant}-warmup`);
    const before = await backendCpu();
    const [result, lockWaits] = await sampleLocks(() =>
      loadAcross(routers, apiKeys, isolateDuration, `${variant}-${routers.length}`)
    );
    const databaseCpu = cpuPerRequest(before, await backendCpu(), result.ok);
    await awaitNoOpenReservations(sql);
    const [state] = await sql<{ open: number; overspend: number }[]>`
      select (select count(*) from public.budget_reservations where status = 'reserved')::int as open,
             (select coalesce(sum(greatest(0, c.spent - c.limit_amount)), 0) from public.usage_counters c)::float8 as overspend`;
    const row: IsolateResult = {
      processes: routers.length,
      variant,
      tenants: apiKeys.length,
      requests_per_second: result.requests_per_second,
      p99_ms: result.p99_ms,
      errors: result.errors,
      database_cpu_ms_per_request: databaseCpu,
      lock_waits: lockWaits,
      overspend: state.overspend,
      lost_usage_records: await lostUsageRecords(sql),
      open_reservations: state.open,
      invariant_violations: -1,
    };
    log(
      `${variant} x${routers.length}: ${row.requests_per_second} req/s, p99 ${row.p99_ms} ms, db CPU ${row.database_cpu_ms_per_request} ms/req, lock waits max ${lockWaits.max_waiting}, lost ${row.lost_usage_records}`,
    );
    return row;
  };

  /** A tenant whose budget binds and one whose rate limit binds, each loaded from every router at once. */
  const limitCheck = async (routers: { url: string }[]): Promise<LimitCheck> => {
    const limit = 3000;
    const rpm = 200;
    const budgetTenant = await benchTenant(`limit-budget-${routers.length}`, limit);
    await loadAcross(routers, [budgetTenant.apiKey], 3, 'limit-budget');
    const rateTenant = await benchTenant(`limit-rate-${routers.length}`, undefined, rpm);
    await loadAcross(routers, [rateTenant.apiKey], 3, 'limit-rate');
    await awaitNoOpenReservations(sql);
    const [budget] = await sql<{ admitted: number; cost: number }[]>`
      select count(*)::int as admitted, coalesce(sum(cost_usd_micros), 0)::float8 as cost
      from public.usage_records where tenant_id = ${budgetTenant.id}`;
    const [rate] = await sql<{ admitted: number; max_window: number; windows: number }[]>`
      select (select count(*) from public.usage_records where tenant_id = ${rateTenant.id})::int as admitted,
             coalesce(max(w.requests), 0)::int as max_window, count(w.*)::int as windows
      from public.rate_limits l left join public.rate_limit_windows w on w.rate_limit_id = l.id
      where l.tenant_id = ${rateTenant.id}`;
    const check: LimitCheck = {
      processes: routers.length,
      budget: {
        limit_usd_micros: limit,
        admitted: budget.admitted,
        cost_usd_micros: budget.cost,
        overspend: Math.max(0, budget.cost - limit),
      },
      rate: {
        requests_per_minute: rpm,
        admitted: rate.admitted,
        max_window_requests: rate.max_window,
        exceeded: rate.max_window > rpm || rate.admitted > rpm * Math.max(1, rate.windows),
      },
    };
    log(`limits x${routers.length}: ${JSON.stringify(check)}`);
    return check;
  };

  // 1. The empty database (one tenant, no history).
  const mainRouter = await startRouter();
  const empty = await measurePhase('empty', mainRouter.url, mainRouter.child.pid, hot.id);

  // 2. A year of traffic.
  const synthesis = await synthesise(sql);

  // 3. Full size: sizes first, then the same measurements (the rollup and retention last: retention drops months).
  const sizes = await usageSizes(sql);
  log(
    `full: usage_records ${sizes.table_mb} MB heap + ${sizes.index_mb} MB indexes = ${sizes.mb_per_million_records} MB per million records`,
  );
  const full = await measurePhase('full', mainRouter.url, mainRouter.child.pid, syntheticTenant(1));
  const [fullViolations] = await sql<{ count: number }[]>`
    select count(*)::int as count from public.usage_invariant_violations()`;
  await processes.stop(mainRouter.child);

  // 4. N isolates on the one database.
  const spread = Array.from({ length: spreadTenants }, (_, t) => syntheticKey(t));
  const isolates: IsolateResult[] = [];
  const limitChecks: LimitCheck[] = [];
  for (const count of processCounts) {
    const routers = await Promise.all(Array.from({ length: count }, () => startRouter()));
    isolates.push(await isolateRun(routers, 'hot', [hot.apiKey]));
    isolates.push(await isolateRun(routers, 'spread', spread));
    limitChecks.push(await limitCheck(routers));
    const [violations] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.usage_invariant_violations()`;
    for (const row of isolates.slice(-2)) row.invariant_violations = violations.count;
    await Promise.all(routers.map((router) => processes.stop(router.child)));
  }

  const [version] = await sql<{ server_version: string }[]>`show server_version`;
  await sql.end();

  const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 3) : null);
  const report = {
    date: new Date().toISOString(),
    machine: {
      cores: os.cpus().length,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      postgres: version.server_version,
      node: process.version,
      load_average: { start: loadAtStart, end: os.loadavg().map((value) => round(value, 1)) },
    },
    settings: {
      tenants,
      keys,
      usage_records: usageRecords,
      jobs,
      connections,
      duration_s: duration,
      isolate_duration_s: isolateDuration,
      database: process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded PostgreSQL 17',
    },
    router_rps_full_over_empty: ratio(full.router.requests_per_second, empty.router.requests_per_second),
    flush_ms_full_over_empty: ratio(full.flush_ms.p50, empty.flush_ms.p50),
    // CPU per unit of work: what a loaded machine disturbs least (wall-clock rates share the cores).
    flush_database_cpu_full_over_empty: ratio(full.flush_ms.database_cpu_ms ?? 0, empty.flush_ms.database_cpu_ms ?? 0),
    router_database_cpu_full_over_empty: ratio(
      full.router_cpu_ms_per_request.database ?? 0,
      empty.router_cpu_ms_per_request.database ?? 0,
    ),
    router_isolate_cpu_full_over_empty: ratio(
      full.router_cpu_ms_per_request.isolate ?? 0,
      empty.router_cpu_ms_per_request.isolate ?? 0,
    ),
    ops_usage_p95_ms: full.ops_usage_ms.p95,
    synthesis,
    usage_size: sizes,
    empty,
    full: { ...full, invariant_violations_after_retention: fullViolations.count },
    isolates,
    limit_checks: limitChecks,
  };
  const holds = fullViolations.count === 0 &&
    isolates.every((row) =>
      row.overspend === 0 && row.lost_usage_records === 0 && row.open_reservations === 0 &&
      row.invariant_violations === 0
    ) &&
    limitChecks.every((check) => check.budget.overspend === 0 && !check.rate.exceeded);

  const markdown = [
    `# Switchyard scale benchmark, ${report.date}`,
    '',
    `${report.machine.cores} cores (${report.machine.cpu}), PostgreSQL ${report.machine.postgres}, ${report.settings.database}; load average ${
      report.machine.load_average.start.join(' ')
    } at the start, ${report.machine.load_average.end.join(' ')} at the end.`,
    `Synthetic year: ${tenants} tenants, ${keys} keys, ${usageRecords} usage records, ${jobs} jobs (${synthesis.job_events} events); written in ${synthesis.seconds} s.`,
    '',
    '| measure | empty | full | full / empty |',
    '| --- | --- | --- | --- |',
    `| usage records | ${empty.usage_records} | ${full.usage_records} | |`,
    `| ledger flush, reserve + settle of 32, p50 ms | ${empty.flush_ms.p50} | ${full.flush_ms.p50} | ${report.flush_ms_full_over_empty} |`,
    `| ledger flush p95 ms | ${empty.flush_ms.p95} | ${full.flush_ms.p95} | ${
      ratio(full.flush_ms.p95, empty.flush_ms.p95)
    } |`,
    `| router req/s (${connections} connections, ${duration} s) | ${empty.router.requests_per_second} | ${full.router.requests_per_second} | ${report.router_rps_full_over_empty} |`,
    `| ledger flush database CPU ms per batch | ${empty.flush_ms.database_cpu_ms} | ${full.flush_ms.database_cpu_ms} | ${report.flush_database_cpu_full_over_empty} |`,
    `| router p99 ms | ${empty.router.latency_ms.p99} | ${full.router.latency_ms.p99} | |`,
    `| router database CPU ms/req | ${empty.router_cpu_ms_per_request.database} | ${full.router_cpu_ms_per_request.database} | ${report.router_database_cpu_full_over_empty} |`,
    `| router isolate CPU ms/req | ${empty.router_cpu_ms_per_request.isolate} | ${full.router_cpu_ms_per_request.isolate} | ${report.router_isolate_cpu_full_over_empty} |`,
    `| GET /ops/usage, one tenant, 30 days, p50 ms | ${empty.ops_usage_ms.p50} | ${full.ops_usage_ms.p50} | |`,
    `| GET /ops/usage p95 ms | ${empty.ops_usage_ms.p95} | ${full.ops_usage_ms.p95} | |`,
    `| daily rollup ms (days rolled) | ${empty.rollup.ms} (${empty.rollup.days}) | ${full.rollup.ms} (${full.rollup.days}) | |`,
    `| retention run ms | ${empty.retention.ms} | ${full.retention.ms} | |`,
    '',
    `Retention at full size: rows deleted ${JSON.stringify(full.retention.rows)}; partitions dropped ${
      JSON.stringify(full.retention.partitions_dropped)
    }; usage invariant violations after it: ${fullViolations.count}.`,
    '',
    `usage_records at full size: ${sizes.table_mb} MB heap, ${sizes.index_mb} MB indexes over ${sizes.partitions} partitions: **${sizes.mb_per_million_records} MB per million records** (${sizes.bytes_per_record} bytes a record; heap ${sizes.heap_bytes_per_record}).`,
    '',
    '## Many isolates, one database',
    '',
    '| processes | variant | tenants | req/s | p99 ms | errors | database CPU ms/req | lock waits (max / mean waiting, max ungranted) | overspend | lost usage records | open reservations | invariant violations |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...isolates.map((row) =>
      `| ${row.processes} | ${row.variant} | ${row.tenants} | ${row.requests_per_second} | ${row.p99_ms} | ${row.errors} | ${
        row.database_cpu_ms_per_request ?? 'n/a'
      } | ${row.lock_waits.max_waiting} / ${row.lock_waits.mean_waiting}, ${row.lock_waits.max_ungranted} | ${row.overspend} | ${row.lost_usage_records} | ${row.open_reservations} | ${row.invariant_violations} |`
    ),
    '',
    '| processes | budget limit (usd micros) | admitted | cost | overspend | rate limit / min | admitted | max requests in a window | exceeded |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...limitChecks.map((check) =>
      `| ${check.processes} | ${check.budget.limit_usd_micros} | ${check.budget.admitted} | ${check.budget.cost_usd_micros} | ${check.budget.overspend} | ${check.rate.requests_per_minute} | ${check.rate.admitted} | ${check.rate.max_window_requests} | ${check.rate.exceeded} |`
    ),
    '',
    `conservation: ${holds ? 'HOLDS' : 'BROKEN'}`,
    '',
  ].join('\n');

  const resultsDir = path.join(repoRoot, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const stamp = report.date.replace(/[:.]/g, '-');
  await writeFile(path.join(resultsDir, `scale-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(resultsDir, `scale-${stamp}.md`), markdown);
  console.log(asJson ? JSON.stringify(report, null, 2) : markdown);
  if (!holds) process.exitCode = 1;
} finally {
  await processes.stopAll();
  await stopDatabase?.();
  await rm(tempDir, { recursive: true, force: true });
}

/**
 * A year of traffic, set-based: tenants, keys, the months' partitions, usage
 * records evenly over the 366 days before today, jobs (succeeded) with three
 * events each, and the rollups of every day but the last two (the rollup
 * measured at full size rolls the one it may). Triggers and foreign-key checks
 * are off for the synthesis only (session_replication_role = replica): the rows
 * are consistent by construction, and the per-row triggers (request-id claims,
 * job transitions) would only measure themselves.
 */
async function synthesise(sql: postgres.Sql) {
  const started = performance.now();
  log(`synthesising ${tenants} tenants, ${keys} keys, ${usageRecords} usage records, ${jobs} jobs`);
  await sql`insert into public.tenants (id, name, slug)
            select ('00000000-0000-4000-8000-' || lpad(to_hex(t), 12, '0'))::uuid, 'Scale ' || t, 'scale-' || t
            from generate_series(0, ${tenants - 1}::int) t`;
  await sql`insert into public.tenant_api_keys (id, tenant_id, name, key_hash, prefix)
            select ('00000000-0000-4000-9000-' || lpad(to_hex(k), 12, '0'))::uuid,
                   ('00000000-0000-4000-8000-' || lpad(to_hex(k % ${tenants}::int), 12, '0'))::uuid, 'key ' || k,
                   encode(sha256(convert_to('sy_scale' || lpad(k::text, 24, '0'), 'UTF8')), 'hex'), 'sy_scale000'
            from generate_series(0, ${keys - 1}::int) k`;
  // Every spread tenant has a budget and a rate limit, as a real tenant would.
  await sql`insert into public.budgets (tenant_id, scope, unit, period, limit_amount)
            select ('00000000-0000-4000-8000-' || lpad(to_hex(t), 12, '0'))::uuid, 'tenant', 'usd_micros', 'month', 1000000000000
            from generate_series(0, ${tenants - 1}::int) t`;
  await sql`insert into public.rate_limits (tenant_id, requests_per_minute, tokens_per_minute)
            select ('00000000-0000-4000-8000-' || lpad(to_hex(t), 12, '0'))::uuid, 100000000, 1000000000
            from generate_series(0, ${tenants - 1}::int) t`;
  await sql`insert into public.job_kinds (kind, description) values ('bench.scale', 'Synthetic jobs of npm run bench:scale')
            on conflict do nothing`;
  const months = await sql<{ month: string }[]>`
    select to_char(m, 'YYYY-MM-DD') as month
    from generate_series(date_trunc('month', now() at time zone 'UTC' - interval '366 days'),
                         date_trunc('month', now() at time zone 'UTC'), interval '1 month') m`;
  for (const { month } of months) {
    await sql`select private.create_month_partition('usage_records', 'created_at', ${month}::date),
                     private.create_month_partition('job_events', 'at', ${month}::date)`;
  }
  // Usage in 12 slices (by time), so a slice fills one or two partitions at a time.
  const slices = 12;
  let jobEvents = 0;
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    for (let s = 0; s < slices; s++) {
      const from = Math.floor((usageRecords * s) / slices);
      const to = Math.floor((usageRecords * (s + 1)) / slices) - 1;
      await tx`
        insert into public.usage_records (request_id, tenant_id, api_key_id, provider, upstream_model, model_alias,
          prompt_tokens, completion_tokens, cost_usd_micros, status, latency_ms, created_at)
        select 'syn-' || g,
               ('00000000-0000-4000-8000-' || lpad(to_hex((g % ${keys}::int) % ${tenants}::int), 12, '0'))::uuid,
               ('00000000-0000-4000-9000-' || lpad(to_hex(g % ${keys}::int), 12, '0'))::uuid,
               'openai', 'gpt-4o-mini', case when g % 3 = 0 then 'fast' else 'chat' end,
               50 + g % 200, 20 + g % 100, (50 + g % 200) * 15 / 100 + (20 + g % 100) * 60 / 100,
               case when g % 50 = 0 then 'failed' else 'succeeded' end, 200 + g % 900,
               date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' - interval '366 days'
                 + (g::float8 / ${usageRecords}::int) * interval '366 days'
        from generate_series(${from}::int, ${to}::int) g`;
      const jobFrom = Math.floor((jobs * s) / slices);
      const jobTo = Math.floor((jobs * (s + 1)) / slices) - 1;
      await tx`
        insert into public.jobs (id, tenant_id, kind, payload, status, attempts, max_attempts, timeout_seconds, worker,
          created_at, updated_at, run_at)
        select ('00000000-0000-4000-a000-' || lpad(to_hex(g), 12, '0'))::uuid,
               ('00000000-0000-4000-8000-' || lpad(to_hex(g % ${tenants}::int), 12, '0'))::uuid,
               'bench.scale', '{}'::jsonb, 'succeeded', 1, 3, 60, 'bench',
               t, t + interval '2 seconds', t
        from generate_series(${jobFrom}::int, ${jobTo}::int) g,
             lateral (select date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' - interval '366 days'
                        + (g::float8 / ${jobs}::int) * interval '366 days' as t) at_time`;
      const [events] = await tx<{ count: number }[]>`
        with inserted as (
          insert into public.job_events (job_id, tenant_id, event, from_status, to_status, attempt, worker, at)
          select j.id, j.tenant_id, e.event, e.from_status, e.event, e.attempt, 'bench', j.created_at + e.after
          from public.jobs j,
               (values ('queued', null, 0, interval '0'), ('assigned', 'queued', 1, interval '1 second'),
                       ('succeeded', 'assigned', 1, interval '2 seconds')) e(event, from_status, attempt, after)
          where j.kind = 'bench.scale'
            and j.id between ('00000000-0000-4000-a000-' || lpad(to_hex(${jobFrom}::int), 12, '0'))::uuid
                         and ('00000000-0000-4000-a000-' || lpad(to_hex(${jobTo}::int), 12, '0'))::uuid
          returning 1)
        select count(*)::int as count from inserted`;
      jobEvents += events.count;
      log(`  slice ${s + 1}/${slices} written (${Math.round((performance.now() - started) / 1000)} s)`);
    }
    // The year's rollups, as the hourly schedule would have left them: every day but the last two.
    await tx`
      insert into public.usage_daily (day, tenant_id, api_key_id, provider, upstream_model, model_alias, cache_hit, status,
        requests, prompt_tokens, completion_tokens, cost_usd_micros, overflow_usd_micros)
      select (u.created_at at time zone 'UTC')::date, u.tenant_id, u.api_key_id, u.provider, u.upstream_model, u.model_alias,
             u.cache_hit, u.status, count(*), sum(u.prompt_tokens), sum(u.completion_tokens), sum(u.cost_usd_micros),
             sum(u.overflow_usd_micros)
      from public.usage_records u
      where u.created_at < date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' - interval '2 days'
      group by 1, 2, 3, 4, 5, 6, 7, 8`;
    await tx`insert into public.usage_rollups (day, tenant_id) select distinct day, tenant_id from public.usage_daily`;
  });
  log('analysing');
  await sql`analyze`;
  const seconds = round((performance.now() - started) / 1000, 1);
  log(`synthesis done in ${seconds} s`);
  return { seconds, job_events: jobEvents };
}

/** Heap and index bytes of usage_records' partitions, per million records. */
async function usageSizes(sql: postgres.Sql) {
  const [size] = await sql<{ heap: number; indexes: number; partitions: number; records: number }[]>`
    select sum(pg_table_size(i.inhrelid))::float8 as heap, sum(pg_indexes_size(i.inhrelid))::float8 as indexes,
           count(*)::int as partitions, (select count(*) from public.usage_records)::float8 as records
    from pg_inherits i where i.inhparent = 'public.usage_records'::regclass`;
  const mb = (bytes: number) => round(bytes / 2 ** 20, 1);
  const perRecord = (bytes: number) => (size.records > 0 ? Math.round(bytes / size.records) : 0);
  return {
    records: size.records,
    partitions: size.partitions,
    table_mb: mb(size.heap),
    index_mb: mb(size.indexes),
    mb_per_million_records: size.records > 0 ? mb(((size.heap + size.indexes) / size.records) * 1e6) : 0,
    bytes_per_record: perRecord(size.heap + size.indexes),
    heap_bytes_per_record: perRecord(size.heap),
  };
}
