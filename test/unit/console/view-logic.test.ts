import { describe, expect, it } from 'vitest';
import { budgetBody, type BudgetForm } from '../../../console/src/lib/budget-form.ts';
import {
  budgetShares,
  dailySeries,
  formatUsd,
  lastUtcDays,
  toCsv,
  totals,
  type UsageRow,
} from '../../../console/src/lib/usage.ts';
import { serviceSession, sessionFromFragment } from '../../../console/src/session.ts';

// The console's pure view logic: days, chart series, CSV, budget bars and form, sign-in parsing.
const row = (provider: string, model: string, requests: number, cost = 0): UsageRow => ({
  provider,
  model,
  requests,
  prompt_tokens: requests * 10,
  completion_tokens: requests * 5,
  cost_usd_micros: cost,
  cache_hits: 0,
});

describe('lastUtcDays', () => {
  it('gives the last n UTC days, oldest first, each a whole day with an inclusive end', () => {
    const days = lastUtcDays(3, new Date('2026-03-01T05:00:00+09:00'));
    expect(days.map((day) => day.day)).toEqual(['2026-02-26', '2026-02-27', '2026-02-28']);
    expect(days[2]).toEqual({ day: '2026-02-28', from: '2026-02-28T00:00:00.000Z', to: '2026-02-28T23:59:59.999Z' });
  });
});

describe('dailySeries', () => {
  it('makes one dataset per provider/model with a value for every day, largest total first', () => {
    const series = dailySeries(
      [
        { day: '2026-01-01', items: [row('openai', 'gpt', 2)] },
        { day: '2026-01-02', items: [] },
        { day: '2026-01-03', items: [row('openai', 'gpt', 1), row('anthropic', 'haiku', 5)] },
      ],
      ['provider', 'model'],
      'requests',
    );
    expect(series).toEqual({
      labels: ['2026-01-01', '2026-01-02', '2026-01-03'],
      datasets: [
        { label: 'anthropic / haiku', data: [0, 0, 5] },
        { label: 'openai / gpt', data: [2, 0, 1] },
      ],
    });
  });

  it('sums prompt and completion tokens for the tokens metric and leaves out groups with nothing', () => {
    const series = dailySeries(
      [{ day: '2026-01-01', items: [row('a', 'm', 2), row('b', 'n', 0)] }],
      ['provider'],
      'tokens',
    );
    expect(series.datasets).toEqual([{ label: 'a', data: [30] }]);
  });
});

describe('totals and formatUsd', () => {
  it('adds rows up and shows micro-dollars readably', () => {
    expect(totals([row('a', 'm', 2, 1_500), row('b', 'n', 1, 2_000_000)])).toEqual({
      requests: 3,
      tokens: 45,
      cost_usd_micros: 2_001_500,
      cache_hits: 0,
    });
    expect(formatUsd(9)).toBe('$0.000009');
    expect(formatUsd(12_345_678)).toBe('$12.35');
    expect(formatUsd(0)).toBe('$0.00');
  });
});

describe('toCsv', () => {
  it('writes RFC 4180 CSV: header, quoted separators and quotes, CRLF, formulas defused', () => {
    const csv = toCsv(
      [
        { model: 'gpt, "mini"', requests: 3, key: null },
        { model: '=HYPERLINK("x")', requests: -1, key: 'k' },
      ],
      ['model', 'requests', 'key'],
    );
    expect(csv).toBe('model,requests,key\r\n"gpt, ""mini""",3,\r\n"\'=HYPERLINK(""x"")",-1,k\r\n');
  });
});

describe('budgetShares', () => {
  it('splits a bar into spent, reserved and free, never past 100', () => {
    expect(budgetShares(25, 25, 100)).toEqual({ spent: 25, reserved: 25, free: 50 });
    expect(budgetShares(90, 30, 100)).toEqual({ spent: 90, reserved: 10, free: 0 });
    expect(budgetShares(0, 0, 0)).toEqual({ spent: 0, reserved: 0, free: 0 });
  });
});

describe('budgetBody', () => {
  const form: BudgetForm = {
    scope: 'tenant',
    apiKeyId: '',
    modelAlias: '',
    unit: 'usd_micros',
    period: 'month',
    limit: '12.5',
    overLimit: 'refuse',
  };
  const tenant = '00000000-0000-4000-8000-000000000001';

  it('turns dollars into micro-units and sends only the scope target that applies', () => {
    expect(budgetBody(tenant, { ...form, apiKeyId: 'ignored' })).toEqual({
      ok: true,
      body: {
        tenant_id: tenant,
        scope: 'tenant',
        unit: 'usd_micros',
        period: 'month',
        limit: 12_500_000,
        over_limit: 'refuse',
      },
    });
    expect(budgetBody(tenant, { ...form, scope: 'model', modelAlias: ' gpt-4o ', unit: 'tokens', limit: '1000' }))
      .toEqual({
        ok: true,
        body: {
          tenant_id: tenant,
          scope: 'model',
          model_alias: 'gpt-4o',
          unit: 'tokens',
          period: 'month',
          limit: 1000,
          over_limit: 'refuse',
        },
      });
  });

  it('names each field to fix', () => {
    expect(budgetBody(tenant, { ...form, limit: 'five' })).toEqual({
      ok: false,
      errors: { limit: 'Enter an amount in US dollars, like 25 or 0.50 (up to 6 decimals).' },
    });
    expect(budgetBody(tenant, { ...form, scope: 'api_key', unit: 'tokens', limit: '1.5' })).toEqual({
      ok: false,
      errors: {
        limit: 'Enter a whole number of tokens, like 100000.',
        apiKeyId: 'Pick the API key this budget applies to.',
      },
    });
  });
});

describe('sign-in parsing', () => {
  const jwt = (claims: object) => `e30.${btoa(JSON.stringify(claims)).replaceAll('=', '')}.sig`;

  it('takes a link token from the fragment and labels it by its subject', () => {
    const token = jwt({ sub: 'abcdef12-0000-4000-8000-000000000000', exp: 2_000_000_000 });
    expect(sessionFromFragment(`#access_token=${token}`)).toEqual({
      kind: 'link',
      token,
      subject: 'abcdef12-0000-4000-8000-000000000000',
      expiresAt: 2_000_000_000_000,
    });
    expect(sessionFromFragment('#/overview')).toBeUndefined();
  });

  it('accepts a service_role JWT or an sb_secret_ key and explains anything else', () => {
    expect(serviceSession(` ${jwt({ role: 'service_role' })} `)).toEqual({
      kind: 'service',
      token: jwt({ role: 'service_role' }),
    });
    expect(serviceSession('sb_secret_abc')).toEqual({ kind: 'service', token: 'sb_secret_abc' });
    expect(serviceSession(jwt({ role: 'anon' }))).toBe(
      'that key has role "anon": paste the service_role key or an sb_secret_ key',
    );
    expect(serviceSession('hello')).toBe('that is not a service key: paste the service_role JWT or an sb_secret_ key');
  });
});
