// Validate an upstream body against the provider's documented shape; a mismatch is an
// upstream failure (502), reported by field path only, never by echoing the body.
import type { z } from 'zod';
import { describeZodIssue } from '../openai/schemas.ts';
import { UpstreamFailureError } from './errors.ts';
import { malformedResponseError } from './upstream-errors.ts';

export function readUpstreamBody<T extends z.ZodType>(schema: T, body: unknown, provider: string): z.infer<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const first = result.error.issues[0];
  const detail = first === undefined ? 'invalid body' : describeZodIssue(first);
  throw new UpstreamFailureError(malformedResponseError(provider, detail));
}

/** SSE data is JSON text; a non-JSON payload is a malformed stream. */
export function parseJsonData(data: string, provider: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new UpstreamFailureError(malformedResponseError(provider, 'stream event is not JSON'));
  }
}
