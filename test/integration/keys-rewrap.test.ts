import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, repoRoot } from '../../scripts/lib/paths.ts';
import { runCommand } from '../../scripts/lib/run.ts';
import type { Kms } from '../../supabase/functions/_shared/kms/kms.ts';
import { openSecret } from '../../supabase/functions/_shared/vault/envelope.ts';
import { rewrapDataKeys } from '../../supabase/functions/_shared/vault/rewrap.ts';
import { connectDatabase, createTenant, serviceHeaders, stack } from '../helpers/stack.ts';
import { inProcessKeysApp, stackKms } from '../helpers/vault.ts';

// Master keys of this file only, so the re-wrap touches no other test's rows
// (`--from`); the stack's own key (local-1) stays as it is.
const suffix = randomBytes(4).toString('hex');
const oldKid = `rw-old-${suffix}`;
const newKid = `rw-new-${suffix}`;
const oldKey = `${oldKid}:${randomBytes(32).toString('base64')}`;
const newKey = `${newKid}:${randomBytes(32).toString('base64')}`;

const sql = connectDatabase();
let tenant: string;
/** Every stored version of this file's keys, with the secret it must still open to. */
const stored: { keyId: string; version: number; secret: string }[] = [];

interface VersionRow {
  key_id: string;
  tenant_id: string | null;
  provider: string;
  label: string;
  version_int: number;
  ciphertext: Buffer;
  iv: Buffer;
  wrapped_data_key: Buffer;
  kek_id: string;
}

async function ourRows(): Promise<VersionRow[]> {
  return await sql<VersionRow[]>`
    select key_id, tenant_id, provider, label, version_int, ciphertext, iv, wrapped_data_key, kek_id
    from public.secure_keys where tenant_id = ${tenant} order by key_id, version_int`;
}

async function rewrapCli(args: string[], masterKeys = `${newKey},${oldKey}`) {
  return await runCommand(bin('tsx'), ['scripts/keys-rewrap.ts', ...args], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      DATABASE_URL: stack.dbUrl,
      SWITCHYARD_MASTER_KEYS: masterKeys,
    },
  });
}

beforeAll(async () => {
  tenant = await createTenant('Rewrap tenant');
  // Keys written by a keys function whose current master key is oldKid.
  const keys = inProcessKeysApp({ SWITCHYARD_MASTER_KEYS: oldKey });
  try {
    const post = async (path: string, body: unknown) => {
      const response = await keys.app.request(`/keys${path}`, {
        method: 'POST',
        headers: serviceHeaders(),
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (response.status >= 300) throw new Error(`${path}: ${response.status} ${JSON.stringify(answer)}`);
      return answer as { id: string; version: number };
    };
    for (const provider of ['openai', 'anthropic', 'gemini']) {
      const secret = `rewrap-${provider}-${randomBytes(16).toString('hex')}`;
      const created = await post('', { provider, secret, tenant_id: tenant });
      stored.push({ keyId: created.id, version: 1, secret });
    }
    // One key with a version in grace and one disabled: every data key is re-wrapped.
    const rotated = { secret: `rewrap-rotated-${randomBytes(16).toString('hex')}` };
    const second = await post(`/${stored[0].keyId}/rotate`, { secret: rotated.secret, grace_seconds: 600 });
    stored.push({ keyId: stored[0].keyId, version: second.version, secret: rotated.secret });
    await post(`/${stored[1].keyId}/versions/1/disable`, { force: true });
  } finally {
    await keys.close();
  }
});
afterAll(() => sql.end());

/** Fails the wrap after `allowed` successful ones: an interrupted run. */
function failingAfter(kms: Kms, allowed: number): Kms {
  let wraps = 0;
  return {
    ...kms,
    kind: kms.kind,
    currentKeyId: () => kms.currentKeyId(),
    unwrapDataKey: (wrapped) => kms.unwrapDataKey(wrapped),
    selfTest: () => kms.selfTest(),
    wrapDataKey: (dataKey, kekId) => {
      wraps += 1;
      if (wraps > allowed) return Promise.reject(new Error('interrupted'));
      return kms.wrapDataKey(dataKey, kekId);
    },
  };
}

describe('npm run keys:rewrap', () => {
  it('dry-runs, survives an interruption, resumes, and keeps every secret decryptable under the new master key only', async () => {
    const before = await ourRows();
    expect(before).toHaveLength(4);
    expect(new Set(before.map((row) => row.kek_id))).toEqual(new Set([oldKid]));

    // Dry run: counts and verifies, changes nothing.
    const dry = await rewrapCli(['--to', newKid, '--from', oldKid, '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toEqual({
      dryRun: true,
      toKekId: newKid,
      pendingByKek: { [oldKid]: 4 },
      verified: 4,
      rewrapped: 0,
      batches: 0,
      remaining: 4,
    });
    expect(await ourRows()).toEqual(before);

    // Interrupted in its second batch: the first batch is done, the second rolled back.
    const kms = stackKms(`${newKey},${oldKey}`);
    const interrupted = rewrapDataKeys(sql, failingAfter(kms, 3), {
      toKekId: newKid,
      fromKekId: oldKid,
      batchSize: 2,
      dryRun: false,
    });
    await expect(interrupted).rejects.toThrow('interrupted');
    const halfway = await ourRows();
    expect(halfway.filter((row) => row.kek_id === newKid)).toHaveLength(2);
    expect(halfway.filter((row) => row.kek_id === oldKid)).toHaveLength(2);

    // A row held by another transaction is skipped, not waited for, and left for the rerun.
    const held = halfway.find((row) => row.kek_id === oldKid) as VersionRow;
    let partial: Awaited<ReturnType<typeof rewrapCli>> | undefined;
    await sql.begin(async (tx) => {
      await tx`select 1 from public.secure_keys where key_id = ${held.key_id} and version_int = ${held.version_int} for update`;
      partial = await rewrapCli(['--to', newKid, '--from', oldKid, '--batch', '2']);
    });
    expect(partial?.code, partial?.stderr).toBe(1);
    expect(partial?.stdout).toContain('re-wrapped 1 data keys in 1 batches; 1 left');
    expect(partial?.stderr).toContain('1 data keys were held by other transactions: run it again');

    const resumed = await rewrapCli(['--to', newKid, '--from', oldKid, '--batch', '2']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`data keys not under ${newKid} at start: 1 under ${oldKid}`);
    expect(resumed.stdout).toContain('re-wrapped 1 data keys in 1 batches; 0 left');

    // Only the wrapping changed; every secret opens with the new master key alone.
    const after = await ourRows();
    expect(after.map((row) => row.kek_id)).toEqual([newKid, newKid, newKid, newKid]);
    for (const [index, row] of after.entries()) {
      expect(row.ciphertext.equals(before[index].ciphertext)).toBe(true);
      expect(row.iv.equals(before[index].iv)).toBe(true);
      expect(row.wrapped_data_key.equals(before[index].wrapped_data_key)).toBe(false);
    }
    const newOnly = stackKms(newKey);
    for (const { keyId, version, secret } of stored) {
      const row = after.find((candidate) =>
        candidate.key_id === keyId && candidate.version_int === version
      ) as VersionRow;
      const binding = { keyId, tenantId: row.tenant_id, provider: row.provider, label: row.label, version };
      const sealed = {
        ciphertext: row.ciphertext,
        iv: row.iv,
        wrappedDataKey: row.wrapped_data_key,
        kekId: row.kek_id,
      };
      expect(await openSecret(newOnly, binding, sealed)).toBe(secret);
    }

    const audit = await sql<{ actor: string; details: Record<string, string> }[]>`
      select actor, details from public.secure_keys_audit where tenant_id = ${tenant} and action = 'rewrap' order by id`;
    expect(audit).toHaveLength(4);
    for (const entry of audit) {
      expect(entry).toEqual({ actor: 'script:keys-rewrap', details: { from_kek_id: oldKid, to_kek_id: newKid } });
    }

    // Run again: nothing left to do.
    const again = await rewrapCli(['--to', newKid, '--from', oldKid, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ rewrapped: 0, remaining: 0, pendingByKek: {} });
  });

  it('refuses bad arguments and an unknown master key, naming them without key material', async () => {
    const missing = await rewrapCli([]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--to <kid> is required');
    const badBatch = await rewrapCli(['--to', newKid, '--batch', '0']);
    expect(badBatch.code).toBe(2);
    expect(badBatch.stderr).toContain('--batch must be a whole number from 1 to 10000');
    const unknown = await rewrapCli(['--to', 'no-such-kid', '--from', oldKid]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('master key "no-such-kid" is not configured');
    const badKeys = await rewrapCli(['--to', newKid], 'broken');
    expect(badKeys.code).toBe(2);
    expect(badKeys.stderr).toContain('no usable KMS: SWITCHYARD_MASTER_KEYS: entry 1 is not kid:base64key');
    for (const output of [missing, badBatch, unknown, badKeys]) {
      expect(`${output.stdout}${output.stderr}`).not.toContain(newKey.slice(newKid.length + 1));
      expect(`${output.stdout}${output.stderr}`).not.toContain(oldKey.slice(oldKid.length + 1));
    }
  });
});
