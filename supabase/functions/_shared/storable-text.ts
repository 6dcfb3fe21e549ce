/**
 * What PostgreSQL can store: `text` and `jsonb` refuse the NUL character
 * (U+0000), and a lone UTF-16 surrogate has no UTF-8 form. A request carrying
 * either is the caller's error (400 naming the field), found here once for
 * every route instead of surfacing as a database error (500) in whichever
 * route first writes it. Nesting is bounded too: validators and the database
 * recurse into it.
 */
const MAX_JSON_DEPTH = 64;

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

/** A value waiting to be checked, with how it was reached (the path is built only for a finding). */
interface Pending {
  value: unknown;
  key: string;
  parent: Pending | undefined;
  depth: number;
}

function pathOf(node: Pending | undefined): string {
  const keys: string[] = [];
  for (let at = node; at?.parent !== undefined; at = at.parent) keys.push(at.key);
  return keys.reverse().join('.');
}

/**
 * The first string or key in a parsed JSON value that cannot be stored, or
 * nesting deeper than `maxDepth`; undefined when all of it can. Iterative, so
 * a deep value cannot overflow the stack; runs on every request body, so it
 * allocates one small record per value and builds a path only for a finding.
 */
export function findUnstorableText(value: unknown, maxDepth = MAX_JSON_DEPTH): UnstorableText | undefined {
  const pending: Pending[] = [{ value, key: '', parent: undefined, depth: 0 }];
  while (pending.length > 0) {
    const node = pending.pop() as Pending;
    const current = node.value;
    if (typeof current === 'string') {
      const problem = unstorableReason(current);
      if (problem) return { path: pathOf(node), problem };
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (node.depth >= maxDepth) return { path: pathOf(node), problem: `must not nest deeper than ${maxDepth} levels` };
    const depth = node.depth + 1;
    if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) {
        pending.push({ value: current[i], key: String(i), parent: node, depth });
      }
      continue;
    }
    const keys = Object.keys(current);
    for (let i = keys.length - 1; i >= 0; i--) {
      const keyProblem = unstorableReason(keys[i]);
      if (keyProblem) return { path: pathOf(node), problem: `keys ${keyProblem}` };
      pending.push({ value: (current as Record<string, unknown>)[keys[i]], key: keys[i], parent: node, depth });
    }
  }
  return undefined;
}
