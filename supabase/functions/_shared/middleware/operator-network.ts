import { createMiddleware } from 'hono/factory';
import { HttpError } from '../errors.ts';
import type { AppEnv } from '../hono-env.ts';

/** An address as 16 bytes (IPv4 mapped into IPv6), or undefined when it is not an IP address. */
export function parseAddress(text: string): Uint8Array | undefined {
  const value = text.trim().replace(/^\[|\]$/g, '');
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(value);
  if (v4) {
    const octets = v4.slice(1).map(Number);
    if (octets.some((octet) => octet > 255)) return undefined;
    return new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...octets]);
  }
  if (!value.includes(':') || !/^[0-9a-fA-F:.]+$/.test(value)) return undefined;
  const [head, tail, extra] = value.split('::');
  if (extra !== undefined) return undefined;
  const groups = (part: string | undefined): number[] | undefined => {
    if (!part) return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const mapped = parseAddress(group);
        if (!mapped) return undefined;
        out.push((mapped[12] << 8) | mapped[13], (mapped[14] << 8) | mapped[15]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(group)) {
        out.push(parseInt(group, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const left = groups(head);
  const right = groups(tail);
  if (!left || !right) return undefined;
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const all = [...left, ...new Array(tail === undefined ? 0 : missing).fill(0), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((group, index) => {
    bytes[index * 2] = group >> 8;
    bytes[index * 2 + 1] = group & 0xff;
  });
  return bytes;
}

export interface Cidr {
  network: Uint8Array;
  prefixBits: number;
}

/** `10.0.0.0/8`, `2001:db8::/32` or a single address; throws on anything else (bad configuration fails at start). */
export function parseCidr(text: string): Cidr {
  const [address, prefix] = text.trim().split('/');
  const network = parseAddress(address);
  if (!network) throw new Error(`not an IP network: ${text}`);
  const isV4 = !address.includes(':');
  const maxBits = isV4 ? 32 : 128;
  const bits = prefix === undefined ? maxBits : Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > maxBits) throw new Error(`bad prefix length in ${text}`);
  return { network, prefixBits: isV4 ? bits + 96 : bits };
}

export function cidrContains(cidr: Cidr, address: Uint8Array): boolean {
  let bits = cidr.prefixBits;
  for (let index = 0; index < 16 && bits > 0; index++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((cidr.network[index] & mask) !== (address[index] & mask)) return false;
  }
  return true;
}

/**
 * Operator endpoints (ops, keys, dlq-*, metrics) answer only clients inside
 * `allowed` when it is not empty. The client is the first address in
 * `x-forwarded-for` (set by the Supabase platform's proxy), else `x-real-ip`.
 */
export function operatorNetworkOnly(allowed: readonly string[]) {
  const networks = allowed.map(parseCidr);
  return createMiddleware<AppEnv>(async function restrictToOperatorNetworks(c, next) {
    if (networks.length > 0) {
      const forwarded = c.req.header('x-forwarded-for')?.split(',')[0] ?? c.req.header('x-real-ip');
      const address = forwarded ? parseAddress(forwarded) : undefined;
      if (!address || !networks.some((network) => cidrContains(network, address))) {
        throw new HttpError('address_not_allowed', 'this endpoint is not reachable from your network');
      }
    }
    await next();
  });
}
