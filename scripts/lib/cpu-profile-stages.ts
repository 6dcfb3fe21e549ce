// A V8 CPU profile of the router isolate (`deno run --cpu-prof`) as CPU time
// per pipeline stage and request. Each sample goes to the innermost frame
// that names a stage: the project's own code by file (and, where one file
// holds several stages, by function), or a library the stage owns (zod for
// parsing, the tokenizer, postgres.js for the ledger's database client). A
// sample with no such frame is the runtime's: the HTTP server, streams, the
// Node compatibility layer, garbage collection. Module loading and the
// tokenizer's one-time table build are startup, left out of the per-request
// figures. Idle time is not CPU time and is left out.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export const stages = [
  'middleware',
  'auth',
  'body parse and validation',
  'token estimate',
  'plan',
  'cache lookup',
  'admission',
  'upstream call',
  'response and stream relay',
  'settlement',
  'ledger database client',
  'logging and metrics',
  'pipeline glue',
  'runtime: HTTP server, fetch, streams',
  'runtime: Node compatibility (sockets, timers)',
  'garbage collection and other native',
] as const;
export type Stage = (typeof stages)[number] | 'startup';

const functionsDir = 'supabase/functions/';
// Loading modules and building the tokenizer's tables: once per isolate.
const startupFunctions = new Set([
  'loadExtScript',
  'lazyLoad',
  'op_load_ext_script',
  'getEncodingApi',
  'GptEncoding',
  'BytePairEncodingCore',
]);

/** The stage a frame names, or undefined when it names none (a runtime or library frame). */
function stageOfFrame(frame: CallFrame): Stage | undefined {
  const { url, functionName: fn } = frame;
  if (startupFunctions.has(fn)) return 'startup';
  // A module's top-level code runs once, when it is loaded (the runtime's own ext: scripts are one line each).
  if (fn === '' && frame.lineNumber === 0 && !url.startsWith('ext:')) return 'startup';
  if (url.includes('node_modules/gpt-tokenizer/')) return 'token estimate';
  if (url.includes('node_modules/zod/')) return 'body parse and validation';
  if (url.includes('node_modules/jose/')) return 'auth';
  if (url.includes('node_modules/postgres/')) return 'ledger database client';
  const at = url.indexOf(functionsDir);
  if (at === -1) return undefined;
  const file = url.slice(at + functionsDir.length);
  if (file.startsWith('_shared/auth/')) return 'auth';
  if (file === '_shared/router/tokens.ts') return 'token estimate';
  if (
    file === '_shared/validation.ts' || file === '_shared/storable-text.ts' || file.endsWith('/schemas.ts') ||
    fn === 'readBodyFirst' || fn === 'jsonBodyOf'
  ) return 'body parse and validation';
  if (file === '_shared/router/plan.ts' || file === '_shared/router/catalog.ts') return 'plan';
  if (file === '_shared/economics/response-cache.ts') return 'cache lookup';
  if (file === '_shared/economics/ledger.ts') return 'ledger database client';
  if (file === 'llm-router/ledger-answers.ts') return 'admission';
  if (file === '_shared/economics/saga.ts' || file === '_shared/economics/lease-ledger.ts') {
    return /settle|release|finish|close/i.test(fn) ? 'settlement' : 'admission';
  }
  if (
    file === '_shared/router/upstream.ts' || file === '_shared/router/dispatch.ts' ||
    file.startsWith('_shared/providers/')
  ) return 'upstream call';
  if (file === 'llm-router/stream.ts' || file === '_shared/sse.ts' || file.endsWith('-stream.ts')) {
    return 'response and stream relay';
  }
  if (file.startsWith('llm-router/dialects/')) {
    if (fn === 'parse') return 'body parse and validation';
    if (fn === 'upstreamRequest' || fn === 'withMaxTokens') return 'upstream call';
    return 'response and stream relay';
  }
  if (
    file.startsWith('_shared/metrics/') || file === '_shared/logger.ts' || file === '_shared/middleware/request-log.ts'
  ) {
    return 'logging and metrics';
  }
  if (file === 'llm-router/pipeline.ts') {
    const named: Record<string, Stage> = {
      authenticate: 'auth',
      plan: 'plan',
      lookUpCache: 'cache lookup',
      admit: 'admission',
      setRouteHeaders: 'response and stream relay',
    };
    return named[fn] ?? 'pipeline glue';
  }
  return 'middleware';
}

/** With no stage in the stack: the runtime frame closest to the leaf says whose time it is. */
function runtimeStage(frame: CallFrame): Stage {
  const { url, functionName: fn } = frame;
  if (url.includes('node_modules/hono/')) return 'middleware';
  if (url.startsWith('ext:deno_node/') || url.startsWith('node:')) {
    return 'runtime: Node compatibility (sockets, timers)';
  }
  if (url.startsWith('ext:') || fn.startsWith('op_')) return 'runtime: HTTP server, fetch, streams';
  return 'garbage collection and other native';
}

export interface StageTable {
  /** CPU milliseconds per request, by stage (startup excluded). */
  perRequestMs: Record<string, number>;
  totalPerRequestMs: number;
  startupMs: number;
  requests: number;
}

/**
 * The profile's time per stage, divided by the requests the isolate served
 * while it ran. The sampler counts wall time spent in a frame, so on a busy
 * machine a preempted thread inflates every stage alike: given the isolate's
 * CPU per request measured from /proc, the stages are scaled to sum to it
 * (the shares are the profile's, the total is the kernel's).
 */
export function stageTable(profilePath: string, requests: number, measuredCpuMsPerRequest?: number): StageTable {
  const profile = JSON.parse(readFileSync(profilePath, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  // Each node's stage, found once: its own, else its parent's, else the runtime's.
  const stageOfNode = new Map<number, Stage | undefined>();
  // Startup anywhere in the stack wins: a tokenizer call that builds its tables runs once.
  const startupOfNode = new Map<number, boolean>();
  const inStartup = (id: number): boolean => {
    if (startupOfNode.has(id)) return startupOfNode.get(id)!;
    const parent = parentOf.get(id);
    const startup = stageOfFrame(byId.get(id)!.callFrame) === 'startup' ||
      (parent !== undefined && inStartup(parent));
    startupOfNode.set(id, startup);
    return startup;
  };
  const namedStage = (id: number): Stage | undefined => {
    if (stageOfNode.has(id)) return stageOfNode.get(id);
    const node = byId.get(id)!;
    const parent = parentOf.get(id);
    const stage = inStartup(id)
      ? 'startup'
      : stageOfFrame(node.callFrame) ?? (parent === undefined ? undefined : namedStage(parent));
    stageOfNode.set(id, stage);
    return stage;
  };
  const microseconds = new Map<Stage, number>();
  profile.samples.forEach((id, index) => {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') return;
    const stage = namedStage(id) ?? runtimeStage(node.callFrame);
    microseconds.set(stage, (microseconds.get(stage) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });
  const sampled = stages.reduce((sum, stage) => sum + (microseconds.get(stage) ?? 0), 0) / 1000 /
    Math.max(1, requests);
  const scale = measuredCpuMsPerRequest && sampled > 0 ? measuredCpuMsPerRequest / sampled : 1;
  const perRequestMs: Record<string, number> = {};
  let total = 0;
  for (const stage of stages) {
    const ms = ((microseconds.get(stage) ?? 0) / 1000 / Math.max(1, requests)) * scale;
    perRequestMs[stage] = Math.round(ms * 1000) / 1000;
    total += ms;
  }
  return {
    perRequestMs,
    totalPerRequestMs: Math.round(total * 1000) / 1000,
    startupMs: Math.round((microseconds.get('startup') ?? 0) / 1000),
    requests,
  };
}

/** The table as markdown, one column per profiled run (e.g. before and after). */
export function stageMarkdown(columns: { label: string; table: StageTable }[]): string {
  const header = `| stage (CPU ms per request) | ${columns.map((column) => column.label).join(' | ')} |`;
  const rule = `| --- | ${columns.map(() => '---').join(' | ')} |`;
  const rows = stages.map((stage) =>
    `| ${stage} | ${columns.map((column) => column.table.perRequestMs[stage].toFixed(3)).join(' | ')} |`
  );
  const total = `| **total** | ${
    columns.map((column) => `**${column.table.totalPerRequestMs.toFixed(3)}**`).join(' | ')
  } |`;
  const notes = `| requests profiled (startup ms, excluded) | ${
    columns.map((column) => `${column.table.requests} (${column.table.startupMs})`).join(' | ')
  } |`;
  return [header, rule, ...rows, total, notes].join('\n');
}
