// CLI: `node --import tsx test/fakes/fake-upstream-server.ts --port 54329 [--api-key K]... [--words-per-chunk N]`
// Prints one JSON line {"url": …} once listening; stops on SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { startFakeUpstream } from './fake-upstream.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'api-key': { type: 'string', multiple: true },
    'words-per-chunk': { type: 'string', default: '1' },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`invalid --port: ${values.port}\n`);
  process.exit(2);
}

const wordsPerChunk = Number(values['words-per-chunk']);
const fake = await startFakeUpstream({ port, apiKeys: values['api-key'], wordsPerChunk });
process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await fake.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
