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
