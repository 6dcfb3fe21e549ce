// `npm run dlq -- list|retry …`: the dead-letter queue from a terminal, through
// the dlq-list and dlq-retry functions (never the database directly).
//
//   npm run dlq -- list [--kind K] [--tenant-id T] [--error TEXT] [--since ISO] [--until ISO]
//                       [--status pending|requeued|all] [--limit N] [--cursor C] [--all] [--json]
//   npm run dlq -- retry --reason TEXT (--ids ID[,ID…] | [--kind K] [--error TEXT] [--since ISO]
//                       [--until ISO] [--tenant-id T]) [--max N] [--dry-run] [--idempotency-key K] [--json]
//
// FUNCTIONS_URL and SERVICE_ROLE_KEY (and ANON_KEY for the apikey header, else
// the service key) come from the environment, else from the running local
// stack (`npm run status`). Exit 0 on success, 1 when the API refuses, 2 on
// bad usage.
import { localStackStatus } from './lib/local-status.ts';

interface Invocation {
  command: string;
  options: Map<string, string>;
  flags: Set<string>;
}

const valueOptions = new Set([
  'kind',
  'tenant-id',
  'error',
  'since',
  'until',
  'status',
  'limit',
  'cursor',
  'reason',
  'ids',
  'max',
  'idempotency-key',
]);
const flagOptions = new Set(['json', 'all', 'dry-run', 'help']);

function usage(message?: string): never {
  if (message) console.error(`dlq: ${message}`);
  console.error([
    'usage: npm run dlq -- list [--kind K] [--tenant-id T] [--error TEXT] [--since ISO] [--until ISO]',
    '                           [--status pending|requeued|all] [--limit N] [--cursor C] [--all] [--json]',
    '       npm run dlq -- retry --reason TEXT (--ids ID[,ID...] | [--kind K] [--error TEXT] [--since ISO] [--until ISO]',
    '                           [--tenant-id T]) [--max N] [--dry-run] [--idempotency-key K] [--json]',
  ].join('\n'));
  process.exit(2);
}

function parseArguments(argv: readonly string[]): Invocation {
  const [command, ...rest] = argv;
  if (command !== 'list' && command !== 'retry') usage(command ? `unknown command "${command}"` : undefined);
  const options = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < rest.length; i++) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(rest[i]);
    if (!match) usage(`unexpected argument "${rest[i]}"`);
    const [, name, inline] = match;
    if (flagOptions.has(name)) flags.add(name);
    else if (valueOptions.has(name)) {
      const value = inline ?? rest[++i];
      if (value === undefined) usage(`--${name} needs a value`);
      options.set(name, value);
    } else usage(`unknown option --${name}`);
  }
  if (flags.has('help')) usage();
  return { command, options, flags };
}

function connection() {
  const stack = localStackStatus();
  const functionsUrl = process.env.FUNCTIONS_URL ?? stack?.FUNCTIONS_URL;
  const serviceKey = process.env.SERVICE_ROLE_KEY ?? stack?.SERVICE_ROLE_KEY;
  if (!functionsUrl || !serviceKey) {
    console.error('dlq: set FUNCTIONS_URL and SERVICE_ROLE_KEY, or start the local stack (`npm start`)');
    process.exit(2);
  }
  const apikey = process.env.ANON_KEY ?? stack?.ANON_KEY ?? serviceKey;
  return {
    functionsUrl: functionsUrl.replace(/\/+$/, ''),
    headers: { apikey, authorization: `Bearer ${serviceKey}`, 'content-type': 'application/json' },
  };
}

async function callApi(url: string, init: RequestInit): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: shown as is.
  }
  return { status: response.status, body, headers: response.headers };
}

function refuse(result: { status: number; body: unknown }, asJson: boolean): never {
  if (asJson) console.log(JSON.stringify(result.body, null, 2));
  else {
    const error = (result.body as { error?: { code?: string; message?: string } })?.error;
    console.error(`dlq: ${result.status} ${error?.code ?? ''}: ${error?.message ?? String(result.body)}`);
  }
  process.exit(1);
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd();
  return [line(headers), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

function truncate(text: string | null, length: number): string {
  const flat = (text ?? '').replace(/\s+/g, ' ');
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

interface DeadLetter {
  job_id: string;
  tenant_id: string | null;
  kind: string;
  attempts: number;
  last_error: string | null;
  failed_at: string;
  requeued_at: string | null;
  requeued_by: string | null;
}

async function list(invocation: Invocation) {
  const { functionsUrl, headers } = connection();
  const asJson = invocation.flags.has('json');
  const query = new URLSearchParams();
  for (
    const [option, parameter] of [
      ['kind', 'kind'],
      ['tenant-id', 'tenant_id'],
      ['error', 'error'],
      ['since', 'since'],
      ['until', 'until'],
      ['status', 'status'],
      ['limit', 'limit'],
      ['cursor', 'cursor'],
    ] as const
  ) {
    const value = invocation.options.get(option);
    if (value !== undefined) query.set(parameter, value);
  }
  const items: DeadLetter[] = [];
  let nextCursor: string | null = null;
  for (;;) {
    const result = await callApi(`${functionsUrl}/dlq-list?${query}`, { headers });
    if (result.status !== 200) refuse(result, asJson);
    const page = result.body as { items: DeadLetter[]; next_cursor: string | null };
    items.push(...page.items);
    nextCursor = page.next_cursor;
    if (!invocation.flags.has('all') || !nextCursor) break;
    query.set('cursor', nextCursor);
  }
  if (asJson) {
    console.log(JSON.stringify({ items, next_cursor: nextCursor }, null, 2));
    return;
  }
  if (items.length === 0) {
    console.log('no dead letters');
    return;
  }
  console.log(table(
    ['failed_at', 'job_id', 'tenant', 'kind', 'attempts', 'requeued', 'last_error'],
    items.map((item) => [
      new Date(item.failed_at).toISOString(),
      item.job_id,
      item.tenant_id?.slice(0, 8) ?? '-',
      item.kind,
      String(item.attempts),
      item.requeued_at ? `by ${item.requeued_by}` : '-',
      truncate(item.last_error, 60),
    ]),
  ));
  console.log(`\n${items.length} dead letter(s)${nextCursor ? `; more: --cursor ${nextCursor} (or --all)` : ''}`);
}

async function retry(invocation: Invocation) {
  const { functionsUrl, headers } = connection();
  const asJson = invocation.flags.has('json');
  const reason = invocation.options.get('reason');
  const ids = invocation.options.get('ids');
  const body: Record<string, unknown> = { reason, dry_run: invocation.flags.has('dry-run') };
  if (ids !== undefined) body.ids = ids.split(',').map((id) => id.trim()).filter(Boolean);
  else {
    const filter: Record<string, string> = {};
    for (
      const [option, field] of [
        ['kind', 'kind'],
        ['error', 'error'],
        ['since', 'since'],
        ['until', 'until'],
        ['tenant-id', 'tenant_id'],
      ] as const
    ) {
      const value = invocation.options.get(option);
      if (value !== undefined) filter[field] = value;
    }
    body.filter = filter;
  }
  const max = invocation.options.get('max');
  if (max !== undefined) body.max = Number.isFinite(Number(max)) ? Number(max) : max;
  // The key makes a retried command safe: the API answers it again and requeues nothing twice.
  const idempotencyKey = invocation.options.get('idempotency-key') ?? `dlq-cli-${crypto.randomUUID()}`;
  const result = await callApi(`${functionsUrl}/dlq-retry`, {
    method: 'POST',
    headers: { ...headers, 'idempotency-key': idempotencyKey },
    body: JSON.stringify(body),
  });
  if (result.status !== 200) refuse(result, asJson);
  const answer = result.body as {
    requeued: string[];
    skipped: { id: string; reason: string }[];
    dry_run: boolean;
    replayed?: boolean;
  };
  if (asJson) {
    console.log(JSON.stringify(answer, null, 2));
    return;
  }
  const verb = answer.dry_run ? 'would requeue' : 'requeued';
  console.log(
    `${verb} ${answer.requeued.length} job(s)${answer.replayed ? ' (replayed answer: nothing changed)' : ''}`,
  );
  for (const id of answer.requeued) console.log(`  ${id}`);
  if (answer.skipped.length > 0) {
    console.log(`skipped ${answer.skipped.length}:`);
    console.log(table(['job_id', 'reason'], answer.skipped.map((item) => [item.id, item.reason])));
  }
  console.log(`idempotency key: ${idempotencyKey}`);
}

const invocation = parseArguments(process.argv.slice(2));
if (invocation.command === 'list') await list(invocation);
else await retry(invocation);
