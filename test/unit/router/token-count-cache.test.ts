import { describe, expect, it } from 'vitest';
import {
  countPromptTokens,
  countTextTokens,
  TokenCountCache,
} from '../../../supabase/functions/_shared/router/tokens.ts';

describe('TokenCountCache', () => {
  const counting = () => {
    const calls: string[] = [];
    const cache = new TokenCountCache(
      (text) => {
        calls.push(text);
        return text.length;
      },
      4,
      3,
      20,
    );
    return { cache, calls };
  };

  it('counts a long text once and answers the same count after', () => {
    const { cache, calls } = counting();
    expect(cache.tokens('abcdef')).toBe(6);
    expect(cache.tokens('abcdef')).toBe(6);
    expect(calls).toEqual(['abcdef']);
  });

  it('counts short texts every time and does not hold them', () => {
    const { cache, calls } = counting();
    cache.tokens('abc');
    cache.tokens('abc');
    expect(calls).toEqual(['abc', 'abc']);
    expect(cache.size).toBe(0);
  });

  it('drops the least recently used entry past its entry bound', () => {
    const { cache, calls } = counting();
    for (const text of ['aaaa', 'bbbb', 'cccc']) cache.tokens(text);
    cache.tokens('aaaa'); // used again: now the newest
    cache.tokens('dddd'); // evicts bbbb
    expect(cache.size).toBe(3);
    calls.length = 0;
    cache.tokens('aaaa');
    cache.tokens('bbbb');
    expect(calls).toEqual(['bbbb']);
  });

  it('drops entries past its character bound, and never holds a text longer than it', () => {
    const { cache, calls } = counting();
    cache.tokens('a'.repeat(12));
    cache.tokens('b'.repeat(12)); // 24 characters > 20: the first goes
    expect(cache.size).toBe(1);
    cache.tokens('c'.repeat(21));
    cache.tokens('c'.repeat(21));
    expect(cache.size).toBe(1);
    expect(calls.filter((text) => text.startsWith('c'))).toHaveLength(2);
  });
});

describe('countPromptTokens with remembered counts', () => {
  it('counts a resent conversation the same as the first time', () => {
    const long = 'Read the failing test, find the function it calls, and explain the change. '.repeat(20);
    const messages = [
      { role: 'system' as const, content: long },
      { role: 'user' as const, content: 'hello' },
    ];
    const first = countPromptTokens(messages);
    expect(first).toBeGreaterThan(200);
    expect(countPromptTokens(messages)).toBe(first);
    // One more message: its 3 framing tokens and its text's, counted from the remembered entry.
    expect(countPromptTokens([...messages, { role: 'user' as const, content: long }])).toBe(
      first + 3 + countTextTokens(long),
    );
  });
});
