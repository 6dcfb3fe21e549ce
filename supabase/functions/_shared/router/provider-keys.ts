import type { ProviderKeyResolver } from '../vault/resolver.ts';

export type { ProviderKey } from '../vault/resolver.ts';

/**
 * What the router needs of the key vault: the provider-key lookup alone, so
 * tests and the benchmark can hand in any source with the same contract.
 */
export type ProviderKeySource = Pick<ProviderKeyResolver, 'getProviderKey'>;
