// How long an upstream asked us to wait, from Retry-After and provider rate-limit headers.

/** Milliseconds to wait, or undefined when the upstream gave no hint; `nowMs` comes from the caller's clock. */
export function parseRetryAfterMs(headers: Headers, nowMs: number): number | undefined {
  const retryAfterMs = headers.get('retry-after-ms'); // OpenAI and Azure send this
  if (retryAfterMs !== null && /^\d+(\.\d+)?$/.test(retryAfterMs.trim())) {
    return Math.ceil(Number(retryAfterMs));
  }
  const retryAfter = headers.get('retry-after');
  if (retryAfter !== null) {
    const parsed = parseRetryAfterValue(retryAfter, nowMs);
    if (parsed !== undefined) return parsed;
  }
  return parseRateLimitResetMs(headers, nowMs);
}

/** Retry-After is either delta-seconds or an HTTP date. */
function parseRetryAfterValue(value: string, nowMs: number): number | undefined {
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.ceil(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** Go-style durations as OpenAI sends them: "1s", "6m0s", "20ms", "1h2m3.5s". */
export function parseDurationMs(value: string): number | undefined {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  const trimmed = value.trim();
  const pattern = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let consumed = 0;
  for (const match of trimmed.matchAll(pattern)) {
    if (match.index !== consumed) return undefined;
    total += Number(match[1]) * (units[match[2]] ?? 0);
    consumed += match[0].length;
  }
  return consumed > 0 && consumed === trimmed.length ? Math.ceil(total) : undefined;
}

interface RateLimitWindow {
  reset: string;
  remaining: string;
  format: 'duration' | 'timestamp';
}

const RATE_LIMIT_WINDOWS: readonly RateLimitWindow[] = [
  { reset: 'x-ratelimit-reset-requests', remaining: 'x-ratelimit-remaining-requests', format: 'duration' },
  { reset: 'x-ratelimit-reset-tokens', remaining: 'x-ratelimit-remaining-tokens', format: 'duration' },
  ...['requests', 'tokens', 'input-tokens', 'output-tokens'].map((name): RateLimitWindow => ({
    reset: `anthropic-ratelimit-${name}-reset`,
    remaining: `anthropic-ratelimit-${name}-remaining`,
    format: 'timestamp',
  })),
];

/**
 * The reset of the exhausted window (remaining = 0) is the one that matters; when no
 * window says it is exhausted, the earliest reset is the best guess.
 */
export function parseRateLimitResetMs(headers: Headers, nowMs: number): number | undefined {
  const exhausted: number[] = [];
  const others: number[] = [];
  for (const window of RATE_LIMIT_WINDOWS) {
    const raw = headers.get(window.reset);
    if (raw === null) continue;
    const ms = window.format === 'duration' ? parseDurationMs(raw) : timestampDelta(raw, nowMs);
    if (ms === undefined) continue;
    (headers.get(window.remaining)?.trim() === '0' ? exhausted : others).push(ms);
  }
  if (exhausted.length > 0) return Math.max(...exhausted);
  return others.length > 0 ? Math.min(...others) : undefined;
}

function timestampDelta(value: string, nowMs: number): number | undefined {
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
