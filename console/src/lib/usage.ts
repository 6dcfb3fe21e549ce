// Pure view logic for usage: days, chart series, totals and CSV. Unit-tested in test/unit/console/.

/** One row of GET /ops/usage. */
export interface UsageRow {
  provider?: string | null;
  model?: string | null;
  key?: string | null;
  upstream_model?: string | null;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd_micros: number;
  cache_hits: number;
}

export type UsageGroup = 'provider' | 'model' | 'key' | 'upstream_model';
export type UsageMetric = 'requests' | 'tokens' | 'cost_usd_micros';

export interface UsageDay {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  /** Inclusive start and exclusive end as ISO date-times, what /ops/usage takes as from and to. */
  from: string;
  to: string;
}

const dayMs = 86_400_000;

/** The last `count` UTC days up to and including the one `now` is in, oldest first. */
export function lastUtcDays(count: number, now: Date): UsageDay[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return utcDaysBetween(new Date(today - (count - 1) * dayMs), new Date(today));
}

/** Every UTC day from `first` to `last` (dates, inclusive), oldest first. */
function utcDaysBetween(first: Date, last: Date): UsageDay[] {
  const days: UsageDay[] = [];
  const start = Date.UTC(first.getUTCFullYear(), first.getUTCMonth(), first.getUTCDate());
  const end = Date.UTC(last.getUTCFullYear(), last.getUTCMonth(), last.getUTCDate());
  for (let at = start; at <= end; at += dayMs) {
    days.push({
      day: new Date(at).toISOString().slice(0, 10),
      from: new Date(at).toISOString(),
      // The last millisecond of the day: /ops/usage's `to` is inclusive.
      to: new Date(at + dayMs - 1).toISOString(),
    });
  }
  return days;
}

function metricOf(row: UsageRow, metric: UsageMetric): number {
  return metric === 'tokens' ? row.prompt_tokens + row.completion_tokens : row[metric];
}

/** A row's label for the given groups: `openai / gpt-4o-mini`; `(none)` for a missing value. */
export function groupLabel(row: UsageRow, groups: readonly UsageGroup[]): string {
  if (groups.length === 0) return 'all';
  return groups.map((group) => row[group] ?? '(none)').join(' / ');
}

export interface ChartSeries {
  labels: string[];
  datasets: { label: string; data: number[] }[];
}

/**
 * Per-day rows into one dataset per group (provider / model), a value for
 * every day (0 where the group had no usage), groups ordered by their total,
 * largest first.
 */
export function dailySeries(
  days: readonly { day: string; items: readonly UsageRow[] }[],
  groups: readonly UsageGroup[],
  metric: UsageMetric,
): ChartSeries {
  const byGroup = new Map<string, number[]>();
  days.forEach(({ items }, index) => {
    for (const row of items) {
      const label = groupLabel(row, groups);
      const values = byGroup.get(label) ?? new Array<number>(days.length).fill(0);
      values[index] += metricOf(row, metric);
      byGroup.set(label, values);
    }
  });
  const total = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
  const datasets = [...byGroup.entries()]
    .filter(([, values]) => total(values) > 0)
    .sort(([a, left], [b, right]) => total(right) - total(left) || a.localeCompare(b))
    .map(([label, data]) => ({ label, data }));
  return { labels: days.map(({ day }) => day), datasets };
}

export interface UsageTotals {
  requests: number;
  tokens: number;
  cost_usd_micros: number;
  cache_hits: number;
}

export function totals(rows: readonly UsageRow[]): UsageTotals {
  return rows.reduce(
    (sum, row) => ({
      requests: sum.requests + row.requests,
      tokens: sum.tokens + row.prompt_tokens + row.completion_tokens,
      cost_usd_micros: sum.cost_usd_micros + row.cost_usd_micros,
      cache_hits: sum.cache_hits + row.cache_hits,
    }),
    { requests: 0, tokens: 0, cost_usd_micros: 0, cache_hits: 0 },
  );
}

/** USD from micro-units: `$0.000150` below a cent, `$12.35` above. */
export function formatUsd(micros: number): string {
  const usd = micros / 1_000_000;
  if (usd !== 0 && Math.abs(usd) < 0.01) return `$${usd.toFixed(6)}`;
  return `$${usd.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

function csvField(value: unknown): string {
  const text = value === null || value === undefined ? '' : String(value);
  // Quote fields with separators, quotes or line breaks; a leading =, +, - or @ would run as a formula in a spreadsheet.
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** RFC 4180 CSV (CRLF line ends) of `rows` with these columns, in this order. */
export function toCsv<Row extends object>(rows: readonly Row[], columns: readonly (keyof Row & string)[]): string {
  const lines = [columns.map(csvField).join(',')];
  for (const row of rows) lines.push(columns.map((column) => csvField(row[column])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** Spent, reserved and free as shares of a limit (0..100 each, summing to at most 100). */
export function budgetShares(spent: number, reserved: number, limit: number): {
  spent: number;
  reserved: number;
  free: number;
} {
  if (limit <= 0) return { spent: spent > 0 ? 100 : 0, reserved: 0, free: 0 };
  const share = (value: number) => Math.min(100, Math.max(0, (value / limit) * 100));
  const spentShare = share(spent);
  const reservedShare = Math.min(100 - spentShare, share(reserved));
  return { spent: spentShare, reserved: reservedShare, free: 100 - spentShare - reservedShare };
}
