import type { Context } from 'hono';
import { z } from 'zod';
import { HttpError } from './errors.ts';
import { findUnstorableText, unstorableReason } from './storable-text.ts';

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in its canonical text form (any version; the database's uuid type takes it). */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && uuidPattern.test(value);
}

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

/** application/json and any structured-syntax +json type (application/merge-patch+json, …). */
export function isJsonMediaType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const essence = contentType.split(';', 1)[0].trim().toLowerCase();
  return essence === 'application/json' || (essence.startsWith('application/') && essence.endsWith('+json'));
}

/** A 400 for text PostgreSQL cannot store (storable-text.ts), naming the field. */
function unstorableTextError(path: string, problem: string, where: 'body' | 'query'): HttpError {
  const field = path === '' ? where : path;
  return new HttpError('validation_failed', `${field}: ${problem}`, {
    param: path === '' ? null : path,
    details: { issues: [{ path, message: problem }] },
  });
}

/**
 * The request body as JSON, the one reader every route uses (after it has
 * authenticated the caller): undefined when there is none; 415 when it says
 * it is not JSON (or says nothing); 400 invalid_json when it does not parse;
 * 400 naming the field when it holds text PostgreSQL cannot store or nests
 * too deep.
 */
async function readJsonValue(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return undefined;
  if (!isJsonMediaType(c.req.header('content-type'))) {
    throw new HttpError(
      'unsupported_media_type',
      'request body must be JSON, sent with Content-Type: application/json',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError('invalid_json', 'request body is not valid JSON');
  }
  const found = findUnstorableText(value);
  if (found) throw unstorableTextError(found.path, found.problem, 'body');
  return value;
}

/** readJsonValue for a body that must be there: 400 when there is none. */
export async function jsonBodyOf(c: Context): Promise<unknown> {
  const value = await readJsonValue(c);
  if (value === undefined) throw new HttpError('invalid_json', 'request body is empty; a JSON object is required');
  return value;
}

/** Parses the JSON body against a schema: 400 invalid_json or validation_failed naming the field. */
export async function readJsonBody<Schema extends z.ZodType>(c: Context, schema: Schema): Promise<z.output<Schema>> {
  const parsed = schema.safeParse(await jsonBodyOf(c));
  if (!parsed.success) throw validationError(parsed.error, 'body');
  return parsed.data;
}

/** As readJsonBody, for a body the caller may leave out: no body is `{}`. */
export async function readOptionalJsonBody<Schema extends z.ZodType>(
  c: Context,
  schema: Schema,
): Promise<z.output<Schema>> {
  const parsed = schema.safeParse((await readJsonValue(c)) ?? {});
  if (!parsed.success) throw validationError(parsed.error, 'body');
  return parsed.data;
}

/**
 * An ISO 8601 date-time with an offset, within years 1970 to 9999: PostgreSQL
 * has no year 0, and nothing this API schedules or filters lies outside.
 */
export const isoDateTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }).refine(
  (value) => {
    const year = new Date(value).getUTCFullYear();
    return year >= 1970 && year <= 9999;
  },
  { message: 'must be a date-time between 1970 and 9999' },
);

/** Parses query parameters against a schema: 400 naming the parameter (text PostgreSQL cannot store included). */
export function readQuery<Schema extends z.ZodType>(c: Context, schema: Schema): z.output<Schema> {
  const query = c.req.query();
  for (const [name, value] of Object.entries(query)) {
    const problem = unstorableReason(value) ?? unstorableReason(name);
    if (problem) throw unstorableTextError(name, problem, 'query');
  }
  const parsed = schema.safeParse(query);
  if (!parsed.success) throw validationError(parsed.error, 'query');
  return parsed.data;
}

/** Parses path parameters against a schema: 404-safe 400 naming the parameter. */
export function readParams<Schema extends z.ZodType>(c: Context, schema: Schema): z.output<Schema> {
  const parsed = schema.safeParse(c.req.param());
  if (!parsed.success) throw validationError(parsed.error, 'path');
  return parsed.data;
}
