// `npm run keys:rewrap -- --to <kid> [--from <kid>] [--dry-run] [--batch N] [--json]`
//
// Master-key rotation for the key vault: re-wraps every stored data key under
// the key-encryption key <kid>, in batches of N (default 100), each batch one
// transaction. Only data keys are unwrapped and wrapped again; secrets stay
// ciphertext, and no plaintext secret is produced or written anywhere.
// Resumable: interrupt it at any point and run it again. Every re-wrap is
// audited (`rewrap`, actor `script:keys-rewrap`).
//
// Reads DATABASE_URL (or SUPABASE_DB_URL) and SWITCHYARD_MASTER_KEYS (or
// KMS_URL, KMS_TOKEN, KMS_KEY_ID) from the environment, else from the local
// stack (.switchyard/status.env and .switchyard/secrets.json). The master keys
// must hold both the keys the data keys are under now and <kid>.
//
// Exit codes: 0 done (or dry run), 1 data keys left (held by other
// transactions: run it again), 2 bad arguments, configuration or KMS failure.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { HttpError } from '../supabase/functions/_shared/errors.ts';
import { createKms } from '../supabase/functions/_shared/kms/create-kms.ts';
import { rewrapDataKeys } from '../supabase/functions/_shared/vault/rewrap.ts';
import { stateDir as defaultStateDir } from './lib/paths.ts';

const usage = 'usage: npm run keys:rewrap -- --to <kid> [--from <kid>] [--dry-run] [--batch N] [--json]';

function fail(message: string): never {
  console.error(`keys:rewrap: ${message}`);
  process.exit(2);
}

function readArguments() {
  try {
    return parseArgs({
      options: {
        to: { type: 'string' },
        from: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        batch: { type: 'string', default: '100' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    fail(`${error instanceof Error ? error.message : String(error)}\n${usage}`);
  }
}

const args = readArguments();
if (!args.to) fail(`--to <kid> is required\n${usage}`);
const toKekId = args.to;
const batchSize = Number(args.batch);
if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
  fail('--batch must be a whole number from 1 to 10000');
}

const stateDir = process.env.SWITCHYARD_STATE_DIR ?? defaultStateDir;

/** A value from the local stack's status.env (`NAME=value` lines). */
function fromStatusFile(name: string): string | undefined {
  const file = path.join(stateDir, 'status.env');
  if (!existsSync(file)) return undefined;
  const line = readFileSync(file, 'utf8').split('\n').find((entry) => entry.startsWith(`${name}=`));
  return line?.slice(name.length + 1).trim() || undefined;
}

function localMasterKeys(): string | undefined {
  const file = path.join(stateDir, 'secrets.json');
  if (!existsSync(file)) return undefined;
  return (JSON.parse(readFileSync(file, 'utf8')) as { masterKeys?: string }).masterKeys;
}

const databaseUrl = process.env.DATABASE_URL || process.env.SUPABASE_DB_URL || fromStatusFile('DB_URL');
if (!databaseUrl) fail('no database: set DATABASE_URL, or start the local stack (npm start)');
const kmsSetup = createKms({
  masterKeys: process.env.KMS_URL ? undefined : process.env.SWITCHYARD_MASTER_KEYS || localMasterKeys(),
  url: process.env.KMS_URL || undefined,
  token: process.env.KMS_TOKEN || undefined,
  keyId: process.env.KMS_KEY_ID || undefined,
  timeoutMs: Number(process.env.KMS_TIMEOUT_MS ?? 5_000),
}, fetch);
if (kmsSetup.problems.length > 0) fail(`no usable KMS: ${kmsSetup.problems.join('; ')}`);

const db = postgres(databaseUrl, {
  max: 1,
  onnotice: () => {},
  connection: { application_name: 'switchyard-keys-rewrap' },
});
try {
  const report = await rewrapDataKeys(db, kmsSetup.kms, {
    toKekId,
    fromKekId: args.from,
    batchSize,
    dryRun: args['dry-run'],
    onBatch: ({ batch, rewrapped, total }) => {
      if (!args.json) console.log(`batch ${batch}: re-wrapped ${rewrapped} data keys (${total} so far)`);
    },
  });
  if (args.json) {
    console.log(JSON.stringify(report));
  } else {
    const pending = Object.entries(report.pendingByKek).map(([kek, count]) => `${count} under ${kek}`).join(', ');
    console.log(`data keys not under ${report.toKekId} at start: ${pending || 'none'}`);
    if (report.dryRun) {
      console.log(
        `dry run: ${report.verified} data keys unwrap with their current key; "${report.toKekId}" wraps. Nothing changed.`,
      );
    } else {
      console.log(`re-wrapped ${report.rewrapped} data keys in ${report.batches} batches; ${report.remaining} left`);
    }
  }
  if (!report.dryRun && report.remaining > 0) {
    console.error(`keys:rewrap: ${report.remaining} data keys were held by other transactions: run it again`);
    process.exitCode = 1;
  }
} catch (error) {
  // KMS errors are written for operators and carry no key material; anything else by name only.
  const message = error instanceof HttpError
    ? error.message
    : error instanceof Error
    ? `${error.name}: ${error.message}`
    : 'failed';
  console.error(`keys:rewrap: ${message.replace(/postgres(ql)?:\/\/\S+/g, '[database url]')}`);
  process.exitCode = 2;
} finally {
  await db.end({ timeout: 5 });
}
