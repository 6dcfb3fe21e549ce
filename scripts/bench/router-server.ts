// The real llm-router under Deno for the benchmark: authentication by tenant
// API key, rate limit, budget reserve/settle and usage records in PostgreSQL.
// Only the provider key comes from the environment (BENCH_PROVIDER_KEY) instead
// of the key vault, whose resolver serves it from its cache on this path.
//   deno run --config supabase/functions/deno.json -A scripts/bench/router-server.ts
import { Hono } from 'hono';
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { createLlmRouterApp } from '../../supabase/functions/llm-router/app.ts';

const deps = createRuntimeDependencies(Deno.env.toObject());
const secret = Deno.env.get('BENCH_PROVIDER_KEY') ?? 'bench-upstream-key';
const router = createLlmRouterApp(deps, {
  keys: { getProviderKey: () => Promise.resolve({ secret, keyId: 'bench', version: 1 }) },
});
// Mounted, not re-wrapped: a Request rebuilt around another's body stalls Deno's keep-alive.
const root = new Hono().route('/functions/v1', router);
const port = Number(Deno.env.get('BENCH_PORT') ?? '54331');

Deno.serve(
  { hostname: '127.0.0.1', port, onListen: () => console.log(JSON.stringify({ listening: port })) },
  root.fetch,
);
// Exit on SIGTERM (rather than die by it) so that `--cpu-prof` writes its profile.
Deno.addSignalListener('SIGTERM', () => Deno.exit(0));
