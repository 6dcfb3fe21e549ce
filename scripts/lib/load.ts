import autocannon from 'autocannon';

export interface LoadOptions {
  url: string;
  headers?: Record<string, string>;
  connections: number;
  durationSeconds: number;
  /** Hard cap on requests: the run stops at whichever comes first. */
  maxRequests: number;
}

export interface LoadResult {
  url: string;
  connections: number;
  requests: number;
  /** Non-2xx answers plus connection errors and timeouts. */
  errors: number;
  error_rate: number;
  throughput_rps: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  duration_seconds: number;
}

/** Bounds that keep a run small on a shared 2-core machine. */
const loadLimits = { maxConnections: 64, maxDurationSeconds: 60, maxRequests: 100_000 } as const;

export class LoadTargetError extends Error {}

/** Load is sent only to this machine: loopback addresses (127.0.0.0/8, ::1, localhost). */
function assertLoopback(url: string): void {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new LoadTargetError(`not a URL: ${JSON.stringify(url)}`);
  }
  const loopback = host === 'localhost' || host === '[::1]' || host === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!loopback) throw new LoadTargetError(`load runs only against loopback addresses, not ${host}`);
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

/**
 * A bounded autocannon run (connections, seconds and a request cap), with
 * P50/P95/P99 from every response time (autocannon's own summary has no P95).
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  assertLoopback(options.url);
  if (options.connections < 1 || options.connections > loadLimits.maxConnections) {
    throw new LoadTargetError(`connections must be 1 to ${loadLimits.maxConnections}`);
  }
  if (options.durationSeconds <= 0 || options.durationSeconds > loadLimits.maxDurationSeconds) {
    throw new LoadTargetError(`duration must be above 0 and at most ${loadLimits.maxDurationSeconds} seconds`);
  }
  const maxRequests = Math.min(options.maxRequests, loadLimits.maxRequests);
  const latencies: number[] = [];
  let failures = 0;
  let transportErrors = 0;
  const started = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: options.url,
      headers: options.headers,
      connections: options.connections,
      duration: options.durationSeconds,
      maxOverallRequests: maxRequests,
      timeout: 10,
    }, (error, done) => (error ? reject(error) : resolve(done)));
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      latencies.push(responseTime);
      if (statusCode < 200 || statusCode >= 300) failures += 1;
    });
    instance.on('reqError', () => {
      transportErrors += 1;
    });
  });
  const seconds = Math.max(result.duration || (performance.now() - started) / 1000, 0.001);
  const sorted = [...latencies].sort((a, b) => a - b);
  const requests = latencies.length + transportErrors;
  const errors = failures + transportErrors;
  const round = (value: number) => Math.round(value * 100) / 100;
  return {
    url: options.url,
    connections: options.connections,
    requests,
    errors,
    error_rate: requests === 0 ? 1 : round(errors / requests * 10_000) / 10_000,
    throughput_rps: round(latencies.length / seconds),
    p50_ms: round(percentile(sorted, 50)),
    p95_ms: round(percentile(sorted, 95)),
    p99_ms: round(percentile(sorted, 99)),
    duration_seconds: round(seconds),
  };
}
