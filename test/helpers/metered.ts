// What tests of metered endpoints share: a tenant with a key, a provider with a key, a request's usage record.
import { expect } from 'vitest';
import { createCatalogFixture } from './catalog.ts';
import { eventually } from './eventually.ts';
import { call, createTenant, serviceHeaders, type TestDatabase } from './stack.ts';

/** A new tenant and an API key of it, through the ops API. */
export async function newTenantKey(name: string): Promise<{ tenantId: string; key: string }> {
  const id = await createTenant(name);
  const created = await call(`/ops/tenants/${id}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ name }),
  });
  expect(created.status).toBe(201);
  return { tenantId: id, key: ((await created.json()) as { key: string }).key };
}

/** A catalog fixture whose provider has a key in the vault (so the router can call it). */
export async function fixtureWithKey(sql: TestDatabase, options: Parameters<typeof createCatalogFixture>[1]) {
  const fixture = await createCatalogFixture(sql, options);
  const stored = await call('/keys', {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ provider: fixture.providerSlug, secret: `sk-test-${crypto.randomUUID()}` }),
  });
  expect(stored.status).toBe(201);
  return fixture;
}

export interface UsageRecord {
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd_micros: string;
  status: string;
  provider: string;
  /** The API the client called (usage_records.dialect). */
  dialect: string;
}

/** The usage record of a request, once written (settlement precedes the answer; the lease path flushes in batches). */
export async function usageRecordOf(sql: TestDatabase, requestId: string): Promise<UsageRecord> {
  const rows = await eventually(
    () =>
      sql<UsageRecord[]>`
      select prompt_tokens, completion_tokens, cost_usd_micros::text, status, provider, dialect
      from public.usage_records where request_id = ${requestId}`,
    (found) => found.length === 1,
  );
  expect(rows).toHaveLength(1);
  return rows[0];
}
