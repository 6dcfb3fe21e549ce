-- A small real catalog: providers and models with their public list prices
-- (USD per million tokens, stored in USD micro-units: $0.15 -> 150000), as
-- published by the providers at the time of writing; review before launch.
-- Keys are not seeded: a provider is used once the key vault holds its key.
-- Idempotent: `npm start` and the tests apply it on every start.

insert into public.llm_providers (slug, kind, base_url, api_version, region) values
  ('openai', 'openai', 'https://api.openai.com/v1', null, 'us'),
  ('anthropic', 'anthropic', 'https://api.anthropic.com', '2023-06-01', 'us'),
  ('gemini', 'gemini', 'https://generativelanguage.googleapis.com', 'v1beta', 'us')
on conflict (slug) do nothing;

insert into public.llm_models (
  provider_id, alias, upstream_model, input_cost_per_million, output_cost_per_million,
  context_window, max_output_tokens, capabilities, regions, priority
)
select p.id, m.alias, m.upstream_model, m.input_cost, m.output_cost, m.context_window, m.max_output,
       m.capabilities, array['us'], m.priority
from (values
  ('openai', 'gpt-4o-mini', 'gpt-4o-mini', 150000, 600000, 128000, 16384,
    array['chat', 'stream', 'tools', 'vision', 'json'], 100),
  ('openai', 'gpt-4o', 'gpt-4o', 2500000, 10000000, 128000, 16384,
    array['chat', 'stream', 'tools', 'vision', 'json'], 100),
  ('openai', 'text-embedding-3-small', 'text-embedding-3-small', 20000, 0, 8191, 1,
    array['embeddings'], 100),
  ('anthropic', 'claude-3-5-haiku', 'claude-3-5-haiku-latest', 800000, 4000000, 200000, 8192,
    array['chat', 'stream', 'tools', 'vision', 'json'], 100),
  ('anthropic', 'claude-sonnet-4', 'claude-sonnet-4-20250514', 3000000, 15000000, 200000, 64000,
    array['chat', 'stream', 'tools', 'vision', 'json'], 100),
  ('gemini', 'gemini-2.0-flash', 'gemini-2.0-flash', 100000, 400000, 1048576, 8192,
    array['chat', 'stream', 'tools', 'vision', 'json'], 100),
  ('gemini', 'text-embedding-004', 'text-embedding-004', 0, 0, 2048, 1,
    array['embeddings'], 100)
) as m(provider_slug, alias, upstream_model, input_cost, output_cost, context_window, max_output, capabilities, priority)
join public.llm_providers p on p.slug = m.provider_slug
on conflict (provider_id, alias) do nothing;
