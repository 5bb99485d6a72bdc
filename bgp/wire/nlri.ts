// NLRI encoding: RFC 4271 §4.3 (IPv4 Withdrawn Routes and NLRI fields), used
// unchanged inside MP_REACH_NLRI / MP_UNREACH_NLRI for IPv6 (RFC 4760 §5), and
// with a 4-octet Path Identifier in front of each prefix when ADD-PATH is
// negotiated for the family and direction (RFC 7911 §3).
//
// Each prefix is <length octet><the fewest octets holding `length` bits>.
// These are the hot loops of the codec: the IPv4 reader builds Prefix4 numbers
// straight from the bytes with no object per prefix, and the writers write into
// a buffer the caller already sized.
//
// Readers return undefined on success or a reason string; the caller decides
// the RFC 7606 action, which depends on which field the prefixes came from.
import { parseIpv6, prefix6FromBytes } from './prefix.js';
import type { Prefix4, Prefix6, PrefixList } from './types.js';

/** MASK4[len] = the IPv4 netmask for len 0..32 (unsigned). */
const MASK4: readonly number[] = Array.from({ length: 33 }, (_, len) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0));

/**
 * Read the IPv4 prefixes in buf[pos, end) (with a path id before each when
 * `addPath`). RFC 7606 §5.3: a length over 32 or a prefix running past the
 * field makes the field syntactically incorrect; the reason is returned.
 * Host bits beyond the length are cleared (RFC 4271 §4.3: "the value of
 * trailing bits is irrelevant").
 *
 * Two passes: the first checks the field and counts, so the second fills
 * arrays allocated at their final size (a growing array costs about three
 * times the memory per prefix).
 */
export function readPrefixes4(buf: Uint8Array, pos: number, end: number, addPath: boolean, safi = 1): PrefixList | string {
  let n = 0;
  for (let p = pos; p < end; n++) {
    if (addPath) {
      // RFC 7911 §3: Path Identifier (4 octets) then the usual prefix encoding
      if (p + 5 > end) return `ADD-PATH path identifier at offset ${p} runs past the end of the field`;
      p += 4;
    }
    const len = buf[p]!;
    if (len > 32) return `IPv4 prefix length ${len} exceeds 32`;
    const next = p + 1 + ((len + 7) >> 3);
    if (next > end) return `IPv4 prefix /${len} at offset ${p} runs past the end of the field`;
    p = next;
  }
  const out: Prefix4[] = n === 0 ? [] : new Array<number>(n);
  const ids: number[] | null = addPath ? (n === 0 ? [] : new Array<number>(n)) : null;
  for (let i = 0; i < n; i++) {
    if (ids !== null) {
      ids[i] = ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
      pos += 4;
    }
    const len = buf[pos]!;
    let a: number;
    switch ((len + 7) >> 3) {
      case 0:
        a = 0;
        break;
      case 1:
        a = buf[pos + 1]! << 24;
        break;
      case 2:
        a = (buf[pos + 1]! << 24) | (buf[pos + 2]! << 16);
        break;
      case 3:
        a = (buf[pos + 1]! << 24) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 8);
        break;
      default:
        a = (buf[pos + 1]! << 24) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 8) | buf[pos + 4]!;
    }
    out[i] = ((a & MASK4[len]!) >>> 0) * 64 + len;
    pos += 1 + ((len + 7) >> 3);
  }
  return { afi: 1, safi, prefixes: out, pathIds: ids };
}

/** Read IPv6 prefixes (RFC 4760 §5 layout, 128-bit addresses) into canonical Prefix6 text. */
export function readPrefixes6(buf: Uint8Array, pos: number, end: number, pathIds: number[] | null, out: Prefix6[]): string | undefined {
  const scratch = new Uint8Array(16);
  while (pos < end) {
    if (pathIds !== null) {
      if (pos + 5 > end) return `ADD-PATH path identifier at offset ${pos} runs past the end of the field`;
      pathIds.push(((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0);
      pos += 4;
    }
    const len = buf[pos]!;
    if (len > 128) return `IPv6 prefix length ${len} exceeds 128`;
    const n = (len + 7) >> 3;
    if (pos + 1 + n > end) return `IPv6 prefix /${len} at offset ${pos} runs past the end of the field`;
    scratch.fill(0);
    for (let i = 0; i < n; i++) scratch[i] = buf[pos + 1 + i]!;
    out.push(prefix6FromBytes(scratch, len));
    pos += 1 + n;
  }
  return undefined;
}

/** Octets one IPv4 prefix takes on the wire (without a path id). */
export function prefix4WireSize(p: Prefix4): number {
  return 1 + (((p % 64) + 7) >> 3);
}

/** Octets one IPv6 prefix takes on the wire (without a path id). */
export function prefix6WireSize(p: Prefix6): number {
  return 1 + ((prefix6LenFast(p) + 7) >> 3);
}

/** The length after the '/' of a Prefix6, read without slicing; -1 when malformed. */
function prefix6LenFast(p: Prefix6): number {
  let len = 0;
  let mul = 1;
  for (let i = p.length - 1; i >= 0 && mul <= 1000; i--) {
    const c = p.charCodeAt(i);
    if (c === 47) return mul === 1 || len > 128 ? -1 : len; // '/'
    if (c < 48 || c > 57) return -1;
    len += (c - 48) * mul;
    mul *= 10;
  }
  return -1;
}

/** Octets the prefixes [from, to) of a list take, path ids included when `addPath`. */
export function prefixListSize(list: PrefixList, addPath: boolean, from = 0, to = list.prefixes.length): number {
  let size = addPath ? 4 * (to - from) : 0;
  if (list.afi === 1) for (let i = from; i < to; i++) size += 1 + (((list.prefixes[i]! % 64) + 7) >> 3);
  else for (let i = from; i < to; i++) size += prefix6WireSize(list.prefixes[i]!);
  return size;
}

/** Write one IPv4 prefix at `off`; returns the offset after it. */
export function writePrefix4(buf: Uint8Array, off: number, p: Prefix4): number {
  const len = p % 64;
  const a = (p - len) / 64;
  buf[off++] = len;
  if (len > 0) buf[off++] = a >>> 24;
  if (len > 8) buf[off++] = (a >>> 16) & 255;
  if (len > 16) buf[off++] = (a >>> 8) & 255;
  if (len > 24) buf[off++] = a & 255;
  return off;
}

const scratch6 = new Uint8Array(16);

/** Write one IPv6 prefix at `off`; returns the offset after it. */
export function writePrefix6(buf: Uint8Array, off: number, p: Prefix6): number {
  const len = prefix6LenFast(p);
  if (len < 0) throw new RangeError(`bad IPv6 prefix ${JSON.stringify(p)}`);
  const slash = p.lastIndexOf('/');
  parseIpv6(p.slice(0, slash), scratch6, 0);
  buf[off++] = len;
  const n = (len + 7) >> 3;
  for (let i = 0; i < n; i++) buf[off++] = scratch6[i]!;
  // RFC 4271 §4.3: trailing bits are irrelevant; send zeros
  if (len % 8 !== 0) buf[off - 1] = buf[off - 1]! & ((0xff << (8 - (len % 8))) & 0xff);
  return off;
}

function writePathId(buf: Uint8Array, off: number, id: number): void {
  buf[off] = id >>> 24;
  buf[off + 1] = (id >>> 16) & 255;
  buf[off + 2] = (id >>> 8) & 255;
  buf[off + 3] = id & 255;
}

/**
 * Write prefixes [from, to) of a list at `off`; returns the offset after them.
 * With `addPath` each prefix gets its path id (RFC 7911 §3), 0 when the list
 * carries none.
 */
export function writePrefixes(buf: Uint8Array, off: number, list: PrefixList, addPath: boolean, from = 0, to = list.prefixes.length): number {
  const ids = list.pathIds;
  if (list.afi === 1) {
    const ps = list.prefixes;
    for (let i = from; i < to; i++) {
      if (addPath) {
        writePathId(buf, off, ids === null ? 0 : (ids[i] ?? 0));
        off += 4;
      }
      off = writePrefix4(buf, off, ps[i]!);
    }
  } else {
    const ps = list.prefixes;
    for (let i = from; i < to; i++) {
      if (addPath) {
        writePathId(buf, off, ids === null ? 0 : (ids[i] ?? 0));
        off += 4;
      }
      off = writePrefix6(buf, off, ps[i]!);
    }
  }
  return off;
}

/** An empty list of a family. */
export function emptyList(afi: 1 | 2, safi = 1): PrefixList {
  return afi === 1 ? { afi: 1, safi, prefixes: [], pathIds: null } : { afi: 2, safi, prefixes: [], pathIds: null };
}
