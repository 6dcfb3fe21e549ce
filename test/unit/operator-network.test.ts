import { describe, expect, it } from 'vitest';
import { createRuntimeDependencies } from '../../supabase/functions/_shared/runtime.ts';
import { cidrContains, parseAddress, parseCidr } from '../../supabase/functions/_shared/middleware/operator-network.ts';
import { createOpsApp } from '../../supabase/functions/ops/app.ts';
import { ConfigError } from '../../supabase/functions/_shared/config.ts';

describe('address and network parsing', () => {
  it('matches IPv4 and IPv6 networks, including IPv4-mapped addresses', () => {
    const v4 = parseCidr('10.20.0.0/16');
    expect(cidrContains(v4, parseAddress('10.20.3.4')!)).toBe(true);
    expect(cidrContains(v4, parseAddress('10.21.3.4')!)).toBe(false);
    expect(cidrContains(v4, parseAddress('::ffff:10.20.9.9')!)).toBe(true);
    const v6 = parseCidr('2001:db8::/32');
    expect(cidrContains(v6, parseAddress('2001:db8:1::7')!)).toBe(true);
    expect(cidrContains(v6, parseAddress('2001:db9::1')!)).toBe(false);
    expect(cidrContains(parseCidr('192.168.1.7'), parseAddress('192.168.1.7')!)).toBe(true);
    expect(cidrContains(parseCidr('192.168.1.7'), parseAddress('192.168.1.8')!)).toBe(false);
    expect(cidrContains(parseCidr('0.0.0.0/0'), parseAddress('8.8.8.8')!)).toBe(true);
  });

  it('refuses what is not an address or a network', () => {
    for (const bad of ['10.0.0.256', 'abc', '1::2::3', '1:2:3:4:5:6:7:8:9', '']) {
      expect(parseAddress(bad)).toBeUndefined();
    }
    expect(() => parseCidr('10.0.0.0/33')).toThrow(/prefix/);
    expect(() => parseCidr('example.com/8')).toThrow(/not an IP network/);
  });
});

describe('OPS_ALLOWED_CIDRS', () => {
  const environment = {
    SUPABASE_DB_URL: 'postgresql://postgres:postgres@127.0.0.1:1/postgres',
    SUPABASE_JWT_SECRET: 's'.repeat(40),
    SUPABASE_ANON_KEY: 'anon',
    LOG_LEVEL: 'error',
  };

  it('answers 403 to clients outside the networks and lets the others through to authentication', async () => {
    const deps = createRuntimeDependencies({ ...environment, OPS_ALLOWED_CIDRS: '10.0.0.0/8, 2001:db8::/32' });
    const app = createOpsApp(deps);
    const outside = await app.request('/ops/tenants', { headers: { 'x-forwarded-for': '203.0.113.9, 10.0.0.1' } });
    expect(outside.status).toBe(403);
    expect(await outside.json()).toEqual({
      error: {
        code: 'address_not_allowed',
        message: 'this endpoint is not reachable from your network',
        details: null,
      },
    });
    expect((await app.request('/ops/tenants')).status).toBe(403);
    // Inside: the request reaches authentication (no apikey -> 401).
    for (const address of ['10.1.2.3', '2001:db8::5']) {
      const inside = await app.request('/ops/tenants', { headers: { 'x-forwarded-for': address } });
      expect(inside.status).toBe(401);
    }
    await deps.db.end({ timeout: 0 });
  });

  it('is off by default and refuses a malformed network at start, naming the variable', async () => {
    const deps = createRuntimeDependencies(environment);
    expect((await createOpsApp(deps).request('/ops/tenants', { headers: { 'x-forwarded-for': '203.0.113.9' } })).status)
      .toBe(401);
    await deps.db.end({ timeout: 0 });
    expect(() => createRuntimeDependencies({ ...environment, OPS_ALLOWED_CIDRS: '10.0.0.0/40' })).toThrow(ConfigError);
    expect(() => createRuntimeDependencies({ ...environment, OPS_ALLOWED_CIDRS: 'ten' })).toThrow(
      /OPS_ALLOWED_CIDRS: not an IP network: ten/,
    );
  });
});
