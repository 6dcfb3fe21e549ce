// The benchmark's ceiling: a bare Hono proxy on Deno in front of the fake
// upstream (no auth, no database). Anything written this way is at most this fast.
//   deno run --config supabase/functions/deno.json --allow-net --allow-env scripts/bench/passthrough-server.ts
import { Hono } from 'hono';

const upstream = Deno.env.get('BENCH_UPSTREAM_URL') ?? 'http://127.0.0.1:54329/v1';
const port = Number(Deno.env.get('BENCH_PORT') ?? '54330');

const app = new Hono();
app.post('/v1/chat/completions', async (c) => {
  const response = await fetch(`${upstream}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer bench-upstream-key' },
    body: await c.req.text(),
  });
  return new Response(response.body, {
    status: response.status,
    headers: { 'content-type': response.headers.get('content-type') ?? 'application/json' },
  });
});

Deno.serve(
  { hostname: '127.0.0.1', port, onListen: () => console.log(JSON.stringify({ listening: port })) },
  app.fetch,
);
