import type { Context } from 'hono';
import type { z } from 'zod';
import { HttpError } from './errors.ts';

/** "messages.0.role" style path for a zod issue. */
export function issuePath(path: readonly PropertyKey[]): string {
  return path.map((part) => String(part)).join('.');
}

/** A 400 that names the first offending field and lists every issue. */
export function validationError(error: z.ZodError, where: 'body' | 'query' | 'path' = 'body'): HttpError {
  const issues = error.issues.map((issue) => ({ path: issuePath(issue.path), message: issue.message }));
  const first = issues[0];
  const field = first?.path || where;
  return new HttpError('validation_failed', `${field}: ${first?.message ?? 'invalid'}`, {
    details: { issues },
    param: first?.path || null,
  });
}

/** Parses the JSON body against a schema: 400 invalid_json or validation_failed naming the field. */
export async function readJsonBody<Schema extends z.ZodType>(c: Context, schema: Schema): Promise<z.output<Schema>> {
  const text = await c.req.text();
  let raw: unknown;
  try {
    raw = text.trim() === '' ? undefined : JSON.parse(text);
  } catch {
    throw new HttpError('invalid_json', 'request body is not valid JSON');
  }
  if (raw === undefined) throw new HttpError('invalid_json', 'request body is empty; a JSON object is required');
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw validationError(parsed.error, 'body');
  return parsed.data;
}

/** Parses query parameters against a schema: 400 naming the parameter. */
export function readQuery<Schema extends z.ZodType>(c: Context, schema: Schema): z.output<Schema> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw validationError(parsed.error, 'query');
  return parsed.data;
}

/** Parses path parameters against a schema: 404-safe 400 naming the parameter. */
export function readParams<Schema extends z.ZodType>(c: Context, schema: Schema): z.output<Schema> {
  const parsed = schema.safeParse(c.req.param());
  if (!parsed.success) throw validationError(parsed.error, 'path');
  return parsed.data;
}
