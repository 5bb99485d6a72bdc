// Prefix and address helpers shared by the codec and its JSON/CLI edges.
//
// A Prefix4 is `address * 64 + length` (types.ts): arithmetic, not bit ops,
// because the value needs 38 bits and JS bitwise operators truncate to 32.
// A Prefix6 is canonical RFC 5952 text with "/len", host bits cleared, so two
// equal prefixes always give the same string (a ready Map key).
//
// Parsers here are strict: they are used on text from config files, the CLI
// and the datastore, where a lenient parse would hide a typo.
import type { Prefix4, Prefix6 } from './types.js';

// ------------------------------------------------------------------ IPv4

/** Network mask for a prefix length 0..32, as an unsigned 32-bit number. */
export function mask4(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** Build a Prefix4; host bits beyond `len` are cleared so equal prefixes compare equal. */
export function prefix4(addr: number, len: number): Prefix4 {
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new RangeError(`IPv4 prefix length ${len} is not 0..32`);
  if (!Number.isInteger(addr) || addr < 0 || addr > 0xffffffff) throw new RangeError(`IPv4 address ${addr} is not a uint32`);
  return ((addr & mask4(len)) >>> 0) * 64 + len;
}

export const prefix4Addr = (p: Prefix4): number => Math.floor(p / 64);
export const prefix4Len = (p: Prefix4): number => p % 64;

export function ipv4ToString(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

export function prefix4ToString(p: Prefix4): string {
  return `${ipv4ToString(prefix4Addr(p))}/${prefix4Len(p)}`;
}

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Dotted-quad to uint32. Strict: exactly four decimal octets 0..255 and no
 * leading zeros (which some libc parsers read as octal: "010" would be 8).
 */
export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) throw new SyntaxError(`not an IPv4 address: ${JSON.stringify(text)}`);
  let a = 0;
  for (const part of parts) {
    if (!DEC_OCTET.test(part)) throw new SyntaxError(`not an IPv4 address: ${JSON.stringify(text)}`);
    const v = Number(part);
    if (v > 255) throw new SyntaxError(`IPv4 octet out of range in ${JSON.stringify(text)}`);
    a = a * 256 + v;
  }
  return a;
}

/** Is this text a valid dotted quad (the same rules as parseIpv4)? */
export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    return false;
  }
}

function splitLength(text: string, max: number, what: string): [string, number] {
  const slash = text.indexOf('/');
  if (slash < 0) throw new SyntaxError(`${what} prefix needs a /length: ${JSON.stringify(text)}`);
  const lenText = text.slice(slash + 1);
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(lenText)) throw new SyntaxError(`bad prefix length in ${JSON.stringify(text)}`);
  const len = Number(lenText);
  if (len > max) throw new SyntaxError(`${what} prefix length ${len} exceeds ${max} in ${JSON.stringify(text)}`);
  return [text.slice(0, slash), len];
}

/**
 * "10.0.0.0/24" to a Prefix4. Host bits set ("10.0.0.1/24") are cleared rather
 * than rejected, like `ip route` does, so config text maps to the routing key.
 */
export function parsePrefix4(text: string): Prefix4 {
  const [addr, len] = splitLength(text, 32, 'IPv4');
  return prefix4(parseIpv4(addr), len);
}

// ------------------------------------------------------------------ IPv6

const HEX = '0123456789abcdef';

/**
 * 16 bytes at `off` to RFC 5952 text: lower case (§4.3), no leading zeros in a
 * group (§4.1), the longest run of two or more zero groups shortened to "::",
 * the first such run on a tie (§4.2), and IPv4-mapped addresses written with a
 * dotted quad tail (§5).
 */
export function ipv6ToString(b: Uint8Array, off = 0): string {
  // find the longest run of zero 16-bit groups
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never shortened (§4.2.2)
  let runStart = -1;
  for (let g = 0; g < 8; g++) {
    const zero = b[off + 2 * g] === 0 && b[off + 2 * g + 1] === 0;
    if (zero) {
      if (runStart < 0) runStart = g;
      const runLen = g - runStart + 1;
      if (runLen > bestLen) {
        bestLen = runLen;
        bestStart = runStart;
      }
    } else {
      runStart = -1;
    }
  }
  // RFC 5952 §5: ::ffff:a.b.c.d for IPv4-mapped addresses
  if (bestStart === 0 && bestLen === 5 && b[off + 10] === 0xff && b[off + 11] === 0xff) {
    return `::ffff:${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  }
  let s = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      s += g === 0 ? '::' : ':';
      g += bestLen - 1;
      continue;
    }
    const v = ((b[off + 2 * g] as number) << 8) | (b[off + 2 * g + 1] as number);
    let h: string;
    if (v >= 0x1000) h = HEX[v >> 12]! + HEX[(v >> 8) & 15]! + HEX[(v >> 4) & 15]! + HEX[v & 15]!;
    else if (v >= 0x100) h = HEX[v >> 8]! + HEX[(v >> 4) & 15]! + HEX[v & 15]!;
    else if (v >= 0x10) h = HEX[v >> 4]! + HEX[v & 15]!;
    else h = HEX[v]!;
    s += g === 7 ? h : h + ':';
  }
  return s;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

const fastGroups = new Uint16Array(8);

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * The common case of parseIpv6 without allocating: hex groups and at most one
 * "::". Returns 1 when parsed, 0 when the text is invalid, 2 when it has a
 * dotted-quad tail (left to the general parser).
 */
function parseIpv6Fast(text: string, out: Uint8Array, off: number): 0 | 1 | 2 {
  const n = text.length;
  if (n < 2 || n > 39) return n > 39 && n <= 45 ? 2 : 0;
  let groups = 0;
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return 0; // a lone leading ':'
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let v = 0;
    let digits = 0;
    for (; i < n; i++) {
      const d = hexDigit(text.charCodeAt(i));
      if (d < 0) break;
      v = v * 16 + d;
      digits++;
    }
    if (i < n && text.charCodeAt(i) === 46) return 2; // '.': an IPv4 tail
    if (digits === 0 || digits > 4 || groups === 8) return 0;
    fastGroups[groups++] = v;
    if (i === n) break;
    if (text.charCodeAt(i) !== 58) return 0;
    i++;
    if (i < n && text.charCodeAt(i) === 58) {
      if (gap >= 0) return 0; // a second "::"
      gap = groups;
      i++;
    } else if (i === n) return 0; // a trailing single ':'
  }
  if (gap < 0 ? groups !== 8 : groups > 7) return 0;
  out.fill(0, off, off + 16);
  const tail = gap < 0 ? groups : gap;
  for (let g = 0; g < tail; g++) {
    out[off + 2 * g] = fastGroups[g]! >> 8;
    out[off + 2 * g + 1] = fastGroups[g]! & 255;
  }
  for (let g = tail, at = 8 - (groups - tail); g < groups; g++, at++) {
    out[off + 2 * at] = fastGroups[g]! >> 8;
    out[off + 2 * at + 1] = fastGroups[g]! & 255;
  }
  return 1;
}

/** Parse IPv6 text (RFC 4291 §2.2 forms, including a dotted-quad tail) into 16 bytes. Strict. */
export function parseIpv6(text: string, out: Uint8Array = Buffer.alloc(16), off = 0): Uint8Array {
  const fast = parseIpv6Fast(text, out, off);
  if (fast === 1) return out;
  const bad = (): never => {
    throw new SyntaxError(`not an IPv6 address: ${JSON.stringify(text)}`);
  };
  if (fast === 0 || text.length < 2 || text.length > 45) bad();
  const groups: number[] = [];
  let gap = -1;
  const halves = text.split('::');
  if (halves.length > 2) bad();
  const parseSide = (side: string, allowV4Tail: boolean): number[] => {
    if (side === '') return [];
    const parts = side.split(':');
    const res: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (allowV4Tail && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        res.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!HEX_GROUP.test(p)) bad();
        res.push(parseInt(p, 16));
      }
    }
    return res;
  };
  try {
    if (halves.length === 2) {
      const left = parseSide(halves[0]!, false);
      const right = parseSide(halves[1]!, true);
      if (left.length + right.length > 7) bad();
      groups.push(...left);
      gap = groups.length;
      groups.push(...right);
    } else {
      groups.push(...parseSide(halves[0]!, true));
      if (groups.length !== 8) bad();
    }
  } catch (e) {
    if (e instanceof SyntaxError && e.message.startsWith('not an IPv6')) throw e;
    bad();
  }
  const fill = 8 - groups.length;
  let g = 0;
  for (let i = 0; i < groups.length; i++) {
    if (i === gap) g += fill;
    out[off + 2 * g] = groups[i]! >> 8;
    out[off + 2 * g + 1] = groups[i]! & 255;
    g++;
  }
  // zero the "::" gap
  if (gap >= 0) for (let k = gap; k < gap + fill; k++) out[off + 2 * k] = out[off + 2 * k + 1] = 0;
  return out;
}

/** Normalise IPv6 text to RFC 5952 form (throws on bad input). */
export function canonicalIpv6(text: string): string {
  return ipv6ToString(parseIpv6(text));
}

/** Clear every bit past `len` in the 16 bytes at `off` (in place). */
export function clearHostBits6(b: Uint8Array, off: number, len: number): void {
  for (let i = 0; i < 16; i++) {
    const keep = len - i * 8;
    if (keep >= 8) continue;
    b[off + i] = keep <= 0 ? 0 : (b[off + i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
}

/** Bytes of an IPv6 prefix to a canonical Prefix6 (host bits cleared). `b` is modified. */
export function prefix6FromBytes(b: Uint8Array, len: number): Prefix6 {
  clearHostBits6(b, 0, len);
  return `${ipv6ToString(b, 0)}/${len}`;
}

/** "fd00:1::5/64" to canonical "fd00:1::/64". */
export function parsePrefix6(text: string): Prefix6 {
  const [addr, len] = splitLength(text, 128, 'IPv6');
  const b = parseIpv6(addr);
  return prefix6FromBytes(b, len);
}

export function prefix6Len(p: Prefix6): number {
  return Number(p.slice(p.lastIndexOf('/') + 1));
}

export function prefix6Addr(p: Prefix6): string {
  return p.slice(0, p.lastIndexOf('/'));
}

/** A Prefix6's address as 16 bytes (written into `out` when given). */
export function prefix6Bytes(p: Prefix6, out: Uint8Array = Buffer.alloc(16), off = 0): Uint8Array {
  return parseIpv6(prefix6Addr(p), out, off);
}

/** Is this text a valid IPv6 address? */
export function isIpv6(text: string): boolean {
  try {
    parseIpv6(text);
    return true;
  } catch {
    return false;
  }
}
