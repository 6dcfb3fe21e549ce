// The worker library under Deno, started by test/integration/jobs-deno.test.ts:
//   deno run --config supabase/functions/deno.json -A test/helpers/deno-job-worker.ts <db url> <kind> <count>
// Runs jobs of <kind> until it has completed <count>, then prints its stats as JSON.
// node:process rather than Deno.*, so the file also type-checks under Node.
import process from 'node:process';
import postgres from 'postgres';
import { runWorker } from '../../supabase/functions/_shared/jobs/index.ts';

const [url, kind, countText] = process.argv.slice(2);
const count = Number(countText);
const sql = postgres(url, { max: 2, onnotice: () => {}, connection: { application_name: 'jobs-deno-worker' } });
const stop = new AbortController();
let succeeded = 0;
const stats = await runWorker({
  sql,
  workerId: `deno-${typeof (globalThis as { Deno?: unknown }).Deno === 'object' ? 'runtime' : 'not-deno'}`,
  concurrency: 4,
  pollIntervalMs: 20,
  signal: stop.signal,
  handlers: {
    [kind]: (job) => ({ doubled: (job.payload as { n: number }).n * 2 }),
  },
  onEvent: (event) => {
    if (event.type === 'succeeded' && ++succeeded >= count) stop.abort();
  },
});
await sql.end();
console.log(JSON.stringify(stats));
