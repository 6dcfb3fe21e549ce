import { z } from 'zod';
import { parseCidr } from './middleware/operator-network.ts';

const commaList = z
  .string()
  .optional()
  .transform((value) => (value ?? '').split(',').map((item) => item.trim()).filter(Boolean));

// An unset and an empty variable mean the same: not configured.
const optionalText = z.string().optional().transform((value) => (value?.trim() ? value.trim() : undefined));

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const environmentSchema = z
  .object({
    SUPABASE_DB_URL: z.string().url().optional(),
    DATABASE_URL: z.string().url().optional(),
    SUPABASE_URL: z.string().url().optional(),
    SUPABASE_ANON_KEY: z.string().min(1).optional(),
    SUPABASE_SERVICE_ROLE_KEY: z.string().min(1).optional(),
    SUPABASE_PUBLISHABLE_KEYS: commaList,
    SUPABASE_SECRET_KEYS: commaList,
    SUPABASE_JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    SUPABASE_JWKS_URL: z.string().url().optional(),
    SUPABASE_JWT_ISSUER: z.string().min(1).optional(),
    SUPABASE_JWKS_COOLDOWN_MS: z.coerce.number().int().min(0).default(30_000),
    ALLOWED_ORIGINS: commaList,
    OPS_ALLOWED_CIDRS: commaList,
    JOB_TOKENS: commaList,
    MAX_BODY_BYTES: positiveInt(1024 * 1024),
    LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    DB_POOL_MAX: positiveInt(8),
    AUTH_CACHE_TTL_MS: z.coerce.number().int().min(0).max(60_000).default(5_000),
    DB_PREPARE: z.enum(['true', 'false']).optional(),
    ROUTER_CATALOG_TTL_MS: z.coerce.number().int().min(0).default(5_000),
    ROUTER_FAILURE_THRESHOLD: positiveInt(3),
    ROUTER_COOLDOWN_MS: z.coerce.number().int().min(0).default(30_000),
    ROUTER_HEALTH_FLUSH_MS: z.coerce.number().int().min(0).default(5_000),
    ROUTER_RETRY_BASE_MS: z.coerce.number().int().min(0).default(200),
    ROUTER_RETRY_MAX_MS: z.coerce.number().int().min(0).default(2_000),
    ROUTER_MAX_RETRY_AFTER_MS: z.coerce.number().int().min(0).default(5_000),
    ECONOMICS_BATCH_MAX: positiveInt(64),
    ECONOMICS_BATCHES_IN_FLIGHT: positiveInt(1),
    RESERVATION_TTL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(600),
    BUDGET_LEASE_REQUESTS: z.coerce.number().int().min(0).max(10_000).default(64),
    BUDGET_LEASE_ADMIT_SECONDS: z.coerce.number().min(0.1).max(60).default(10),
    BUDGET_LEASE_IDLE_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
    BUDGET_LEASE_DECLINE_BACKOFF_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
    CACHE_DEFAULT_TTL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
    // Checked when the KMS is built (kms/create-kms.ts): a bad key must not stop the isolate.
    SWITCHYARD_MASTER_KEYS: optionalText,
    KMS_URL: optionalText,
    KMS_TOKEN: optionalText,
    KMS_KEY_ID: optionalText,
    KMS_TIMEOUT_MS: positiveInt(2_000),
    VAULT_CACHE_TTL_MS: z.coerce.number().int().min(0).max(300_000).default(30_000),
    // Checked when the storage is built (storage/create-storage.ts): missing pieces give 503 storage_unavailable.
    STORAGE_ENABLED: z.enum(['true', 'false']).default('false'),
    STORAGE_URL: optionalText.pipe(z.string().url().optional()),
    STORAGE_TIMEOUT_MS: positiveInt(5_000),
    ARTIFACT_URL_TTL_SECONDS: z.coerce.number().int().min(1).max(7 * 86_400).default(300),
  })
  .superRefine((env, ctx) => {
    for (const network of env.OPS_ALLOWED_CIDRS) {
      try {
        parseCidr(network);
      } catch {
        ctx.addIssue({ code: 'custom', path: ['OPS_ALLOWED_CIDRS'], message: `not an IP network: ${network}` });
      }
    }
    if (!env.SUPABASE_DB_URL && !env.DATABASE_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['SUPABASE_DB_URL'],
        message: 'SUPABASE_DB_URL or DATABASE_URL is required',
      });
    }
    if (!env.SUPABASE_JWT_SECRET && !env.SUPABASE_JWKS_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['SUPABASE_JWT_SECRET'],
        message: 'SUPABASE_JWT_SECRET or SUPABASE_JWKS_URL is required to verify user JWTs',
      });
    }
    const projectKeys = [env.SUPABASE_ANON_KEY, env.SUPABASE_SERVICE_ROLE_KEY].filter(Boolean).length +
      env.SUPABASE_PUBLISHABLE_KEYS.length + env.SUPABASE_SECRET_KEYS.length;
    if (projectKeys === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['SUPABASE_ANON_KEY'],
        message:
          'at least one project key is required (SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_PUBLISHABLE_KEYS or SUPABASE_SECRET_KEYS)',
      });
    }
  });

export interface Config {
  databaseUrl: string;
  databasePoolMax: number;
  /** false behind Supavisor's transaction pooler (port 6543), which cannot keep prepared statements. */
  databasePrepare: boolean;
  supabaseUrl?: string;
  projectKeys: {
    anonKey?: string;
    serviceRoleKey?: string;
    publishableKeys: readonly string[];
    secretKeys: readonly string[];
  };
  /** jwksCooldownMs: least time between two JWKS fetches for unknown `kid`s. */
  jwt: { secret?: string; jwksUrl?: string; issuer?: string; jwksCooldownMs: number };
  allowedOrigins: readonly string[];
  /** Client networks operator endpoints answer; empty = anyone (the default). */
  opsAllowedCidrs: readonly string[];
  /** Tokens a scheduler sends in X-Job-Token; several during rotation. */
  jobTokens: readonly string[];
  maxBodyBytes: number;
  /** How long a resolved tenant API key is trusted without asking the database again. */
  authCacheTtlMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  router: {
    /** How long the catalog and policies are cached per isolate: a change applies within it. */
    catalogTtlMs: number;
    /** Consecutive failures that open a provider's circuit, and for how long. */
    failureThreshold: number;
    cooldownMs: number;
    healthFlushMs: number;
    retryBaseMs: number;
    retryMaxMs: number;
    /** A Retry-After longer than this falls back to the next candidate instead of waiting. */
    maxRetryAfterMs: number;
  };
  economics: {
    /** Most reserve/settle/release calls sent in one SQL batch (one commit). */
    batchMax: number;
    /** Batches of one kind in flight at once per isolate (batches of one tenant serialise on its counter row). */
    batchesInFlight: number;
    /** After this a reservation nobody settled is released by the reaper. */
    reservationTtlSeconds: number;
    /** Response-cache TTL when a request opts in with `x-switchyard-cache: on`. */
    cacheDefaultTtlSeconds: number;
    /** Budget leases (economics/lease-ledger.ts): requests per lease (0: off), admission window, idle close, decline backoff. */
    lease: { requests: number; admitSeconds: number; idleCloseMs: number; declineBackoffMs: number };
  };
  /** Key vault KMS: an external one (url, token, keyId) when `url` is set, else the local master keys. */
  kms: {
    masterKeys?: string;
    url?: string;
    token?: string;
    keyId?: string;
    timeoutMs: number;
  };
  vault: {
    /** How long a decrypted provider key is reused per isolate; a rotation or disable applies within it. */
    cacheTtlMs: number;
  };
  /** Supabase Storage for artifacts: opt-in (STORAGE_ENABLED); url and serviceKey default to the project's. */
  storage: {
    enabled: boolean;
    url?: string;
    serviceKey?: string;
    timeoutMs: number;
  };
  artifacts: {
    /** How long a signed artifact URL stays valid. */
    urlTtlSeconds: number;
  };
}

/** Raised at start when the environment is incomplete; names variables, never values. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment once, at start. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const e = parsed.data;
  const databaseUrl = (e.SUPABASE_DB_URL ?? e.DATABASE_URL) as string;
  return {
    databaseUrl,
    databasePoolMax: e.DB_POOL_MAX,
    databasePrepare: e.DB_PREPARE ? e.DB_PREPARE === 'true' : new URL(databaseUrl).port !== '6543',
    supabaseUrl: e.SUPABASE_URL,
    projectKeys: {
      anonKey: e.SUPABASE_ANON_KEY,
      serviceRoleKey: e.SUPABASE_SERVICE_ROLE_KEY,
      publishableKeys: e.SUPABASE_PUBLISHABLE_KEYS,
      secretKeys: e.SUPABASE_SECRET_KEYS,
    },
    jwt: {
      secret: e.SUPABASE_JWT_SECRET,
      jwksUrl: e.SUPABASE_JWKS_URL,
      issuer: e.SUPABASE_JWT_ISSUER,
      jwksCooldownMs: e.SUPABASE_JWKS_COOLDOWN_MS,
    },
    allowedOrigins: e.ALLOWED_ORIGINS,
    opsAllowedCidrs: e.OPS_ALLOWED_CIDRS,
    jobTokens: e.JOB_TOKENS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    authCacheTtlMs: e.AUTH_CACHE_TTL_MS,
    logLevel: e.LOG_LEVEL,
    router: {
      catalogTtlMs: e.ROUTER_CATALOG_TTL_MS,
      failureThreshold: e.ROUTER_FAILURE_THRESHOLD,
      cooldownMs: e.ROUTER_COOLDOWN_MS,
      healthFlushMs: e.ROUTER_HEALTH_FLUSH_MS,
      retryBaseMs: e.ROUTER_RETRY_BASE_MS,
      retryMaxMs: e.ROUTER_RETRY_MAX_MS,
      maxRetryAfterMs: e.ROUTER_MAX_RETRY_AFTER_MS,
    },
    economics: {
      batchMax: e.ECONOMICS_BATCH_MAX,
      batchesInFlight: e.ECONOMICS_BATCHES_IN_FLIGHT,
      reservationTtlSeconds: e.RESERVATION_TTL_SECONDS,
      cacheDefaultTtlSeconds: e.CACHE_DEFAULT_TTL_SECONDS,
      lease: {
        requests: e.BUDGET_LEASE_REQUESTS,
        admitSeconds: e.BUDGET_LEASE_ADMIT_SECONDS,
        idleCloseMs: e.BUDGET_LEASE_IDLE_MS,
        declineBackoffMs: e.BUDGET_LEASE_DECLINE_BACKOFF_MS,
      },
    },
    kms: {
      masterKeys: e.SWITCHYARD_MASTER_KEYS,
      url: e.KMS_URL,
      token: e.KMS_TOKEN,
      keyId: e.KMS_KEY_ID,
      timeoutMs: e.KMS_TIMEOUT_MS,
    },
    vault: { cacheTtlMs: e.VAULT_CACHE_TTL_MS },
    storage: {
      enabled: e.STORAGE_ENABLED === 'true',
      url: e.STORAGE_URL ?? e.SUPABASE_URL,
      serviceKey: e.SUPABASE_SERVICE_ROLE_KEY ?? e.SUPABASE_SECRET_KEYS[0],
      timeoutMs: e.STORAGE_TIMEOUT_MS,
    },
    artifacts: { urlTtlSeconds: e.ARTIFACT_URL_TTL_SECONDS },
  };
}
