import { z } from 'zod';

/** Readiness thresholds, read once from the environment (names in README). */
export interface ReadinessSettings {
  /** Each check's time limit; the whole answer stays under a second. */
  checkTimeoutMs: number;
  /** More unrequeued dead letters than this fails `dlq_depth_under_threshold`. */
  dlqMaxDepth: number;
  /** The newest provider_health row older than this fails `provider_health_fresh`. */
  providerHealthMaxAgeSeconds: number;
  /** A schedule whose last successful run is older than this many intervals fails `schedules_on_time` (default 3). */
  scheduleLateFactor?: number;
  /** Whether a scheduler must have run: no run ever recorded fails `schedules_on_time` instead of skipping (default false). */
  schedulesRequired?: boolean;
  /** Whether Storage must be configured and working: not configured fails `storage` instead of skipping (default false). */
  storageRequired?: boolean;
  /** Names of the environment variables that hold a value (never the values), or undefined when not given. */
  presentVariables?: ReadonlySet<string>;
}

const settingsSchema = z.object({
  READINESS_CHECK_TIMEOUT_MS: z.coerce.number().int().min(50).max(10_000).default(800),
  READINESS_DLQ_MAX_DEPTH: z.coerce.number().int().min(0).default(100),
  READINESS_PROVIDER_HEALTH_MAX_AGE_SECONDS: z.coerce.number().int().min(1).default(3600),
  READINESS_SCHEDULE_LATE_FACTOR: z.coerce.number().min(1).max(100).default(3),
  READINESS_SCHEDULES_REQUIRED: z.enum(['true', 'false']).default('false'),
  READINESS_STORAGE_REQUIRED: z.enum(['true', 'false']).default('false'),
});

/** Parses the readiness settings; throws naming the variable (never its value) when one is malformed. */
export function loadReadinessSettings(environment?: Record<string, string | undefined>): ReadinessSettings {
  const parsed = settingsSchema.safeParse(environment ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid readiness configuration: ${problems.join('; ')}`);
  }
  return {
    checkTimeoutMs: parsed.data.READINESS_CHECK_TIMEOUT_MS,
    dlqMaxDepth: parsed.data.READINESS_DLQ_MAX_DEPTH,
    providerHealthMaxAgeSeconds: parsed.data.READINESS_PROVIDER_HEALTH_MAX_AGE_SECONDS,
    scheduleLateFactor: parsed.data.READINESS_SCHEDULE_LATE_FACTOR,
    schedulesRequired: parsed.data.READINESS_SCHEDULES_REQUIRED === 'true',
    storageRequired: parsed.data.READINESS_STORAGE_REQUIRED === 'true',
    presentVariables: environment === undefined ? undefined : presentVariableNames(environment),
  };
}

/** The names of variables that hold a non-blank value. */
function presentVariableNames(environment: Record<string, string | undefined>): ReadonlySet<string> {
  return new Set(
    Object.entries(environment).filter(([, value]) => value !== undefined && value.trim() !== '').map(([name]) => name),
  );
}
