// src/'s one set of IP helpers (config/, bgp/ and fib/ keep their own: they import nothing of src/).
//   - Prefix arithmetic on text, for the controller: "is this prefix inside that one". Config hands us canonical
//     text ("10.65.1.0/26", "fd00:10::/122"); we turn it into a bigint once per prefix and compare bits;
//     ip-address does the IPv6 parsing.
//   - Addresses and prefixes as the FIB wants them (bytes), for the daemon, and their sort order.
import { isIP } from 'node:net';
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

// ----- addresses and prefixes as the FIB wants them (bytes) -----

/** Address text -> 4 or 16 bytes; undefined when it is not an address. */
export function addressBytes(text: string): Uint8Array | undefined {
  const fam = isIP(text);
  if (fam === 4) return Uint8Array.from(text.split('.').map(Number));
  if (fam !== 6) return undefined;
  // An embedded dotted quad (::ffff:10.0.0.1) becomes its two 16-bit words.
  const s = text.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`);
  const words = (x: string): number[] => (x === '' ? [] : x.split(':').map((w) => parseInt(w, 16)));
  const dbl = s.indexOf('::');
  const all = dbl < 0
    ? words(s)
    : ((h: number[], r: number[]): number[] => [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r])(words(s.slice(0, dbl)), words(s.slice(dbl + 2)));
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/** An IPv4 address as a 32-bit number (bgp/'s Prefix4 form) -> its 4 bytes, network order. */
export function ipv4Bytes(a: number): Uint8Array {
  return Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);
}

export interface PrefixBytes {
  family: 4 | 6;
  addr: Uint8Array;
  len: number;
}

/** "10.65.0.0/26" -> bytes; undefined when malformed. */
export function prefixBytes(text: string): PrefixBytes | undefined {
  const i = text.indexOf('/');
  const a = i < 0 ? text : text.slice(0, i);
  const addr = addressBytes(a);
  if (addr === undefined) return undefined;
  const max = addr.length * 8;
  const len = i < 0 ? max : Number(text.slice(i + 1));
  if (!Number.isInteger(len) || len < 0 || len > max) return undefined;
  return { family: addr.length === 4 ? 4 : 6, addr, len };
}

/**
 * Sorts prefix-keyed rows the way `ip route show` reads: IPv4 before IPv6, then by address, then shorter
 * prefixes first. Each key is parsed once; rows whose prefix does not parse go last, in their original order.
 */
export function sortByPrefix<T extends { readonly prefix: string }>(rows: T[]): T[] {
  const keyed = rows.map((row, i) => ({ row, i, p: prefixBytes(row.prefix) }));
  keyed.sort((x, y) => {
    if (x.p === undefined || y.p === undefined) return x.p === y.p ? x.i - y.i : x.p === undefined ? 1 : -1;
    if (x.p.family !== y.p.family) return x.p.family - y.p.family;
    const c = Buffer.compare(x.p.addr, y.p.addr);
    return c !== 0 ? c : x.p.len - y.p.len;
  });
  return keyed.map((k) => k.row);
}

/** The address bytes `a` lie inside the network `net`/`len` (of the same family). */
export function bytesWithin(a: Uint8Array, net: Uint8Array, len: number): boolean {
  for (let i = 0; i < a.length && len > 0; i++, len -= 8) {
    const m = len >= 8 ? 0xff : (0xff << (8 - len)) & 0xff;
    if (((a[i] as number) & m) !== ((net[i] as number) & m)) return false;
  }
  return true;
}
