/** Router timings the test stack runs with, short so tests can watch them act. */
export const testRouterSettings = {
  failureThreshold: 2,
  cooldownMs: 4_000,
  catalogTtlMs: 300,
  vaultCacheTtlMs: 500,
} as const;

export const testRouterEnvironment: Record<string, string> = {
  ROUTER_FAILURE_THRESHOLD: String(testRouterSettings.failureThreshold),
  ROUTER_COOLDOWN_MS: String(testRouterSettings.cooldownMs),
  ROUTER_CATALOG_TTL_MS: String(testRouterSettings.catalogTtlMs),
  ROUTER_HEALTH_FLUSH_MS: '200',
  ROUTER_RETRY_BASE_MS: '10',
  ROUTER_RETRY_MAX_MS: '50',
  VAULT_CACHE_TTL_MS: String(testRouterSettings.vaultCacheTtlMs),
};
