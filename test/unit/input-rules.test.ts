import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../supabase/functions/_shared/errors.ts';
import { isPostgresWriteAfterClose } from '../../supabase/functions/_shared/postgres-client-guard.ts';
import { findUnstorableText } from '../../supabase/functions/_shared/storable-text.ts';
import { isJsonMediaType } from '../../supabase/functions/_shared/validation.ts';

describe('findUnstorableText', () => {
  it('finds NUL and lone surrogates in strings and keys, naming the path', () => {
    expect(findUnstorableText({ a: ['ok', { b: 'x\u0000' }] })).toEqual({
      path: 'a.1.b',
      problem: 'must not contain the NUL character (\\u0000)',
    });
    expect(findUnstorableText({ a: 'x\ud800' })?.path).toBe('a');
    expect(findUnstorableText({ a: 'x\udc00y' })?.problem).toBe('must not contain a lone UTF-16 surrogate');
    expect(findUnstorableText({ a: { 'k\u0000': 1 } })).toEqual({
      path: 'a',
      problem: 'keys must not contain the NUL character (\\u0000)',
    });
    expect(findUnstorableText('\u0000')).toEqual({ path: '', problem: 'must not contain the NUL character (\\u0000)' });
  });

  it('accepts what PostgreSQL stores: surrogate pairs, other control characters, escapes', () => {
    expect(findUnstorableText({ emoji: '😀 \ud83d\ude00', tab: '\t\u0001', text: 'a\\u0000b', n: 1, z: null })).toBe(
      undefined,
    );
  });

  it('bounds nesting without recursion: 100,000 levels are refused, not a stack overflow', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(findUnstorableText(deep)?.problem).toBe('must not nest deeper than 64 levels');
    const ok = JSON.parse(`${'['.repeat(64)}${']'.repeat(64)}`);
    expect(findUnstorableText(ok)).toBe(undefined);
  });
});

describe('isJsonMediaType', () => {
  it('takes application/json and +json types, with parameters, and nothing else', () => {
    expect(['application/json', 'Application/JSON; charset=utf-8', 'application/merge-patch+json'].map(isJsonMediaType))
      .toEqual([true, true, true]);
    expect([undefined, 'text/plain', 'application/x-www-form-urlencoded', 'text/json+x'].map(isJsonMediaType))
      .toEqual([false, false, false, false]);
  });
});

describe('isDatabaseUnavailable', () => {
  const coded = (code: string, name = 'Error') => Object.assign(new Error(code), { code, name });
  it('classifies connection failures, also as a cause', () => {
    for (
      const code of ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'CONNECTION_CLOSED', '57P01', '57P03', '53300', '08006']
    ) {
      expect([code, isDatabaseUnavailable(coded(code))]).toEqual([code, true]);
    }
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: coded('ECONNRESET') }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('reset'), { name: 'ConnectionReset' }))).toBe(true);
  });

  it('leaves statement errors alone', () => {
    for (const code of ['23505', '22023', '40P01', 'P0001', '42501']) {
      expect([code, isDatabaseUnavailable(coded(code))]).toEqual([code, false]);
    }
    expect(isDatabaseUnavailable('ECONNRESET')).toBe(false);
  });
});

describe('isPostgresWriteAfterClose', () => {
  it("recognises postgres.js's write on a closed socket, and nothing else", () => {
    const write = new TypeError("Cannot read properties of null (reading 'write')");
    write.stack =
      `TypeError: ${write.message}\n    at Immediate.nextWrite (file:///x/node_modules/postgres/src/connection.js:255:22)`;
    expect(isPostgresWriteAfterClose(write)).toBe(true);
    const elsewhere = new TypeError("Cannot read properties of null (reading 'write')");
    elsewhere.stack = `TypeError: ${elsewhere.message}\n    at handler (file:///x/app.ts:1:1)`;
    expect(isPostgresWriteAfterClose(elsewhere)).toBe(false);
    expect(isPostgresWriteAfterClose(new Error('connection.js'))).toBe(false);
  });
});
