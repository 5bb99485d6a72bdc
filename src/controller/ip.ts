// Prefix arithmetic the controller needs: "is this prefix inside that one".
// Config hands us canonical text ("10.65.1.0/26", "fd00:10::/122"); we turn it
// into a bigint once per prefix and compare bits. Kept local (not in config/)
// because it is the controller's only use; ip-address does the IPv6 parsing.
import { Address6 } from 'ip-address';

export type Family = 4 | 6;

export interface Net {
  family: Family;
  /** the network address as an integer */
  bits: bigint;
  length: number;
}

function v4ToBig(addr: string): bigint {
  const p = addr.split('.');
  if (p.length !== 4) throw new Error(`not an IPv4 address: "${addr}"`);
  let n = 0;
  for (const o of p) n = n * 256 + Number(o);
  return BigInt(n);
}

function v6ToBig(addr: string): bigint {
  return BigInt(`0x${new Address6(addr).canonicalForm().replace(/:/g, '')}`);
}

/** "a.b.c.d/len" or "x::y/len" (host bits are cleared). */
export function parseNet(cidr: string): Net {
  const slash = cidr.indexOf('/');
  const addr = slash < 0 ? cidr : cidr.slice(0, slash);
  const family: Family = addr.includes(':') ? 6 : 4;
  const width = family === 4 ? 32 : 128;
  const length = slash < 0 ? width : Number(cidr.slice(slash + 1));
  const raw = family === 4 ? v4ToBig(addr) : v6ToBig(addr);
  const host = width - length;
  const bits = (raw >> BigInt(host)) << BigInt(host);
  return { family, bits, length };
}

/** true when `inner` lies inside `outer` (equal counts): BIRD's `net ~ prefix`. */
export function netWithin(inner: Net, outer: Net): boolean {
  if (inner.family !== outer.family || inner.length < outer.length) return false;
  const width = inner.family === 4 ? 32 : 128;
  const shift = BigInt(width - outer.length);
  return (inner.bits >> shift) === (outer.bits >> shift);
}

/** The address of a Node's "address/len" BGP field (Calico peers with the address, the length is its subnet). */
export function stripLength(addressWithLength: string): string {
  const i = addressWithLength.indexOf('/');
  return i < 0 ? addressWithLength : addressWithLength.slice(0, i);
}

/** A sort order for prefixes: IPv4 before IPv6, then numerically by address, then shorter first. */
export function compareNets(a: Net, b: Net): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.bits !== b.bits) return a.bits < b.bits ? -1 : 1;
  return a.length - b.length;
}
