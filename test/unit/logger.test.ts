import { describe, expect, it } from 'vitest';
import { createJsonLogger, redact } from '../../supabase/functions/_shared/logger.ts';

describe('redact', () => {
  it('blanks secret-named fields whatever they hold', () => {
    expect(redact({ authorization: 'Bearer abc', apikey: 'x', nested: { api_key: 1, password: 'p' }, keep: 'ok' }))
      .toEqual({
        authorization: '[redacted]',
        apikey: '[redacted]',
        nested: { api_key: '[redacted]', password: '[redacted]' },
        keep: 'ok',
      });
  });

  it('blanks credential-looking and e-mail values inside free text', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQ';
    const line = `user jane.doe@example.com sent ${jwt} and sy_ABCDEFGHijklmnop1234 and sk-live1234567890abcd`;
    expect(redact(line)).toBe('user [redacted] sent [redacted] and [redacted] and [redacted]');
  });
});

describe('createJsonLogger', () => {
  it('writes one JSON object per line, honours the level, and redacts', () => {
    const lines: string[] = [];
    const logger = createJsonLogger({ level: 'info', write: (line) => lines.push(line) });
    logger.debug('hidden');
    logger.info('shown', { token: 'secret', note: 'mail bob@example.org' });
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]);
    expect(record).toMatchObject({ level: 'info', event: 'shown', token: '[redacted]', note: 'mail [redacted]' });
  });

  it("stamps each line with its clock's time", () => {
    const lines: string[] = [];
    const clock = { now: () => new Date('2030-05-06T07:08:09.000Z') };
    createJsonLogger({ write: (line) => lines.push(line), clock }).warn('stamped');
    expect(JSON.parse(lines[0]).at).toBe('2030-05-06T07:08:09.000Z');
  });
});
