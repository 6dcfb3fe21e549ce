// The benchmark's ceiling: a bare Hono proxy on Deno in front of the fake
// upstream (no auth, no database). Anything written this way is at most this fast.
//   deno run --config supabase/functions/deno.json --allow-net --allow-env scripts/bench/passthrough-server.ts
import { Hono } from 'hono';

const upstream = Deno.env.get('BENCH_UPSTREAM_URL') ?? 'http://127.0.0.1:54329/v1';
const port = Number(Deno.env.get('BENCH_PORT') ?? '54330');

const app = new Hono();
const forward = async (body: string) =>
  await fetch(`${upstream}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer bench-upstream-key' },
    body,
  });
const contentType = (response: Response) => ({
  'content-type': response.headers.get('content-type') ?? 'application/json',
});
// The upstream's body handed back whole: the runtime pipes it natively, no JavaScript per chunk.
app.post('/v1/chat/completions', async (c) => {
  const response = await forward(await c.req.text());
  return new Response(response.body, { status: response.status, headers: contentType(response) });
});
// The least a proxy that looks at each chunk pays on Deno: every chunk through an identity
// TransformStream (a JavaScript read and write per chunk, nothing else). The floor under any relay
// that accounts for usage from the stream, as the router's does.
app.post('/relay/v1/chat/completions', async (c) => {
  const response = await forward(await c.req.text());
  const relayed = response.body?.pipeThrough(new TransformStream<Uint8Array, Uint8Array>()) ?? null;
  return new Response(relayed, { status: response.status, headers: contentType(response) });
});

Deno.serve(
  { hostname: '127.0.0.1', port, onListen: () => console.log(JSON.stringify({ listening: port })) },
  app.fetch,
);
