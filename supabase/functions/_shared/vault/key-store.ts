import type { Database, Transaction } from '../db.ts';
import type { SealedSecret, SecretBinding } from './envelope.ts';

/**
 * The key vault's SQL. Writes go through the SQL functions of migration
 * 20261123000400_key_vault.sql (invariants and audit live there); the management calls take
 * a transaction already running as the caller (withIdentity), so RLS decides.
 */

type Sql = Database | Transaction;

export type KeyStatus = 'active' | 'grace' | 'disabled';

export interface KeyVersionMetadata {
  version: number;
  status: KeyStatus;
  last4: string;
  kek_id: string;
  created_at: Date;
  grace_until: Date | null;
  disabled_at: Date | null;
  rewrapped_at: Date | null;
}

export interface KeyMetadata {
  id: string;
  tenant_id: string | null;
  provider: string;
  label: string;
  active_version: number | null;
  created_at: Date;
  versions: KeyVersionMetadata[];
}

/** Who a key belongs to and its newest version: what the next version's binding needs. */
export interface KeyIdentity {
  keyId: string;
  tenantId: string | null;
  provider: string;
  label: string;
  latestVersion: number;
}

export interface KeyFilter {
  /** A tenant's keys, or `null` for the global ones; all visible keys when undefined. */
  tenantId?: string | null;
  provider?: string;
  keyId?: string;
}

export interface AuditEntry {
  /** bigint, as a string: the paging cursor. */
  id: string;
  action: string;
  version: number | null;
  actor: string;
  request_id: string | null;
  details: Record<string, unknown>;
  at: Date;
}

const timestampFields = new Set(['created_at', 'grace_until', 'disabled_at']);

/** The SQL functions answer jsonb (timestamps as text): Dates, so responses show them as GET does. */
function withDates(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(record).map(([name, value]) => {
      if (timestampFields.has(name) && typeof value === 'string') return [name, new Date(value)];
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        return [name, withDates(value as Record<string, unknown>)];
      }
      return [name, value];
    }),
  );
}

export async function createKey(
  tx: Transaction,
  binding: SecretBinding,
  sealed: SealedSecret,
  last4: string,
  requestId: string | undefined,
): Promise<Record<string, unknown>> {
  const [row] = await tx<{ created: Record<string, unknown> }[]>`
    select private.create_secure_key(
      ${binding.keyId}, ${binding.tenantId}, ${binding.provider}, ${binding.label},
      ${sealed.ciphertext}, ${sealed.iv}, ${sealed.wrappedDataKey}, ${sealed.kekId}, ${last4}, ${requestId ?? null}
    ) as created`;
  return withDates(row.created);
}

export async function rotateKey(
  tx: Transaction,
  binding: SecretBinding,
  sealed: SealedSecret,
  last4: string,
  graceSeconds: number,
  requestId: string | undefined,
): Promise<Record<string, unknown>> {
  const [row] = await tx<{ rotated: Record<string, unknown> }[]>`
    select private.rotate_secure_key(
      ${binding.keyId}, ${binding.version}, ${sealed.ciphertext}, ${sealed.iv}, ${sealed.wrappedDataKey},
      ${sealed.kekId}, ${last4}, ${graceSeconds}, ${requestId ?? null}
    ) as rotated`;
  return withDates(row.rotated);
}

export async function disableVersion(
  tx: Transaction,
  keyId: string,
  version: number,
  options: { force: boolean; reason?: string; requestId?: string },
): Promise<Record<string, unknown>> {
  const [row] = await tx<{ disabled: Record<string, unknown> }[]>`
    select private.disable_secure_key_version(
      ${keyId}, ${version}, ${options.force}, ${options.reason ?? null}, ${options.requestId ?? null}
    ) as disabled`;
  return withDates(row.disabled);
}

export async function findKeyIdentity(sql: Sql, keyId: string): Promise<KeyIdentity | undefined> {
  const [row] = await sql<
    { key_id: string; tenant_id: string | null; provider: string; label: string; latest: number }[]
  >`
    select k.key_id, k.tenant_id, k.provider, k.label, max(k.version_int)::int as latest
    from public.secure_keys k
    where k.key_id = ${keyId}
    group by k.key_id, k.tenant_id, k.provider, k.label`;
  if (!row) return undefined;
  return {
    keyId: row.key_id,
    tenantId: row.tenant_id,
    provider: row.provider,
    label: row.label,
    latestVersion: row.latest,
  };
}

/** Key metadata (never ciphertext), newest key first, versions newest first. */
export async function listKeys(sql: Sql, filter: KeyFilter = {}, limit = 200): Promise<KeyMetadata[]> {
  const tenantCondition = filter.tenantId === undefined
    ? sql`true`
    : filter.tenantId === null
    ? sql`k.tenant_id is null`
    : sql`k.tenant_id = ${filter.tenantId}`;
  const rows = await sql<
    (KeyVersionMetadata & { key_id: string; tenant_id: string | null; provider: string; label: string })[]
  >`
    with keys as (
      select k.key_id, min(k.created_at) as first_created
      from public.secure_keys k
      where ${tenantCondition}
        and ${filter.provider === undefined ? sql`true` : sql`k.provider = ${filter.provider}`}
        and ${filter.keyId === undefined ? sql`true` : sql`k.key_id = ${filter.keyId}`}
      group by k.key_id
      order by first_created desc, k.key_id
      limit ${limit}
    )
    select k.key_id, k.tenant_id, k.provider, k.label, k.version_int as version,
           -- Readers see a version in grace past grace_until as disabled, before the sweep writes it so.
           case when k.status = 'grace' and k.grace_until <= now() then 'disabled' else k.status end as status,
           k.last4, k.kek_id, k.created_at, k.grace_until,
           k.disabled_at, k.rewrapped_at
    from public.secure_keys k
    join keys on keys.key_id = k.key_id
    order by keys.first_created desc, k.key_id, k.version_int desc`;
  const byKey = new Map<string, KeyMetadata>();
  for (const row of rows) {
    let key = byKey.get(row.key_id);
    if (!key) {
      key = {
        id: row.key_id,
        tenant_id: row.tenant_id,
        provider: row.provider,
        label: row.label,
        active_version: null,
        created_at: row.created_at,
        versions: [],
      };
      byKey.set(row.key_id, key);
    }
    if (row.status === 'active') key.active_version = row.version;
    if (row.created_at < key.created_at) key.created_at = row.created_at;
    key.versions.push({
      version: row.version,
      status: row.status,
      last4: row.last4,
      kek_id: row.kek_id,
      created_at: row.created_at,
      grace_until: row.grace_until,
      disabled_at: row.disabled_at,
      rewrapped_at: row.rewrapped_at,
    });
  }
  return [...byKey.values()];
}

export async function listAudit(
  sql: Sql,
  keyId: string,
  page: { limit: number; beforeId?: string },
): Promise<AuditEntry[]> {
  return await sql<AuditEntry[]>`
    select a.id, a.action, a.version_int as version, a.actor, a.request_id, a.details, a.at
    from public.secure_keys_audit a
    where a.key_id = ${keyId}
      and ${page.beforeId === undefined ? sql`true` : sql`a.id < ${page.beforeId}`}
    order by a.id desc
    limit ${page.limit}`;
}

/** One stored version with its sealed secret: for decrypting, by the service connection only. */
export interface StoredKeyVersion {
  /** secure_keys.id: the version row. */
  rowId: string;
  binding: SecretBinding;
  sealed: SealedSecret;
  status: KeyStatus;
}

/** What the resolver needs from the database; tests can hand in their own. */
export interface KeyStore {
  /** The tenant's active version for (provider, label), else the global one. */
  findActiveVersion(tenantId: string | null, provider: string, label: string): Promise<StoredKeyVersion | undefined>;
  /** A version that is active or still in grace; undefined when disabled (or past grace) or unknown. */
  findUsableVersion(keyId: string, version: number): Promise<StoredKeyVersion | undefined>;
  recordDecrypt(rowId: string, actor: string, requestId: string | undefined): Promise<void>;
  disableExpiredVersions(): Promise<number>;
}

interface StoredRow {
  id: string;
  key_id: string;
  tenant_id: string | null;
  provider: string;
  label: string;
  version_int: number;
  status: KeyStatus;
  ciphertext: Uint8Array;
  iv: Uint8Array;
  wrapped_data_key: Uint8Array;
  kek_id: string;
}

function toStored(row: StoredRow): StoredKeyVersion {
  return {
    rowId: row.id,
    binding: {
      keyId: row.key_id,
      tenantId: row.tenant_id,
      provider: row.provider,
      label: row.label,
      version: row.version_int,
    },
    sealed: { ciphertext: row.ciphertext, iv: row.iv, wrappedDataKey: row.wrapped_data_key, kekId: row.kek_id },
    status: row.status,
  };
}

/** The key store over the functions' own (service) connection. */
export function createSqlKeyStore(db: Database): KeyStore {
  return {
    async findActiveVersion(tenantId, provider, label) {
      const [row] = await db<StoredRow[]>`
        select k.id, k.key_id, k.tenant_id, k.provider, k.label, k.version_int, k.status,
               k.ciphertext, k.iv, k.wrapped_data_key, k.kek_id
        from public.secure_keys k
        where k.provider = ${provider} and k.label = ${label} and k.status = 'active'
          and (k.tenant_id is null or k.tenant_id = ${tenantId})
        order by k.tenant_id nulls last
        limit 1`;
      return row ? toStored(row) : undefined;
    },
    async findUsableVersion(keyId, version) {
      const [row] = await db<StoredRow[]>`
        select k.id, k.key_id, k.tenant_id, k.provider, k.label, k.version_int, k.status,
               k.ciphertext, k.iv, k.wrapped_data_key, k.kek_id
        from public.secure_keys k
        where k.key_id = ${keyId} and k.version_int = ${version}
          and (k.status = 'active' or (k.status = 'grace' and k.grace_until > now()))`;
      return row ? toStored(row) : undefined;
    },
    async recordDecrypt(rowId, actor, requestId) {
      await db`select public.record_secure_key_decrypt(${rowId}, ${actor}, ${requestId ?? null})`;
    },
    async disableExpiredVersions() {
      const [row] = await db<{ disabled: number }[]>`select public.disable_expired_key_versions() as disabled`;
      return row.disabled;
    },
  };
}
