// `npm run bench -- [--json] [--connections 32] [--duration 10] [--sweep]
//                   [--scenarios router,router-stream] [--cpu-prof DIR]`
// All in one run, loopback only, bounded in time: the fake OpenAI upstream
// called directly, a bare Hono pass-through proxy on Deno, and the real
// llm-router on Deno with API-key auth, rate limit, budget reserve/settle and
// usage records in PostgreSQL. Reports requests/s and latency per scenario,
// the router as a ratio of the pass-through, and checks conservation after.
import type autocannon from 'autocannon';
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
import { stageMarkdown, type StageTable, stageTable } from './lib/cpu-profile-stages.ts';
import { bin, denoExecutable, denoServerArguments, repoRoot } from './lib/paths.ts';
import { generateSecrets } from './lib/secrets.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const option = (name: string, fallback: number) => {
  const index = args.indexOf(`--${name}`);
  const value = index >= 0 ? Number(args[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
};
const asJson = flag('json');
const connections = Math.min(option('connections', 32), 256);
const duration = Math.min(option('duration', 10), 120);
const sweep = flag('sweep');
const allScenarios = [
  'upstream',
  'passthrough',
  'router',
  'router-exact',
  'router-stream',
  'router-cache-hit',
  'passthrough-stream',
  'passthrough-stream-js',
  'agent-turn',
] as const;
type ScenarioName = (typeof allScenarios)[number];
const textOption = (name: string) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : undefined;
};
// The pass-through always runs: it is the baseline every ratio is taken against.
const selected = new Set<ScenarioName>(['passthrough']);
// The default run (no --scenarios) also measures a single caller: router and pass-through at 1 connection.
const singleCaller = textOption('scenarios') === undefined;
for (const name of (textOption('scenarios') ?? allScenarios.join(',')).split(',')) {
  if (!(allScenarios as readonly string[]).includes(name)) {
    throw new Error(`--scenarios: unknown scenario ${name} (known: ${allScenarios.join(', ')})`);
  }
  selected.add(name as ScenarioName);
}
// A V8 CPU profile of the router isolate, written when the run ends (open it in Chrome DevTools).
const cpuProfileDir = textOption('cpu-prof');
const log = (line: string) => {
  if (!asJson) console.error(`[bench] ${line}`);
};

const processes = new ProcessGroup();
const startProcess = processes.start.bind(processes);

interface ScenarioResult extends LoadResult {
  ttfb_ms?: { p50: number; p99: number };
  /** CPU milliseconds per successful request: the proxy under test (one Deno isolate) and its database backends. */
  cpu_ms_per_request?: { proxy: number; database: number | null };
}

// NEW_TURN in a body becomes a number of its own per request (the agent turn's newest message).
const newTurnMarker = 'NEW_TURN';
let turns = 0;
const newTurnEachRequest = (body: string) =>
  body.includes(newTurnMarker)
    ? (request: autocannon.Request) => ({ ...request, body: body.replace(newTurnMarker, String(++turns)) })
    : undefined;

/** Time to first byte and total, over a sequential sample of streamed requests. */
async function streamSample(url: string, headers: Record<string, string>, body: string, count: number) {
  const firstBytes: number[] = [];
  const totals: number[] = [];
  let ok = 0;
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const response = await fetch(url, { method: 'POST', headers, body });
    const reader = response.body!.getReader();
    let first = true;
    for (;;) {
      const { done } = await reader.read();
      if (first) {
        firstBytes.push(performance.now() - started);
        first = false;
      }
      if (done) break;
    }
    totals.push(performance.now() - started);
    if (response.ok) ok += 1;
  }
  return {
    ok,
    ttfb: { p50: percentile(firstBytes, 0.5), p99: percentile(firstBytes, 0.99) },
    total: { p50: percentile(totals, 0.5), p99: percentile(totals, 0.99) },
  };
}

const tempDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-bench-'));
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
  const dbUrl = await recreateDatabase(serverUrl, 'switchyard_bench');
  await prepareDatabase(dbUrl);
  const sql = withDatabase(dbUrl);

  const [upstreamPort, passthroughPort, routerPort] = [await freePort(), await freePort(), await freePort()];
  log('starting the fake upstream, the pass-through proxy and the router');
  await startProcess(bin('tsx'), [
    'test/fakes/fake-upstream-server.ts',
    '--port',
    String(upstreamPort),
    '--api-key',
    'bench-upstream-key',
  ], {});
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}/v1`;
  // agent-turn: an upstream that streams several words a chunk, as real models send several tokens.
  const agentUpstreamPort = await freePort();
  if (selected.has('agent-turn')) {
    await startProcess(bin('tsx'), [
      'test/fakes/fake-upstream-server.ts',
      '--port',
      String(agentUpstreamPort),
      '--api-key',
      'bench-upstream-key',
      '--words-per-chunk',
      '4',
    ], {});
  }
  const agentUpstreamUrl = `http://127.0.0.1:${agentUpstreamPort}/v1`;
  const denoRun = (script: string, env: Record<string, string>, extraFlags: string[] = []) =>
    startProcess(denoExecutable(), denoServerArguments(path.join(repoRoot, script), extraFlags), env);
  const passthroughProcess = await denoRun('scripts/bench/passthrough-server.ts', {
    BENCH_UPSTREAM_URL: upstreamUrl,
    BENCH_PORT: String(passthroughPort),
  });

  const agentPassthroughPort = await freePort();
  const agentPassthroughProcess = selected.has('agent-turn')
    ? await denoRun('scripts/bench/passthrough-server.ts', {
      BENCH_UPSTREAM_URL: agentUpstreamUrl,
      BENCH_PORT: String(agentPassthroughPort),
    })
    : undefined;

  // The tenant, its API key, a budget and a rate limit that every request goes through.
  const secrets = await generateSecrets();
  const apiKey = `sy_bench${crypto.randomUUID().replaceAll('-', '')}`;
  const [tenant] = await sql<
    { id: string }[]
  >`insert into public.tenants (name, slug) values ('Bench', 'bench') returning id`;
  await sql`insert into public.tenant_api_keys (tenant_id, name, key_hash, prefix)
            values (${tenant.id}, 'bench', ${createHash('sha256').update(apiKey).digest('hex')}, ${
    apiKey.slice(0, 11)
  })`;
  const [provider] = await sql<{ id: string }[]>`
    insert into public.llm_providers (slug, kind, base_url, max_retries) values ('bench-upstream', 'openai', ${upstreamUrl}, 0) returning id`;
  await sql`insert into public.llm_models (provider_id, alias, upstream_model, input_cost_per_million, output_cost_per_million, context_window, max_output_tokens)
            values (${provider.id}, 'bench-model', 'gpt-4o-mini', 150000, 600000, 128000, 1000)`;
  const [agentProvider] = await sql<{ id: string }[]>`
    insert into public.llm_providers (slug, kind, base_url, max_retries) values ('bench-agent-upstream', 'openai', ${agentUpstreamUrl}, 0) returning id`;
  await sql`insert into public.llm_models (provider_id, alias, upstream_model, input_cost_per_million, output_cost_per_million, context_window, max_output_tokens, capabilities)
            values (${agentProvider.id}, 'bench-agent-model', 'gpt-4o-mini', 150000, 600000, 128000, 1000, array['chat', 'stream', 'tools'])`;
  await sql`insert into public.budgets (tenant_id, scope, unit, period, limit_amount) values (${tenant.id}, 'tenant', 'usd_micros', 'month', 1000000000000)`;
  await sql`insert into public.rate_limits (tenant_id, requests_per_minute, tokens_per_minute) values (${tenant.id}, 100000000, 1000000000)`;

  const routerEnv = {
    BENCH_PROVIDER_KEY: 'bench-upstream-key',
    SUPABASE_DB_URL: dbUrl,
    SUPABASE_JWT_SECRET: secrets.jwtSecret,
    SUPABASE_ANON_KEY: secrets.anonKey,
    LOG_LEVEL: 'warn',
  };
  const routerProcess = await denoRun('scripts/bench/router-server.ts', {
    ...routerEnv,
    BENCH_PORT: String(routerPort),
  }, cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(cpuProfileDir)}`] : []);
  // router-exact: the same router with budget leases off, every request reserving on its own.
  const exactPort = await freePort();
  const exactProcess = selected.has('router-exact')
    ? await denoRun('scripts/bench/router-server.ts', {
      ...routerEnv,
      BENCH_PORT: String(exactPort),
      BUDGET_LEASE_REQUESTS: '0',
    })
    : undefined;

  const body = JSON.stringify({
    model: 'bench-model',
    max_tokens: 16,
    messages: [{ role: 'user', content: 'Say hello to the benchmark' }],
  });
  const streamBody = JSON.stringify({
    model: 'bench-model',
    max_tokens: 16,
    stream: true,
    messages: [{ role: 'user', content: 'Say hello to the benchmark' }],
  });
  const agentBody = agentTurnBody();
  const upstreamHeaders = { 'content-type': 'application/json', authorization: 'Bearer bench-upstream-key' };
  const routerHeaders = {
    'content-type': 'application/json',
    authorization: `Bearer ${apiKey}`,
    apikey: secrets.anonKey,
  };
  const routerUrl = `http://127.0.0.1:${routerPort}/functions/v1/llm-router/v1/chat/completions`;
  const targets = {
    upstream: { url: `${upstreamUrl}/chat/completions`, headers: upstreamHeaders },
    passthrough: {
      url: `http://127.0.0.1:${passthroughPort}/v1/chat/completions`,
      headers: { 'content-type': 'application/json' },
    },
    // The same pass-through, relaying each chunk through JavaScript: the floor of any chunk-reading relay.
    'passthrough-js': {
      url: `http://127.0.0.1:${passthroughPort}/relay/v1/chat/completions`,
      headers: { 'content-type': 'application/json' },
    },
    router: { url: routerUrl, headers: routerHeaders },
    exact: { url: `http://127.0.0.1:${exactPort}/functions/v1/llm-router/v1/chat/completions`, headers: routerHeaders },
    'agent-passthrough': {
      url: `http://127.0.0.1:${agentPassthroughPort}/v1/chat/completions`,
      headers: { 'content-type': 'application/json' },
    },
    // The same request with the cache on: after the warm-up stored it, every call is a hit.
    cached: { url: routerUrl, headers: { ...routerHeaders, 'x-switchyard-cache': '600' } },
  };

  // The router's pooled database connections (application_name switchyard-functions), to charge their CPU.
  const routerBackends = async () =>
    (await sql<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = current_database() and application_name = 'switchyard-functions'`)
      .map((row) => row.pid);
  const cpuSnapshot = async (proxyPid: number | undefined, withDatabase: boolean) => {
    const backends = withDatabase ? await routerBackends() : [];
    return {
      proxy: processCpuMs(proxyPid),
      database: new Map(backends.map((pid) => [pid, processCpuMs(pid)])),
    };
  };

  let routerSuccesses = 0;
  // Requests the profiled router isolate served (router-exact runs in a process of its own).
  let profiledRequests = 0;
  const run = async (
    scenario: keyof typeof targets,
    conns: number,
    seconds: number,
    requestBody = body,
    label: string = scenario,
  ) => {
    const isRouter = scenario === 'router' || scenario === 'cached' || scenario === 'exact';
    const eachRequest = newTurnEachRequest(requestBody);
    const warm = await load(
      `${label}-warmup`,
      targets[scenario].url,
      targets[scenario].headers,
      requestBody,
      conns,
      2,
      eachRequest,
    );
    if (isRouter) routerSuccesses += warm.ok;
    if (isRouter && scenario !== 'exact') profiledRequests += warm.ok;
    const proxyPid = scenario === 'exact'
      ? exactProcess?.pid
      : isRouter
      ? routerProcess.pid
      : scenario === 'passthrough' || scenario === 'passthrough-js'
      ? passthroughProcess.pid
      : scenario === 'agent-passthrough'
      ? agentPassthroughProcess?.pid
      : undefined;
    const before = await cpuSnapshot(proxyPid, isRouter);
    const result: ScenarioResult = await load(
      label,
      targets[scenario].url,
      targets[scenario].headers,
      requestBody,
      conns,
      seconds,
      eachRequest,
    );
    const after = await cpuSnapshot(proxyPid, isRouter);
    if (after.proxy !== null && before.proxy !== null && result.ok > 0) {
      // Backends are only on this machine when the database is: otherwise /proc has none of them.
      const databaseMs = [...after.database].reduce<number | null>(
        (sum, [pid, cpu]) => cpu === null || sum === null ? null : sum + cpu - (before.database.get(pid) ?? 0),
        0,
      );
      result.cpu_ms_per_request = {
        proxy: Math.round(((after.proxy - before.proxy) / result.ok) * 1000) / 1000,
        database: isRouter && databaseMs !== null && after.database.size > 0
          ? Math.round((databaseMs / result.ok) * 1000) / 1000
          : null,
      };
    }
    if (isRouter) routerSuccesses += result.ok;
    if (isRouter && scenario !== 'exact') profiledRequests += result.ok;
    log(
      `${label} @${conns}: ${result.requests_per_second} req/s, p50 ${result.latency_ms.p50} ms, p99 ${result.latency_ms.p99} ms, errors ${result.errors}`,
    );
    return result;
  };

  const results: ScenarioResult[] = [];
  if (selected.has('upstream')) results.push(await run('upstream', connections, duration));
  results.push(await run('passthrough', connections, duration));
  if (selected.has('router')) results.push(await run('router', connections, duration));
  if (selected.has('router-exact')) results.push(await run('exact', connections, duration, body, 'router-exact'));
  if (selected.has('router-stream')) {
    const streamed = await run('router', connections, duration, streamBody, 'router-stream');
    const sample = await streamSample(targets.router.url, routerHeaders, streamBody, 50);
    routerSuccesses += sample.ok;
    profiledRequests += sample.ok;
    streamed.ttfb_ms = sample.ttfb;
    results.push(streamed);
  }
  if (selected.has('router-cache-hit')) {
    results.push(await run('cached', connections, duration, body, 'router-cache-hit'));
  }
  if (selected.has('passthrough-stream')) {
    results.push(await run('passthrough', connections, duration, streamBody, 'passthrough-stream'));
  }
  if (selected.has('passthrough-stream-js')) {
    results.push(await run('passthrough-js', connections, duration, streamBody, 'passthrough-stream-js'));
  }
  if (selected.has('agent-turn')) {
    results.push(await run('agent-passthrough', connections, duration, agentBody, 'passthrough-agent-turn'));
    results.push(await run('router', connections, duration, agentBody, 'router-agent-turn'));
  }
  if (singleCaller) {
    results.push(await run('passthrough', 1, duration));
    results.push(await run('router', 1, duration));
  }

  const sweepResults: ScenarioResult[] = [];
  if (sweep) {
    for (const conns of [1, 4, 16, 32, 64]) {
      sweepResults.push(await run('passthrough', conns, Math.min(duration, 5)));
      sweepResults.push(await run('router', conns, Math.min(duration, 5)));
    }
  }

  // Conservation after the run, in the same database. The router closes its budget leases once
  // they sit idle (BUDGET_LEASE_IDLE_MS): wait for that, bounded, before counting what is open.
  await awaitNoOpenReservations(sql);
  const [violations] = await sql<
    { count: number }[]
  >`select count(*)::int as count from public.usage_invariant_violations()`;
  const [records] = await sql<{ count: number }[]>`select count(*)::int as count from public.usage_records`;
  const lost = { count: await lostUsageRecords(sql) };
  const [open] = await sql<
    { count: number }[]
  >`select count(*)::int as count from public.budget_reservations where status = 'reserved'`;
  const [reserved] = await sql<
    { total: number }[]
  >`select coalesce(sum(reserved), 0)::int as total from public.usage_counters`;
  const [version] = await sql<{ server_version: string }[]>`show server_version`;
  await sql.end();

  // The router isolate's CPU per pipeline stage: it writes its profile when it exits.
  const profiled = results.filter((result) =>
    result.scenario.startsWith('router') && result.scenario !== 'router-exact'
  );
  const profiledOk = profiled.reduce((sum, result) => sum + result.ok, 0);
  const measuredCpu = profiledOk > 0 && profiled.every((result) => result.cpu_ms_per_request)
    ? profiled.reduce((sum, result) => sum + result.cpu_ms_per_request!.proxy * result.ok, 0) / profiledOk
    : undefined;
  const stageCpu = cpuProfileDir
    ? await processes.stop(routerProcess).then(() => profiledStages(cpuProfileDir, profiledRequests, measuredCpu))
    : null;

  const passthrough = results.find((result) => result.scenario === 'passthrough')!;
  const ratioPairs: [string, string, number][] = [
    ['router', 'passthrough', connections],
    ['router-stream', 'passthrough-stream', connections],
    // What relaying each chunk in JavaScript costs at all, and what the router adds over that floor.
    ['passthrough-stream-js', 'passthrough-stream', connections],
    ['router-stream', 'passthrough-stream-js', connections],
    ['router-agent-turn', 'passthrough-agent-turn', connections],
    ['router', 'passthrough', 1],
  ];
  // Without the router scenario, the ratio is taken against the first router-* scenario run (none: no ratio).
  const router = results.find((result) => result.scenario === 'router') ??
    results.find((result) => result.scenario.startsWith('router'));
  const exact = results.find((result) => result.scenario === 'router-exact');
  const leased = results.find((result) => result.scenario === 'router');
  const report = {
    date: new Date().toISOString(),
    machine: {
      cores: os.cpus().length,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      postgres: version.server_version,
      node: process.version,
    },
    settings: {
      connections,
      duration_s: duration,
      database: process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded PostgreSQL 17',
      synchronous_commit: 'on (default)',
    },
    results,
    sweep: sweepResults,
    router_vs_passthrough: router
      ? {
        scenario: router.scenario,
        throughput_ratio: Math.round((router.requests_per_second / passthrough.requests_per_second) * 1000) / 1000,
        p50_added_ms: Math.round((router.latency_ms.p50 - passthrough.latency_ms.p50) * 100) / 100,
        p99_added_ms: Math.round((router.latency_ms.p99 - passthrough.latency_ms.p99) * 100) / 100,
        // What one request costs the isolate, as a multiple of the pass-through's cost: the capacity
        // ratio on a machine where the database and the load generator run elsewhere.
        proxy_cpu_ratio: router.cpu_ms_per_request && passthrough.cpu_ms_per_request
          ? Math.round((router.cpu_ms_per_request.proxy / passthrough.cpu_ms_per_request.proxy) * 100) / 100
          : null,
      }
      : null,
    // Each router scenario against its pass-through twin, same run.
    ratios: ratioPairs.flatMap(([routed, bare, conns]) => {
      const r = results.find((result) => result.scenario === routed && result.connections === conns);
      const p = results.find((result) => result.scenario === bare && result.connections === conns);
      if (!r || !p || p.requests_per_second === 0) return [];
      return [{
        scenario: routed,
        against: bare,
        connections: conns,
        throughput_ratio: Math.round((r.requests_per_second / p.requests_per_second) * 1000) / 1000,
        p50_added_ms: Math.round((r.latency_ms.p50 - p.latency_ms.p50) * 100) / 100,
        proxy_cpu_ratio: r.cpu_ms_per_request && p.cpu_ms_per_request && p.cpu_ms_per_request.proxy > 0
          ? Math.round((r.cpu_ms_per_request.proxy / p.cpu_ms_per_request.proxy) * 100) / 100
          : null,
      }];
    }),
    // Budget leases on (router) against off (router-exact, a request per reservation), same run.
    leases_vs_exact: exact && leased
      ? {
        throughput_ratio: Math.round((leased.requests_per_second / exact.requests_per_second) * 100) / 100,
        p50_ms: { leases: leased.latency_ms.p50, exact: exact.latency_ms.p50 },
        database_cpu_ms_per_request: {
          leases: leased.cpu_ms_per_request?.database ?? null,
          exact: exact.cpu_ms_per_request?.database ?? null,
        },
      }
      : null,
    stage_cpu_ms_per_request: stageCpu,
    conservation: {
      invariant_violations: violations.count,
      // autocannon stops counting at the end of each run while requests are still in flight,
      // so records >= the 2xx it counted; the exact check is lost_usage_records.
      usage_records: records.count,
      successful_router_requests_counted: routerSuccesses,
      lost_usage_records: lost.count,
      open_reservations: open.count,
      reserved_after: reserved.total,
      holds: violations.count === 0 && lost.count === 0 && open.count === 0 && reserved.total === 0 &&
        records.count >= routerSuccesses,
    },
  };

  const ratio = report.router_vs_passthrough;
  const rows = [...results, ...sweepResults].map((result) =>
    `| ${result.scenario} | ${result.connections} | ${result.requests_per_second} | ${result.latency_ms.p50} | ${result.latency_ms.p95} | ${result.latency_ms.p99} | ${result.errors} | ${
      result.cpu_ms_per_request?.proxy ?? ''
    } | ${result.cpu_ms_per_request?.database ?? ''} |${
      result.ttfb_ms ? ` ttfb p50 ${result.ttfb_ms.p50.toFixed(1)} ms, p99 ${result.ttfb_ms.p99.toFixed(1)} ms` : ''
    }`
  );
  const markdown = [
    `# Switchyard benchmark, ${report.date}`,
    '',
    `${report.machine.cores} cores (${report.machine.cpu}), PostgreSQL ${report.machine.postgres}, ${report.settings.database}, ${connections} connections, ${duration} s per scenario.`,
    '',
    '| scenario | connections | req/s | p50 ms | p97.5 ms | p99 ms | errors | proxy CPU ms/req | database CPU ms/req | notes',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    ratio
      ? `${ratio.scenario} / passthrough throughput: **${ratio.throughput_ratio}**; p50 +${ratio.p50_added_ms} ms; p99 +${ratio.p99_added_ms} ms; router isolate CPU per request: ${
        ratio.proxy_cpu_ratio ?? 'n/a'
      } x the pass-through's`
      : 'no router scenario ran: no ratio',
    ...report.ratios.map((pair) =>
      `${pair.scenario} / ${pair.against} @${pair.connections}: throughput **${pair.throughput_ratio}**, p50 +${pair.p50_added_ms} ms, isolate CPU ${
        pair.proxy_cpu_ratio ?? 'n/a'
      } x`
    ),
    ...(report.leases_vs_exact
      ? [
        '',
        `budget leases: router / router-exact throughput **${report.leases_vs_exact.throughput_ratio}** (p50 ${report.leases_vs_exact.p50_ms.leases} against ${report.leases_vs_exact.p50_ms.exact} ms; database CPU ${
          report.leases_vs_exact.database_cpu_ms_per_request.leases ?? 'n/a'
        } against ${report.leases_vs_exact.database_cpu_ms_per_request.exact ?? 'n/a'} ms/req)`,
      ]
      : []),
    ...(stageCpu
      ? [
        '',
        `router isolate CPU per stage (the profile's shares, scaled to the isolate CPU per request measured from /proc; profile in ${cpuProfileDir}):`,
        '',
        stageMarkdown([{ label: 'this run', table: stageCpu }]),
      ]
      : []),
    '',
    `conservation: ${report.conservation.invariant_violations} invariant violations; ${report.conservation.usage_records} usage records (${report.conservation.successful_router_requests_counted} successes counted by autocannon); ${report.conservation.lost_usage_records} lost usage records; ${report.conservation.open_reservations} open reservations; reserved after the run: ${report.conservation.reserved_after} → ${
      report.conservation.holds ? 'HOLDS' : 'BROKEN'
    }`,
    '',
  ].join('\n');

  const resultsDir = path.join(repoRoot, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const stamp = report.date.replace(/[:.]/g, '-');
  await writeFile(path.join(resultsDir, `${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(resultsDir, `${stamp}.md`), markdown);
  console.log(asJson ? JSON.stringify(report, null, 2) : markdown);
  if (!report.conservation.holds) process.exitCode = 1;
} finally {
  // Wait (bounded) for each child to exit: the router writes its CPU profile on the way out.
  await processes.stopAll();
  await stopDatabase?.();
  await rm(tempDir, { recursive: true, force: true });
}

/** The newest CPU profile in `dir` (the router writes it when it exits) as a stage table. */
function profiledStages(dir: string, requests: number, measuredCpuMsPerRequest: number | undefined): StageTable | null {
  const profiles = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => ({ file: path.join(dir, name), at: statSync(path.join(dir, name)).mtimeMs }))
    .sort((a, b) => b.at - a.at);
  if (profiles.length === 0) {
    log(`no CPU profile in ${dir}: no stage table`);
    return null;
  }
  return stageTable(profiles[0].file, requests, measuredCpuMsPerRequest);
}

/**
 * A coding agent's turn: a system prompt, ten turns of conversation, three
 * tool definitions (about 12 KB), streamed; the fake echoes the last user
 * message, about 200 words in about 50 chunks of 4.
 */
function agentTurnBody(): string {
  const sentence = (n: number) =>
    `Step ${n}: read the failing test, find the function it calls, and explain the change before editing any file.`;
  const paragraph = (from: number, count: number) =>
    Array.from({ length: count }, (_, i) => sentence(from + i)).join(' ');
  const messages: { role: string; content: string }[] = [
    {
      role: 'system',
      content: `You are a careful coding agent working in a TypeScript repository. ${paragraph(0, 20)}`,
    },
  ];
  for (let turn = 0; turn < 10; turn++) {
    messages.push({ role: 'user', content: paragraph(turn * 10, 4) });
    messages.push({ role: 'assistant', content: paragraph(turn * 10 + 4, 4) });
  }
  // The last turn, new in every request as in a real session (load() numbers NEW_TURN): the fake
  // echoes it (about 200 words). Everything before it is the history an agent resends each turn.
  messages.push({ role: 'user', content: `Turn ${newTurnMarker}. ${paragraph(200, 10)}` });
  const tool = (name: string, description: string) => ({
    type: 'function',
    function: {
      name,
      description,
      parameters: {
        type: 'object',
        properties: { path: { type: 'string', description: 'A path relative to the repository root' } },
        required: ['path'],
      },
    },
  });
  return JSON.stringify({
    model: 'bench-agent-model',
    max_tokens: 400,
    stream: true,
    stream_options: { include_usage: true },
    messages,
    tools: [
      tool('read_file', 'Read a file of the repository'),
      tool('edit_file', 'Replace a range of lines of a file'),
      tool('run_tests', 'Run the tests under a path'),
    ],
  });
}
