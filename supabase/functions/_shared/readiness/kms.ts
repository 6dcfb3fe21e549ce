import type { ReadinessCheck } from './checks.ts';

type Method = (...args: unknown[]) => unknown;

// Method pairs a KMS may expose for data keys; the key vault defines which.
const roundTripPairs: readonly (readonly [string, string])[] = [
  ['wrapDataKey', 'unwrapDataKey'],
  ['wrapKey', 'unwrapKey'],
  ['encrypt', 'decrypt'],
];

function sameBytes(a: unknown, b: Uint8Array): boolean {
  const bytes = a instanceof Uint8Array ? a : a instanceof ArrayBuffer ? new Uint8Array(a) : undefined;
  return bytes !== undefined && bytes.length === b.length && bytes.every((value, index) => value === b[index]);
}

/**
 * Wraps and unwraps a random data key with the function's KMS (the key
 * vault's `deps.kms`), so a missing or wrong master key shows before traffic.
 * An unconfigured KMS throws kms_unavailable naming the problem: a fail.
 */
export const kmsRoundTrip: ReadinessCheck = {
  name: 'kms_round_trip',
  async run({ deps }) {
    const kms = (deps as { kms?: unknown }).kms;
    if (kms === undefined || kms === null || typeof kms !== 'object') {
      return { status: 'skip', detail: 'no KMS in the function dependencies yet (key-vault issue)' };
    }
    const methods = kms as Record<string, unknown>;
    if (typeof methods.selfTest === 'function') {
      // The key vault's own round trip: wraps and unwraps a random key under the current master key.
      const { kekId } = await (methods.selfTest as () => Promise<{ kekId: string }>).call(kms);
      return { status: 'pass', detail: `wrapped and unwrapped a random data key under "${kekId}"` };
    }
    const pair = roundTripPairs.find(([wrap, unwrap]) =>
      typeof methods[wrap] === 'function' && typeof methods[unwrap] === 'function'
    );
    if (!pair) {
      return { status: 'skip', detail: 'the KMS exposes no wrap/unwrap pair readiness knows' };
    }
    const [wrapName, unwrapName] = pair;
    const wrap = (methods[wrapName] as Method).bind(kms);
    const unwrap = (methods[unwrapName] as Method).bind(kms);
    const dataKey = crypto.getRandomValues(new Uint8Array(32));
    const wrapped = await wrap(dataKey);
    const unwrapped = await unwrap(wrapped);
    if (!sameBytes(unwrapped, dataKey)) {
      return { status: 'fail', detail: `${unwrapName} did not return the wrapped key` };
    }
    return { status: 'pass', detail: `${wrapName} then ${unwrapName} returned the same 32-byte key` };
  },
};
