import { z } from 'zod';

export interface MetricsSettings {
  /** Bearer token Prometheus sends; without one `/metrics` answers 503. */
  token?: string;
  /** Statement timeout of each database source per scrape. */
  databaseTimeoutMs: number;
}

const settingsSchema = z.object({
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  METRICS_DB_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(2_000),
});

/** Reads the metrics settings once; throws naming the variable (never its value) when one is malformed. */
export function loadMetricsSettings(environment: Record<string, string | undefined>): MetricsSettings {
  const parsed = settingsSchema.safeParse({
    ...environment,
    METRICS_TOKEN: environment.METRICS_TOKEN?.trim() || undefined,
  });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid metrics configuration: ${problems.join('; ')}`);
  }
  return { token: parsed.data.METRICS_TOKEN, databaseTimeoutMs: parsed.data.METRICS_DB_TIMEOUT_MS };
}
