/** A provider API key as the key vault hands it out (decrypted, never logged). */
export interface ProviderKey {
  secret: string;
  keyId: string;
  version: number;
}

/** Where the router gets provider keys: the key vault (tenant key first, then global). */
export interface ProviderKeySource {
  getProviderKey(
    tenantId: string | null,
    provider: string,
    options?: { requestId?: string },
  ): Promise<ProviderKey | null>;
}

/**
 * Holds no keys: every provider is skipped and the router answers 503
 * provider_unavailable. The deployed router uses it until the key vault's
 * resolver is wired in (issue 5); it never invents a key.
 */
export const noProviderKeys: ProviderKeySource = {
  getProviderKey: () => Promise.resolve(null),
};
