import type { Database } from '../db.ts';
import { HttpError } from '../errors.ts';
import { bytesEqual, type Kms } from '../kms/kms.ts';

/**
 * Master-key rotation: re-wraps every stored data key under another
 * key-encryption key. Only data keys are unwrapped and wrapped again; the
 * secrets' ciphertext is untouched and no plaintext secret is ever produced.
 * Each batch is one transaction (row locks taken with SKIP LOCKED), so an
 * interrupted run leaves whole batches done and a rerun continues with what
 * is left; every re-wrap is audited (`rewrap`) by the table's trigger.
 */
export interface RewrapOptions {
  /** The key-encryption key to wrap under. */
  toKekId: string;
  /** Only data keys wrapped under this key (default: every key other than `toKekId`). */
  fromKekId?: string;
  batchSize: number;
  /** Count and verify (every pending data key unwraps, `toKekId` wraps), change nothing. */
  dryRun: boolean;
  /** Who the audit names. Default 'script:keys-rewrap'. */
  actor?: string;
  onBatch?: (progress: { batch: number; rewrapped: number; total: number }) => void;
}

export interface RewrapReport {
  dryRun: boolean;
  toKekId: string;
  /** Data keys under other key-encryption keys when the run started, by key id. */
  pendingByKek: Record<string, number>;
  /** Dry run: pending data keys that unwrapped with their key. */
  verified: number;
  rewrapped: number;
  batches: number;
  /** Still under another key when the run ended (a dry run, or rows another transaction held). */
  remaining: number;
}

interface PendingRow {
  id: string;
  kek_id: string;
  wrapped_data_key: Uint8Array;
}

export async function rewrapDataKeys(db: Database, kms: Kms, options: RewrapOptions): Promise<RewrapReport> {
  const { toKekId, fromKekId } = options;
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new Error('batch size must be 1 or more');
  const actor = options.actor ?? 'script:keys-rewrap';
  const fromCondition = () => (fromKekId === undefined ? db`true` : db`kek_id = ${fromKekId}`);

  const counts = await db<{ kek_id: string; pending: number }[]>`
    select kek_id, count(*)::int as pending from public.secure_keys
    where kek_id <> ${toKekId} and ${fromCondition()}
    group by kek_id order by kek_id`;
  const pendingByKek = Object.fromEntries(counts.map((row) => [row.kek_id, row.pending]));
  const report: RewrapReport = {
    dryRun: options.dryRun,
    toKekId,
    pendingByKek,
    verified: 0,
    rewrapped: 0,
    batches: 0,
    remaining: counts.reduce((sum, row) => sum + row.pending, 0),
  };

  // Fail before touching anything when the target key cannot wrap.
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const probeWrapped = await kms.wrapDataKey(probe, toKekId);
  if (probeWrapped.kekId !== toKekId) {
    throw new HttpError('kms_unavailable', `the KMS wrapped under "${probeWrapped.kekId}" when asked for "${toKekId}"`);
  }
  if (!bytesEqual(await kms.unwrapDataKey(probeWrapped), probe)) {
    throw new HttpError('kms_unavailable', `the KMS round trip under "${toKekId}" returned a different key`);
  }

  if (options.dryRun) {
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const rows = await db<PendingRow[]>`
        select id, kek_id, wrapped_data_key from public.secure_keys
        where kek_id <> ${toKekId} and ${fromCondition()} and id > ${after}
        order by id limit ${options.batchSize}`;
      if (rows.length === 0) break;
      for (const row of rows) {
        (await kms.unwrapDataKey({ kekId: row.kek_id, wrappedKey: row.wrapped_data_key })).fill(0);
        report.verified += 1;
      }
      after = rows[rows.length - 1].id;
    }
    return report;
  }

  for (;;) {
    const done = await db.begin(async (tx) => {
      await tx`select set_config('switchyard.actor', ${actor}, true)`;
      const rows = await tx<PendingRow[]>`
        select id, kek_id, wrapped_data_key from public.secure_keys
        where kek_id <> ${toKekId} and ${fromKekId === undefined ? tx`true` : tx`kek_id = ${fromKekId}`}
        order by id
        limit ${options.batchSize}
        for update skip locked`;
      for (const row of rows) {
        const dataKey = await kms.unwrapDataKey({ kekId: row.kek_id, wrappedKey: row.wrapped_data_key });
        try {
          const wrapped = await kms.wrapDataKey(dataKey, toKekId);
          const check = await kms.unwrapDataKey(wrapped);
          const same = wrapped.kekId === toKekId && bytesEqual(check, dataKey);
          check.fill(0);
          if (!same) throw new HttpError('kms_unavailable', `re-wrapping under "${toKekId}" did not round-trip`);
          await tx`
            update public.secure_keys
            set wrapped_data_key = ${wrapped.wrappedKey}, kek_id = ${wrapped.kekId}, rewrapped_at = now()
            where id = ${row.id}`;
        } finally {
          dataKey.fill(0);
        }
      }
      return rows.length;
    });
    if (done === 0) break;
    report.batches += 1;
    report.rewrapped += done;
    options.onBatch?.({ batch: report.batches, rewrapped: done, total: report.rewrapped });
  }

  const [left] = await db<{ remaining: number }[]>`
    select count(*)::int as remaining from public.secure_keys where kek_id <> ${toKekId} and ${fromCondition()}`;
  report.remaining = left.remaining;
  return report;
}
