import { describe, expect, it } from 'vitest';
import { call } from '../helpers/stack.ts';

describe('readiness', () => {
  it('/health answers without credentials or I/O', async () => {
    const response = await call('/readiness/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('/ready reports every check with its status and duration', async () => {
    const response = await call('/readiness/ready');
    const body = (await response.json()) as { status: string; checks: { name: string; status: string; duration_ms: number }[] };
    expect(response.status).toBe(200);
    expect(body.status).toBe('ready');
    expect(body.checks.map((check) => [check.name, check.status])).toEqual([
      ['database_reachable', 'pass'],
      ['migrations_at_head', 'pass'],
      ['rls_on_exposed_tables', 'pass'],
    ]);
    for (const check of body.checks) expect(check.duration_ms).toBeGreaterThanOrEqual(0);
  });
});
