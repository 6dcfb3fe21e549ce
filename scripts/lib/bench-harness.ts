// Pieces the benchmarks share (`npm run bench`, `npm run bench:scale`):
// child processes that announce they listen, an autocannon run summarised,
// CPU time from /proc, and the conservation check after a run.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import type postgres from 'postgres';
import { repoRoot } from './paths.ts';

export interface LoadResult {
  scenario: string;
  connections: number;
  requests_per_second: number;
  latency_ms: { p50: number; p95: number; p99: number };
  ok: number;
  errors: number;
}

/** CPU time (user + system) of one process so far, in ms; null where /proc is not there (Linux only). */
export function processCpuMs(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of proc(5), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}

/** Child processes started for one benchmark run, stopped together at its end. */
export class ProcessGroup {
  readonly children: ChildProcess[] = [];

  /** Starts a process and resolves once it prints `"listening"` or `"url"` (rejects on exit or after 30 s). */
  start(command: string, commandArgs: string[], env: Record<string, string>): Promise<ChildProcess> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, commandArgs, {
        cwd: repoRoot,
        env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.children.push(child);
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (/"listening"|"url"/.test(output)) resolve(child);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on(
        'exit',
        (code) =>
          reject(new Error(`${path.basename(commandArgs.at(-1) ?? command)} exited (${code}): ${output.slice(-500)}`)),
      );
      setTimeout(() => reject(new Error(`${commandArgs.at(-1)} did not start: ${output.slice(-500)}`)), 30_000);
    });
  }

  /** SIGTERM to one child, SIGKILL after 5 s; resolves when it has exited. */
  stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 5_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** SIGTERM to every child still running, SIGKILL after 5 s; resolves when all have exited. */
  async stopAll(): Promise<void> {
    await Promise.all(this.children.map((child) => this.stop(child)));
  }
}

/** One autocannon run of POST requests; `setupRequest` may vary each request (a header per tenant). */
export async function load(
  scenario: string,
  url: string,
  headers: Record<string, string>,
  body: string,
  conns: number,
  seconds: number,
  setupRequest?: (request: autocannon.Request) => autocannon.Request,
): Promise<LoadResult> {
  const result = await autocannon({
    url,
    method: 'POST',
    headers,
    body,
    connections: conns,
    duration: seconds,
    timeout: 10,
    ...(setupRequest ? { requests: [{ method: 'POST', body, headers, setupRequest }] } : {}),
  });
  const ok = result['2xx'];
  return {
    scenario,
    connections: conns,
    requests_per_second: Math.round(ok / seconds),
    latency_ms: {
      p50: result.latency.p50,
      p95: result.latency.p97_5 <= result.latency.p99 ? result.latency.p97_5 : result.latency.p99,
      p99: result.latency.p99,
    },
    ok,
    errors: result.non2xx + result.errors + result.timeouts,
  };
}

/**
 * Usage records lost by the ledger: a settled reservation (not a lease) without
 * its usage record, or a lease whose usd charges (charged + overflow) differ
 * from the sum of its usage records' cost.
 */
export async function lostUsageRecords(sql: postgres.Sql): Promise<number> {
  const [lost] = await sql<{ count: number }[]>`
    select (select count(*) from public.budget_reservations r
            where r.status = 'settled' and not exists (select 1 from public.budget_leases l where l.reservation_id = r.request_id)
              and not exists (select 1 from public.usage_records u where u.request_id = r.request_id))::int
         + (select count(*) from public.budget_leases l
            join public.budget_reservations r on r.request_id = l.reservation_id
            cross join lateral pg_catalog.jsonb_array_elements(r.items) i
            where i.value ->> 'unit' = 'usd_micros'
              and (i.value ->> 'charged')::bigint + (i.value ->> 'overflow')::bigint <>
                  (select coalesce(sum(u.cost_usd_micros), 0) from public.usage_records u where u.lease_id = l.reservation_id))::int
           as count`;
  return lost.count;
}

/** Waits (bounded) until the routers have closed their idle budget leases: no reservation left open. */
export async function awaitNoOpenReservations(sql: postgres.Sql, boundMs = 15_000): Promise<void> {
  for (let waited = 0; waited < boundMs; waited += 100) {
    const [pending] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.budget_reservations where status = 'reserved'`;
    if (pending.count === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
