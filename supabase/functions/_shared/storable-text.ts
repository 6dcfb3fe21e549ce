/**
 * What PostgreSQL can store: `text` and `jsonb` refuse the NUL character
 * (U+0000), and a lone UTF-16 surrogate has no UTF-8 form. A request carrying
 * either is the caller's error (400 naming the field), found here once for
 * every route instead of surfacing as a database error (500) in whichever
 * route first writes it. Nesting is bounded too: validators and the database
 * recurse into it.
 */
export const MAX_JSON_DEPTH = 64;

export interface UnstorableText {
  /** "payload.items.0.name" style path; "" for the value itself. */
  path: string;
  problem: string;
}

const lonePattern = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why `text` cannot be stored, or undefined when it can. */
export function unstorableReason(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain the NUL character (\\u0000)';
  if (lonePattern.test(text)) return 'must not contain a lone UTF-16 surrogate';
  return undefined;
}

/**
 * The first string or key in a parsed JSON value that cannot be stored, or
 * nesting deeper than `maxDepth`; undefined when all of it can. Iterative, so
 * a deep value cannot overflow the stack.
 */
export function findUnstorableText(value: unknown, maxDepth = MAX_JSON_DEPTH): UnstorableText | undefined {
  const pending: { value: unknown; path: string[] }[] = [{ value, path: [] }];
  while (pending.length > 0) {
    const { value: current, path } = pending.pop() as { value: unknown; path: string[] };
    if (typeof current === 'string') {
      const problem = unstorableReason(current);
      if (problem) return { path: path.join('.'), problem };
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (path.length >= maxDepth) {
      return { path: path.join('.'), problem: `must not nest deeper than ${maxDepth} levels` };
    }
    const entries: [string, unknown][] = Array.isArray(current)
      ? current.map((item, index) => [String(index), item])
      : Object.entries(current);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, item] = entries[i];
      const keyProblem = unstorableReason(key);
      if (keyProblem) return { path: path.join('.'), problem: `keys ${keyProblem}` };
      pending.push({ value: item, path: [...path, key] });
    }
  }
  return undefined;
}
