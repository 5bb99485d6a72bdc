// Value syntaxes shared by skein.yaml and Calico's resources: AS numbers,
// Go durations, IP addresses and CIDRs, BGP communities. Each parser returns
// the value or throws a ValueError whose message says what was expected; the
// caller adds the location (file/line or etcd key, and the field).
import { Address4, Address6 } from 'ip-address';

export class ValueError extends Error {
  override name = 'ValueError';
}

/** Largest 4-octet AS number (RFC 6793). */
export const MAX_ASN = 4294967295;

/**
 * An AS number as Calico accepts it (numorstring.ASNumber): a JSON number, a
 * decimal string, or asdot notation "high.low" (RFC 5396), e.g. "1.10" = 65546.
 * AS 0 is rejected: RFC 7607 forbids it in OPEN and AS_PATH.
 */
export function parseASNumber(v: unknown): number {
  let n: number;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new ValueError(`AS number must be an integer, got ${v}`);
    n = v;
  } else if (typeof v === 'string') {
    const s = v.trim();
    const dot = /^(\d{1,5})\.(\d{1,5})$/.exec(s);
    if (dot) {
      const hi = Number(dot[1]);
      const lo = Number(dot[2]);
      if (hi > 65535 || lo > 65535) throw new ValueError(`asdot AS number "${v}": each half must be 0-65535`);
      n = hi * 65536 + lo;
    } else if (/^\d{1,10}$/.test(s)) {
      n = Number(s);
    } else {
      throw new ValueError(`expected an AS number (e.g. 64512, "64512" or asdot "1.10"), got "${v}"`);
    }
  } else {
    throw new ValueError(`expected an AS number, got ${describe(v)}`);
  }
  if (n < 1 || n > MAX_ASN) throw new ValueError(`AS number ${n} out of range 1-${MAX_ASN} (AS 0 is reserved, RFC 7607)`);
  return n;
}

/** Print an AS number in asplain (RFC 5396 §1). */
export const formatASNumber = (n: number): string => String(n);

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};

/**
 * A Go time.Duration string as metav1.Duration serialises it ("120s", "1m30s",
 * "1.5h", "300ms", "0"), returned in milliseconds. Negative durations are
 * rejected: every duration skein reads is a timer.
 */
export function parseDuration(v: unknown): number {
  if (typeof v !== 'string') throw new ValueError(`expected a duration string such as "120s" or "1m30s", got ${describe(v)}`);
  const s = v.trim();
  if (s === '0') return 0;
  if (s.startsWith('-')) throw new ValueError(`duration "${v}" must not be negative`);
  const body = s.startsWith('+') ? s.slice(1) : s;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const m = re.exec(body);
    if (!m) {
      throw new ValueError(`invalid duration "${v}": expected a number and a unit (ns, us, ms, s, m, h) at "${body.slice(pos)}"`);
    }
    total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
    pos = re.lastIndex;
  }
  if (body.length === 0) throw new ValueError('empty duration');
  return total;
}

/** Print milliseconds as a Go duration string ("1m30s", "250ms"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let out = '';
  let rest = ms;
  const h = Math.floor(rest / 3_600_000);
  if (h) { out += `${h}h`; rest -= h * 3_600_000; }
  const m = Math.floor(rest / 60_000);
  if (m) { out += `${m}m`; rest -= m * 60_000; }
  if (rest) out += rest % 1000 === 0 ? `${rest / 1000}s` : `${Number((rest / 1000).toFixed(9))}s`;
  return out;
}

export type Family = 4 | 6;

// A dotted quad already in canonical form (no leading zeros, each octet 0-255): what Calico writes, so by far the
// common case. It is read without ip-address, whose parse (run several times per value) was most of the cost of
// validating a WorkloadEndpoint; anything else goes through ip-address as before.
const CANONICAL_V4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** The address as a 32-bit number when it is a canonical dotted quad, else undefined. */
function canonicalV4(s: string): number | undefined {
  const m = CANONICAL_V4.exec(s);
  if (m === null) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

const v4Text = (n: number): string => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** One IP address, normalised (IPv6 compressed, lower case). */
export function parseIP(v: unknown): { address: string; family: Family } {
  if (typeof v !== 'string') throw new ValueError(`expected an IP address, got ${describe(v)}`);
  const s = v.trim();
  if (canonicalV4(s) !== undefined) return { address: s, family: 4 };
  if (!s.includes('/')) {
    if (Address4.isValid(s)) return { address: new Address4(s).correctForm(), family: 4 };
    if (s.includes(':') && Address6.isValid(s)) return { address: new Address6(s).correctForm(), family: 6 };
  }
  throw new ValueError(`expected an IP address (e.g. 192.0.2.1 or fd00::1), got "${v}"`);
}

export interface Prefix {
  /** the address as written (host bits kept), normalised */
  address: string;
  /** the network address (host bits cleared) */
  network: string;
  length: number;
  family: Family;
}

/** "address/length" with host bits allowed (Node.spec.bgp.ipv4Address is the node's own address plus its subnet). */
export function parseIPWithPrefix(v: unknown): Prefix {
  if (typeof v !== 'string') throw new ValueError(`expected an address with prefix length (e.g. 192.0.2.10/24), got ${describe(v)}`);
  const s = v.trim();
  const slash = s.indexOf('/');
  if (slash < 0) throw new ValueError(`expected an address with prefix length (e.g. 192.0.2.10/24), got "${v}"`);
  const addr = s.slice(0, slash);
  const lenText = s.slice(slash + 1);
  const { family } = parseIP(addr);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new ValueError(`prefix length in "${v}" must be 0-${max}`);
  }
  const length = Number(lenText);
  const n = family === 4 ? canonicalV4(addr) : undefined;
  if (n !== undefined) {
    const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
    return { address: addr, network: v4Text((n & mask) >>> 0), length, family };
  }
  if (family === 4) {
    const a = new Address4(`${addr}/${length}`);
    return { address: new Address4(addr).correctForm(), network: a.startAddress().correctForm(), length, family };
  }
  const a = new Address6(`${addr}/${length}`);
  return { address: new Address6(addr).correctForm(), network: a.startAddress().correctForm(), length, family };
}

/** A CIDR, returned normalised with host bits cleared ("10.65.0.7/26" -> "10.65.0.0/26"). */
export function parseCIDR(v: unknown): string {
  const p = parseIPWithPrefix(v);
  return `${p.network}/${p.length}`;
}

export function cidrFamily(cidr: string): Family {
  return cidr.includes(':') ? 6 : 4;
}

/** Calico writes CIDRs inside etcd keys with "/" replaced by "-": 10.65.0.0-26, fd00::-122. */
export function cidrToKeyPart(cidr: string): string {
  return cidr.replace('/', '-');
}

export function keyPartToCidr(part: string): string {
  const i = part.lastIndexOf('-');
  if (i < 0) throw new ValueError(`"${part}" is not a CIDR with its "/" written as "-"`);
  return parseCIDR(`${part.slice(0, i)}/${part.slice(i + 1)}`);
}

/**
 * A BGP community as Calico writes it: "aa:nn" (RFC 1997, each half 0-65535)
 * or a large community "aa:nn:mm" (RFC 8092, each part 0-4294967295).
 */
export function parseCommunity(v: unknown): string {
  if (typeof v !== 'string') throw new ValueError(`expected a community "aa:nn" or "aa:nn:mm", got ${describe(v)}`);
  const parts = v.trim().split(':');
  if ((parts.length !== 2 && parts.length !== 3) || parts.some((p) => !/^\d{1,10}$/.test(p))) {
    throw new ValueError(`expected a community "aa:nn" (RFC 1997) or "aa:nn:mm" (RFC 8092), got "${v}"`);
  }
  const max = parts.length === 2 ? 65535 : MAX_ASN;
  for (const p of parts) {
    if (Number(p) > max) throw new ValueError(`community "${v}": ${p} is larger than ${max}`);
  }
  return parts.map((p) => String(Number(p))).join(':');
}

/** A short description of a value's type, for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string "${v}"`;
  return `${typeof v} ${String(v)}`;
}
