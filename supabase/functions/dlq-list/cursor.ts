import { isUuid } from '../_shared/validation.ts';
/**
 * Keyset cursor for dead letters, newest first: the (failed_at, id) of the
 * last item of a page, failed_at as PostgreSQL's text with microseconds (a
 * JavaScript Date would lose them and skip or repeat rows).
 */
export interface DeadLetterCursor {
  failedAt: string;
  id: string;
}

const timestampPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

function toBase64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): string {
  const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'));
  return new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
}

export function encodeCursor(cursor: DeadLetterCursor): string {
  return toBase64Url(JSON.stringify([cursor.failedAt, cursor.id]));
}

/** The cursor, or undefined when it is not one this endpoint issued. */
export function decodeCursor(text: string): DeadLetterCursor | undefined {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return undefined;
  try {
    const value: unknown = JSON.parse(fromBase64Url(text));
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [failedAt, id] = value;
    if (typeof failedAt !== 'string' || !timestampPattern.test(failedAt) || Number.isNaN(Date.parse(failedAt))) {
      return undefined;
    }
    if (!isUuid(id)) return undefined;
    return { failedAt, id };
  } catch {
    return undefined;
  }
}
