import { describe, expect, it } from 'vitest';
import { LocalKms } from '../../../supabase/functions/_shared/kms/local-kms.ts';
import {
  lastFour,
  openSecret,
  sealSecret,
  type SecretBinding,
  SecretIntegrityError,
} from '../../../supabase/functions/_shared/vault/envelope.ts';

const kms = new LocalKms([{ kid: 'unit-1', key: crypto.getRandomValues(new Uint8Array(32)) }]);
const secret = `provider-secret-${crypto.randomUUID()}`;
const bindingA: SecretBinding = {
  keyId: '11111111-1111-4111-8111-111111111111',
  tenantId: '22222222-2222-4222-8222-222222222222',
  provider: 'openai',
  label: 'default',
  version: 1,
};

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe('envelope encryption', () => {
  it('round-trips a secret through a fresh data key wrapped by the KMS', async () => {
    const sealed = await sealSecret(kms, bindingA, secret);
    expect(sealed.kekId).toBe('unit-1');
    expect(sealed.iv).toHaveLength(12);
    expect(await openSecret(kms, bindingA, sealed)).toBe(secret);
    // Nothing stored holds the plaintext.
    const plain = new TextEncoder().encode(secret);
    for (const part of [sealed.ciphertext, sealed.iv, sealed.wrappedDataKey]) expect(contains(part, plain)).toBe(false);
  });

  it('uses a fresh data key and IV for every version, even for the same secret', async () => {
    const one = await sealSecret(kms, bindingA, secret);
    const two = await sealSecret(kms, bindingA, secret);
    expect(Buffer.from(one.wrappedDataKey).equals(Buffer.from(two.wrappedDataKey))).toBe(false);
    expect(Buffer.from(one.ciphertext).equals(Buffer.from(two.ciphertext))).toBe(false);
    expect(Buffer.from(one.iv).equals(Buffer.from(two.iv))).toBe(false);
  });

  it.each([
    ['key id', { keyId: '33333333-3333-4333-8333-333333333333' }],
    ['tenant', { tenantId: '44444444-4444-4444-8444-444444444444' }],
    ['tenant (now global)', { tenantId: null }],
    ['provider', { provider: 'anthropic' }],
    ['label', { label: 'backup' }],
    ['version', { version: 2 }],
  ])('fails when the additional data names another %s', async (_field, change) => {
    const sealed = await sealSecret(kms, bindingA, secret);
    await expect(openSecret(kms, { ...bindingA, ...change }, sealed)).rejects.toBeInstanceOf(SecretIntegrityError);
  });

  it('fails on a flipped ciphertext bit or another IV', async () => {
    const sealed = await sealSecret(kms, bindingA, secret);
    const flipped = Uint8Array.from(sealed.ciphertext);
    flipped[0] ^= 1;
    await expect(openSecret(kms, bindingA, { ...sealed, ciphertext: flipped })).rejects.toBeInstanceOf(
      SecretIntegrityError,
    );
    const otherIv = Uint8Array.from(sealed.iv);
    otherIv[11] ^= 1;
    await expect(openSecret(kms, bindingA, { ...sealed, iv: otherIv })).rejects.toBeInstanceOf(SecretIntegrityError);
  });

  it("a row swap fails: row B holding all of row A's sealed material does not decrypt", async () => {
    const bindingB: SecretBinding = { ...bindingA, keyId: '55555555-5555-4555-8555-555555555555', provider: 'gemini' };
    const sealedA = await sealSecret(kms, bindingA, secret);
    const sealedB = await sealSecret(kms, bindingB, 'secret-of-row-b-0000');
    await expect(openSecret(kms, bindingB, sealedA)).rejects.toBeInstanceOf(SecretIntegrityError);
    // Ciphertext of A with B's own data key: the data key does not match either.
    await expect(openSecret(kms, bindingB, { ...sealedA, wrappedDataKey: sealedB.wrappedDataKey })).rejects
      .toBeInstanceOf(SecretIntegrityError);
    // The untouched rows still decrypt.
    expect(await openSecret(kms, bindingB, sealedB)).toBe('secret-of-row-b-0000');
  });

  it('shows the last four characters of long secrets only', () => {
    expect(lastFour('sk-abcdefghijklmnopqrstuvwxyz1234')).toBe('1234');
    expect(lastFour('short-secret')).toBe('');
  });
});
