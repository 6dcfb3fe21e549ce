// The real ops function under Deno for `npm run bench:scale` (GET /ops/usage),
// served like scripts/bench/router-server.ts.
//   deno run --config supabase/functions/deno.json -A scripts/bench/ops-server.ts
import { Hono } from 'hono';
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { createOpsApp } from '../../supabase/functions/ops/app.ts';

const ops = createOpsApp(createRuntimeDependencies(Deno.env.toObject()));
const root = new Hono().route('/functions/v1', ops);
const port = Number(Deno.env.get('BENCH_PORT') ?? '54332');

Deno.serve(
  { hostname: '127.0.0.1', port, onListen: () => console.log(JSON.stringify({ listening: port })) },
  root.fetch,
);
Deno.addSignalListener('SIGTERM', () => Deno.exit(0));
