import { eventually } from './eventually.ts';
import type { TestDatabase } from './stack.ts';

export interface CatalogFixture {
  providerId: string;
  providerSlug: string;
  modelId: string;
  alias: string;
  upstreamModel: string;
}

export interface CatalogFixtureOptions {
  kind?: 'openai' | 'openai_compatible' | 'azure_openai' | 'anthropic' | 'gemini';
  baseUrl: string;
  apiVersion?: string | null;
  upstreamModel?: string;
  /** USD micro-units per million tokens. */
  inputCostPerMillion?: number;
  outputCostPerMillion?: number;
  /** Prompt-cache prices; absent: null in the catalog (the input price). */
  cacheWriteCostPerMillion?: number;
  cacheReadCostPerMillion?: number;
  contextWindow?: number;
  maxOutputTokens?: number;
  capabilities?: string[];
  maxRetries?: number;
  connectTimeoutMs?: number;
  firstByteTimeoutMs?: number;
  totalTimeoutMs?: number;
  alias?: string;
  priority?: number;
}

/** A provider and one model of it, under names no other test uses. */
export async function createCatalogFixture(sql: TestDatabase, options: CatalogFixtureOptions): Promise<CatalogFixture> {
  const suffix = crypto.randomUUID().slice(0, 8);
  const kind = options.kind ?? 'openai';
  const providerSlug = `test-${kind.replace('_', '-')}-${suffix}`;
  const alias = options.alias ?? `test-model-${suffix}`;
  const upstreamModel = options.upstreamModel ?? 'gpt-4o-mini';
  const [provider] = await sql<{ id: string }[]>`
    insert into public.llm_providers (slug, kind, base_url, api_version, max_retries, connect_timeout_ms, first_byte_timeout_ms, total_timeout_ms)
    values (${providerSlug}, ${kind}, ${options.baseUrl}, ${options.apiVersion ?? null}, ${options.maxRetries ?? 1},
            ${options.connectTimeoutMs ?? 5000}, ${options.firstByteTimeoutMs ?? 5000}, ${
    options.totalTimeoutMs ?? 10000
  })
    returning id`;
  const [model] = await sql<{ id: string }[]>`
    insert into public.llm_models (provider_id, alias, upstream_model, input_cost_per_million, output_cost_per_million,
                                   cache_write_cost_per_million, cache_read_cost_per_million,
                                   context_window, max_output_tokens, capabilities, priority)
    values (${provider.id}, ${alias}, ${upstreamModel}, ${options.inputCostPerMillion ?? 1_000_000},
            ${options.outputCostPerMillion ?? 2_000_000}, ${options.cacheWriteCostPerMillion ?? null},
            ${options.cacheReadCostPerMillion ?? null}, ${options.contextWindow ?? 100_000}, ${
    options.maxOutputTokens ?? 1000
  },
            ${options.capabilities ?? ['chat', 'stream', 'tools', 'json', 'embeddings']}, ${options.priority ?? 100})
    returning id`;
  return { providerId: provider.id, providerSlug, modelId: model.id, alias, upstreamModel };
}

/**
 * Waits until the router answers from a catalog that holds every catalog
 * change committed so far (it caches the catalog per isolate for
 * ROUTER_CATALOG_TTL_MS), instead of sleeping one TTL. It adds a marker (a
 * provider that uses `keyedProviderSlug`'s vault key, a model of it, and a
 * policy over that model, under a new alias) and waits for GET /v1/models
 * (`listModels`) to list the alias: the catalog's provider, model and policy
 * queries all ran after the marker was committed, so after every earlier
 * change.
 */
export async function catalogCaughtUp(
  sql: TestDatabase,
  keyedProviderSlug: string,
  listModels: () => Promise<string[]>,
): Promise<void> {
  const marker = `catalog-marker-${crypto.randomUUID().slice(0, 8)}`;
  await sql.begin(async (tx) => {
    const [provider] = await tx<{ id: string }[]>`
      insert into public.llm_providers (slug, kind, base_url, key_name)
      select ${marker}, kind, base_url, ${keyedProviderSlug} from public.llm_providers where slug = ${keyedProviderSlug}
      returning id`;
    const [model] = await tx<{ id: string }[]>`
      insert into public.llm_models (provider_id, alias, upstream_model, input_cost_per_million, output_cost_per_million,
                                     context_window, max_output_tokens, capabilities)
      values (${provider.id}, ${`${marker}-model`}, 'marker', 1, 1, 1000, 10, ${['chat']}) returning id`;
    const [policy] = await tx<{ id: string }[]>`
      insert into public.routing_policies (name, model_alias, strategy) values (${marker}, ${marker}, 'priority')
      returning id`;
    await tx`insert into public.routing_policy_targets (policy_id, model_id, position) values (${policy.id}, ${model.id}, 0)`;
  });
  const listed = await eventually(listModels, (ids) => ids.includes(marker));
  if (!listed.includes(marker)) throw new Error(`the router's catalog never listed the marker ${marker}`);
  // Off again, so markers do not pile up among the providers that health probes visit.
  await sql`update public.llm_providers set enabled = false where slug = ${marker}`;
}
