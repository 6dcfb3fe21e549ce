// Scriptable upstream faults: queued, matched per request, consumed `times` times.
import { z } from 'zod';
import type { FakeRoute, WireFormat } from './reply.ts';

export type FakeFault =
  | { kind: 'status'; status: number; retryAfterSeconds?: number; message?: string }
  | { kind: 'delay'; ms: number }
  | { kind: 'cut_stream'; afterChunks: number }
  /** Sends this many stream events, then holds the connection open until the caller leaves. */
  | { kind: 'stall_stream'; afterChunks: number }
  | { kind: 'hang' };

export interface FaultMatch {
  /** Substring of the request path (with query). */
  path?: string;
  /** Exact model: body `model`, Azure deployment or Gemini model. */
  model?: string;
  format?: WireFormat;
}

export interface FaultOptions {
  /** How many matching requests get the fault (default 1); 'forever' until cleared. */
  times?: number | 'forever';
  match?: FaultMatch;
}

export interface QueuedFault {
  fault: FakeFault;
  remaining: number | 'forever';
  match: FaultMatch;
}

export const fakeFaultSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('status'),
    status: z.number().int().min(400).max(599),
    retryAfterSeconds: z.number().nonnegative().optional(),
    message: z.string().optional(),
  }),
  z.object({ kind: z.literal('delay'), ms: z.number().int().nonnegative() }),
  z.object({ kind: z.literal('cut_stream'), afterChunks: z.number().int().nonnegative() }),
  z.object({ kind: z.literal('stall_stream'), afterChunks: z.number().int().nonnegative() }),
  z.object({ kind: z.literal('hang') }),
]);

export const faultMatchSchema = z.object({
  path: z.string().optional(),
  model: z.string().optional(),
  format: z.enum(['openai', 'azure', 'anthropic', 'gemini']).optional(),
});

/** Body of POST /__fake/faults: one entry or a list. */
export const faultRequestSchema = z.object({
  fault: fakeFaultSchema,
  times: z.union([z.number().int().positive(), z.literal('forever')]).optional(),
  match: faultMatchSchema.optional(),
});

export class FaultQueue {
  private queue: QueuedFault[] = [];

  enqueue(fault: FakeFault, options: FaultOptions = {}): void {
    const times = options.times ?? 1;
    if (times !== 'forever' && (!Number.isInteger(times) || times < 1)) {
      throw new Error('times must be a positive integer or "forever"');
    }
    this.queue.push({ fault, remaining: times, match: options.match ?? {} });
  }

  /** The first queued fault that matches, consumed once. */
  take(route: FakeRoute, path: string): FakeFault | undefined {
    const index = this.queue.findIndex((entry) => matches(entry.match, route, path));
    const entry = this.queue[index];
    if (entry === undefined) return undefined;
    if (entry.remaining !== 'forever') {
      entry.remaining -= 1;
      if (entry.remaining === 0) this.queue.splice(index, 1);
    }
    return entry.fault;
  }

  list(): QueuedFault[] {
    return this.queue.map((entry) => ({ ...entry, match: { ...entry.match } }));
  }

  clear(): void {
    this.queue = [];
  }
}

function matches(match: FaultMatch, route: FakeRoute, path: string): boolean {
  if (match.path !== undefined && !path.includes(match.path)) return false;
  if (match.model !== undefined && route.model !== match.model) return false;
  if (match.format !== undefined && route.format !== match.format) return false;
  return true;
}
