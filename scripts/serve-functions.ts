// Serves every function at /functions/v1/<name>, the paths Supabase uses, from
// one Deno process (the local stack; on Supabase each runs in its own isolate
// from its index.ts). Run by `npm start` and the test suite, under Deno:
//   deno run --config supabase/functions/deno.json -A scripts/serve-functions.ts
import type { Hono } from 'hono';
import type { AppEnv } from '../supabase/functions/_shared/hono-env.ts';
import { createRuntimeDependencies } from '../supabase/functions/_shared/runtime.ts';
import { createProviderKeyResolver } from '../supabase/functions/_shared/vault/resolver.ts';
import { createDlqListApp } from '../supabase/functions/dlq-list/app.ts';
import { createDlqRetryApp } from '../supabase/functions/dlq-retry/app.ts';
import { createJobsApp } from '../supabase/functions/jobs/app.ts';
import { createKeysApp } from '../supabase/functions/keys/app.ts';
import { createLlmRouterApp } from '../supabase/functions/llm-router/app.ts';
import { createMaintenanceApp } from '../supabase/functions/maintenance/app.ts';
import { createMetricsApp } from '../supabase/functions/metrics/app.ts';
import { createOpsApp } from '../supabase/functions/ops/app.ts';
import { createProviderHealthApp } from '../supabase/functions/provider-health/app.ts';
import { createReadinessApp } from '../supabase/functions/readiness/app.ts';

const deps = createRuntimeDependencies(Deno.env.toObject());

const routerProviderKeys = createProviderKeyResolver(deps);

const functions: Record<string, Hono<AppEnv>> = {
  'dlq-list': createDlqListApp(deps),
  'dlq-retry': createDlqRetryApp(deps),
  jobs: createJobsApp(deps),
  // One resolver for the router, so a rotation or disable through `keys` evicts it at once.
  keys: createKeysApp(deps, { onKeyChanged: (keyId) => routerProviderKeys.evictKey(keyId) }),
  'llm-router': createLlmRouterApp(deps, { keys: routerProviderKeys }),
  maintenance: createMaintenanceApp(deps),
  metrics: createMetricsApp(deps, { environment: Deno.env.toObject() }),
  ops: createOpsApp(deps),
  'provider-health': createProviderHealthApp(deps, {
    keys: createProviderKeyResolver(deps, { actor: 'provider-health' }),
  }),
  readiness: createReadinessApp(deps, { environment: Deno.env.toObject() }),
};

const port = Number(Deno.env.get('FUNCTIONS_PORT') ?? '54321');
const hostname = Deno.env.get('FUNCTIONS_HOST') ?? '127.0.0.1';

function functionNotFound(name: string): Response {
  return Response.json(
    { error: { code: 'function_not_found', message: `no function named "${name}"`, details: null } },
    { status: 404 },
  );
}

const localJwks = Deno.env.get('SWITCHYARD_LOCAL_JWKS');
const server = Deno.serve({
  hostname,
  port,
  onListen: ({ hostname, port }) => {
    console.log(
      JSON.stringify({
        level: 'info',
        event: 'functions_listening',
        url: `http://${hostname}:${port}/functions/v1`,
        functions: Object.keys(functions),
      }),
    );
  },
}, (request) => {
  const url = new URL(request.url);
  // The local Auth's JWKS (npm start sets it), where Supabase serves a project's signing keys.
  if (localJwks && url.pathname === '/auth/v1/.well-known/jwks.json') {
    return new Response(localJwks, {
      headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=600' },
    });
  }
  const match = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(url.pathname);
  if (!match) return functionNotFound(url.pathname);
  const app = functions[match[1]];
  if (!app) return functionNotFound(match[1]);
  // Supabase hands a function the path from its name on: /<name>/...
  url.pathname = `/${match[1]}${match[2] ?? ''}`;
  return app.fetch(new Request(url, request));
});

// Graceful, but bounded: in-flight requests get up to 3 s, then the process exits anyway.
async function shutdown() {
  const deadline = new Promise((resolve) => setTimeout(resolve, 3_000));
  await Promise.race([server.shutdown().then(() => deps.db.end({ timeout: 1 })), deadline]);
  Deno.exit(0);
}
Deno.addSignalListener('SIGINT', shutdown);
Deno.addSignalListener('SIGTERM', shutdown);
