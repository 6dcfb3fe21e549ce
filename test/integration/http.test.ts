import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { call, createTenant, headersFor, serviceHeaders, stack } from '../helpers/stack.ts';

describe('cross-cutting HTTP behaviour', () => {
  it('answers unknown routes and unknown functions with JSON 404', async () => {
    const route = await call('/ops/nowhere', { headers: serviceHeaders() });
    expect(route.status).toBe(404);
    expect(route.headers.get('content-type')).toMatch(/application\/json/);
    expect(await route.json()).toEqual({
      error: { code: 'route_not_found', message: 'no route for GET /ops/nowhere', details: null },
    });
    const fn = await call('/no-such-function/x');
    expect(fn.status).toBe(404);
    expect(((await fn.json()) as { error: { code: string } }).error.code).toBe('function_not_found');
  });

  it('refuses an oversized body with 413 before touching the database', async () => {
    const response = await call('/ops/tenants', {
      method: 'POST',
      headers: serviceHeaders(),
      body: JSON.stringify({ name: 'x'.repeat(70 * 1024) }),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({
      error: { code: 'payload_too_large', message: `request body exceeds ${64 * 1024} bytes`, details: null },
    });
  });

  it('echoes a valid x-request-id and generates one otherwise', async () => {
    const echoed = await call('/readiness/health', { headers: { 'x-request-id': 'trace-abc-123' } });
    expect(echoed.headers.get('x-request-id')).toBe('trace-abc-123');
    const generated = await call('/readiness/health', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
  });

  it('sets security headers', async () => {
    const response = await call('/readiness/health');
    expect(response.headers.get('strict-transport-security')).toBe('max-age=63072000; includeSubDomains');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('allows CORS only for origins on the allow-list, with preflight', async () => {
    const allowed = await call('/ops/tenants', {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:3000',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,apikey',
      },
    });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/apikey/);

    const refused = await call('/ops/tenants', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    const simple = await call('/readiness/health', { headers: { origin: 'https://evil.example' } });
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('never writes credentials or e-mail addresses to the logs', async () => {
    await createTenant('Log probe');
    await call('/ops/tenants', {
      method: 'POST',
      headers: headersFor('sy_' + 'Z'.repeat(32)),
      body: '{"name":"jane@example.com"}',
    });
    const log = await readFile(stack.functionsLogFile, 'utf8');
    expect(log).toContain('"event":"request"');
    for (
      const secret of [stack.serviceRoleKey, stack.anonKey, stack.jwtSecret, 'sy_' + 'Z'.repeat(32), 'jane@example.com']
    ) {
      expect(log).not.toContain(secret);
    }
  });
});
