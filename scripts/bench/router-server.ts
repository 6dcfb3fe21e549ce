// The real llm-router under Deno for the benchmark: authentication by tenant
// API key, rate limit, budget reserve/settle and usage records in PostgreSQL.
// Only the provider key comes from the environment (BENCH_PROVIDER_KEY) instead
// of the key vault, whose resolver serves it from its cache on this path.
//   deno run --config supabase/functions/deno.json -A scripts/bench/router-server.ts
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { createLlmRouterApp } from '../../supabase/functions/llm-router/app.ts';

const deps = createRuntimeDependencies(Deno.env.toObject());
const secret = Deno.env.get('BENCH_PROVIDER_KEY') ?? 'bench-upstream-key';
const app = createLlmRouterApp(deps, {
  keys: { getProviderKey: () => Promise.resolve({ secret, keyId: 'bench', version: 1 }) },
});
const port = Number(Deno.env.get('BENCH_PORT') ?? '54331');

Deno.serve({ hostname: '127.0.0.1', port, onListen: () => console.log(JSON.stringify({ listening: port })) }, (request: Request) => {
  const url = new URL(request.url);
  url.pathname = url.pathname.replace(/^\/functions\/v1/, '');
  return app.fetch(new Request(url, request));
});
