// Next-hop validity and reachability: decides whether a received path can be used at all, before the decision
// process ranks it. Pure data in, a verdict out; the daemon feeds what the host can reach (reachability), the RIB
// asks per attribute set (every path sharing a set shares its next hops, so one answer covers them all).
//
// RFC 4271 §6.3: a semantically incorrect NEXT_HOP (our own address, or an address that cannot be a host: the
//   unspecified, loopback, multicast and reserved ranges) is logged and the route ignored — no NOTIFICATION, the
//   session stays up.
// RFC 4271 §9.1.2: a route whose NEXT_HOP is not resolvable, or would become unresolvable if the route were
//   installed (it resolves only through itself), is excluded from the decision.
// RFC 2545 §3: the first (or only) IPv6 next hop is the global address; a link-local one alone cannot be used
//   without knowing the interface, which skein's FIB is not told.
// skein keeps such paths in Adj-RIB-In, marked unusable with the reason (skeinctl routes shows it): they are never
// best, never installed and never advertised, and become usable by themselves when the host learns a route.
import type { ResolvingRoute } from './nexthop-resolve.js';
import { ipv4ToString, isIpv4, parseIpv4, parseIpv6, parsePrefix4, parsePrefix6, prefix4Addr, prefix4Len, prefix6Bytes, prefix6Len } from '../wire/prefix.js';

export type NextHopProblem = 'martian' | 'own-address' | 'link-local-only' | 'unresolvable' | 'recursive-loop' | 'invalid';

/** Why a path cannot be used: a stable code for programs and a sentence for people. Shared, frozen. */
export interface NextHopVerdict {
  readonly code: NextHopProblem;
  readonly text: string;
}

/** What the host can reach, as the daemon reads it from the kernel. */
export interface Reachability {
  /** this host's own addresses (a next hop equal to one is semantically incorrect, RFC 4271 §6.3) */
  readonly addresses: readonly string[];
  /**
   * prefixes the host reaches without BGP: connected (link) routes and routes of other origins; routes skein
   * installed itself must not be given, or a next hop could resolve through the very path it belongs to
   */
  readonly routes: readonly string[];
  /**
   * the same routes with their gateways, for recursive resolution (nexthop-resolve.ts): how the kernel reaches a
   * next hop that is not on a connected subnet; absent: every resolvable next hop is taken as directly reachable
   */
  readonly resolving?: readonly ResolvingRoute[];
}

interface Net4 {
  readonly addr: number;
  readonly len: number;
}
interface Net6 {
  readonly addr: Uint8Array;
  readonly len: number;
}

/** A route text of a view as the table keeps it: its prefix key (IPv4's number as text) and its network. */
interface ParsedRoute {
  readonly key: string;
  readonly net4?: Net4;
  readonly net6?: Net6;
}

/** "10.0.0.0/24", "10.0.0.5" (a host route), "fd00::/64": null when it is not a prefix. */
function parseRouteText(text: string): ParsedRoute | null {
  try {
    if (text.includes(':')) {
      const p = parsePrefix6(text.includes('/') ? text : `${text}/128`);
      return { key: p, net6: { addr: prefix6Bytes(p), len: prefix6Len(p) } };
    }
    const p = parsePrefix4(text.includes('/') ? text : `${text}/32`);
    return { key: `${p}`, net4: { addr: prefix4Addr(p), len: prefix4Len(p) } };
  } catch {
    // a prefix we cannot parse resolves nothing; the feed reports its own errors
    return null;
  }
}

/** Longest first: not needed for a yes/no answer, but the specific routes are the likely ones. */
const byLen = <T extends { len: number }>(a: T, b: T): number => b.len - a.len;

function in4(a: number, n: Net4): boolean {
  if (n.len === 0) return true;
  const shift = 32 - n.len;
  return a >>> shift === n.addr >>> shift;
}

function in6(a: Uint8Array, n: Net6): boolean {
  let bits = n.len;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const m = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((a[i] as number) & m) !== ((n.addr[i] as number) & m)) return false;
  }
  return true;
}

const CACHE_MAX = 4096;

/**
 * The check the RIB runs per attribute set. Without reachability (never fed, as in a library use or a test without a
 * kernel) only the address checks apply and every well-formed next hop counts as resolvable.
 */
export class NextHopTable {
  private own = new Set<string>();
  /** addresses configured as our end of sessions: always ours, whatever the feed says */
  private readonly sessionOwn = new Set<string>();
  private nets4: Net4[] | null = null;
  private nets6: Net6[] | null = null;
  /**
   * the routes of the view, as prefix keys (IPv4's number as text), to tell what the next view changes; each with
   * the number of its texts ("10.0.0.5" and "10.0.0.5/32" are one prefix)
   */
  private routeKeys = new Map<string, number>();
  /** the last view's route texts, parsed (null: not a prefix) */
  private parsed = new Map<string, ParsedRoute | null>();
  /** verdict per next-hop text; cleared when the inputs change, and bounded (next hops come from the network) */
  private readonly cache = new Map<string, NextHopVerdict | null>();

  /** true once reachability was given: resolution is then checked */
  get resolving(): boolean {
    return this.nets4 !== null;
  }

  /**
   * New reachability. Returns which next hops the change concerns, for RibCore.recheckNextHops to re-judge only
   * their attribute sets: a next hop's verdict depends on the routes and addresses only through whether one of the
   * routes covers it and whether it is one of the addresses, so it can change only when a route added or removed
   * covers it, or it is an address added or removed. null: every next hop (the first view, or checking stops).
   */
  setReachability(r: Reachability | null): ((nextHop: string) => boolean) | null {
    this.cache.clear();
    const wasOwn = this.own;
    const wasRoutes = this.routeKeys;
    const wasResolving = this.resolving;
    if (r === null) {
      this.own = new Set();
      this.nets4 = this.nets6 = null;
      this.routeKeys = new Map();
      this.parsed = new Map();
      return null;
    }
    this.own = new Set(r.addresses.map(canonical).filter((x): x is string => x !== null));
    const n4: Net4[] = [];
    const n6: Net6[] = [];
    const keys = new Map<string, number>();
    // Each view differs from the last by a route or two (a workload's route, beside Felix), so the texts parsed for
    // the last view are kept and only new ones parsed; the map is rebuilt to the view, so it never outgrows it.
    const parsed = new Map<string, ParsedRoute | null>();
    for (const text of r.routes) {
      let p = this.parsed.get(text);
      if (p === undefined) p = parseRouteText(text);
      if (parsed.has(text)) continue;
      parsed.set(text, p);
      if (p === null) continue;
      const n = keys.get(p.key) ?? 0;
      keys.set(p.key, n + 1);
      if (n > 0) continue;
      if (p.net6 !== undefined) n6.push(p.net6);
      else if (p.net4 !== undefined) n4.push(p.net4);
    }
    this.parsed = parsed;
    this.nets4 = n4.sort(byLen);
    this.nets6 = n6.sort(byLen);
    this.routeKeys = keys;
    if (!wasResolving) return null;
    // what differs from the view before: routes that came or went, addresses that came or went
    const ch4: Net4[] = [];
    const ch6: Net6[] = [];
    const diff = (k: string): void => {
      if (k.includes(':')) ch6.push({ addr: prefix6Bytes(k), len: prefix6Len(k) });
      else ch4.push({ addr: prefix4Addr(Number(k)), len: prefix4Len(Number(k)) });
    };
    for (const k of keys.keys()) if (!wasRoutes.has(k)) diff(k);
    for (const k of wasRoutes.keys()) if (!keys.has(k)) diff(k);
    const addrs = new Set<string>();
    for (const a of this.own) if (!wasOwn.has(a)) addrs.add(a);
    for (const a of wasOwn) if (!this.own.has(a)) addrs.add(a);
    return concerns(ch4, ch6, addrs);
  }

  /**
   * A few routes came or went (texts as in Reachability.routes), the addresses as they were: what setReachability
   * would do with the last view less `removed` plus `added`, without walking the view (beside Felix every pod's route
   * is such a change, and a host may have hundreds). Returns which next hops it concerns, as setReachability does;
   * null when no view was given yet (nothing is checked then, and this changes nothing).
   */
  applyRoutes(added: readonly string[], removed: readonly string[]): ((nextHop: string) => boolean) | null {
    const n4 = this.nets4;
    const n6 = this.nets6;
    if (n4 === null || n6 === null) return null;
    this.cache.clear();
    const ch4: Net4[] = [];
    const ch6: Net6[] = [];
    for (const text of removed) {
      const p = this.parsed.get(text);
      if (p === undefined) continue; // not in the view
      this.parsed.delete(text);
      if (p === null) continue;
      const n = (this.routeKeys.get(p.key) ?? 1) - 1;
      if (n > 0) {
        this.routeKeys.set(p.key, n);
        continue;
      }
      this.routeKeys.delete(p.key);
      if (p.net6 !== undefined) {
        removeNet6(n6, p.net6);
        ch6.push(p.net6);
      } else if (p.net4 !== undefined) {
        removeNet4(n4, p.net4);
        ch4.push(p.net4);
      }
    }
    for (const text of added) {
      if (this.parsed.has(text)) continue; // in the view already
      const p = parseRouteText(text);
      this.parsed.set(text, p);
      if (p === null) continue;
      const n = this.routeKeys.get(p.key) ?? 0;
      this.routeKeys.set(p.key, n + 1);
      if (n > 0) continue;
      // at the end: the order (longest first) only makes a likely match come sooner, it decides nothing
      if (p.net6 !== undefined) {
        n6.push(p.net6);
        ch6.push(p.net6);
      } else if (p.net4 !== undefined) {
        n4.push(p.net4);
        ch4.push(p.net4);
      }
    }
    return concerns(ch4, ch6, new Set());
  }

  /** Our end of a session (PeerConfig.localAddress): a next hop equal to it is ours. */
  addSessionAddress(address: string | undefined): void {
    const c = address === undefined ? null : canonical(address);
    if (c === null || this.sessionOwn.has(c)) return;
    this.sessionOwn.add(c);
    this.cache.clear();
  }

  /** The verdict for a path's next hops (MP_REACH: global first, then link-local); null: usable. [] is ours. */
  check(nextHops: readonly string[]): NextHopVerdict | null {
    const first = nextHops[0];
    if (first === undefined) return null;
    const key = nextHops.length === 1 ? first : nextHops.join(',');
    const hit = this.cache.get(key);
    if (hit !== undefined || this.cache.has(key)) return hit ?? null;
    const v = this.judge(first, nextHops[1]);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(key, v);
    return v;
  }

  private judge(first: string, second: string | undefined): NextHopVerdict | null {
    if (isIpv4(first)) return this.judge4(first);
    let b: Uint8Array;
    try {
      b = parseIpv6(first);
    } catch {
      return verdict('invalid', `next hop ${first} is not an address`);
    }
    // RFC 2545 §3: the global address comes first. A link-local one there, or "::" followed by a link-local (what
    // unnumbered sessions send), leaves only an address that needs an interface skein does not know.
    if (isLinkLocal6(b) || (isZero(b) && second !== undefined && isLinkLocal6(parseIpv6(second)))) {
      return verdict('link-local-only', `next hop ${first}${second !== undefined ? ` (${second})` : ''} is link-local only; skein needs a global next hop (RFC 2545 §3)`);
    }
    if (isZero(b) || isLoopback6(b) || b[0] === 0xff || isMapped4(b)) {
      return verdict('martian', `next hop ${first} cannot be a router's address (unspecified, loopback, multicast or IPv4-mapped; RFC 4271 §6.3)`);
    }
    const c = canonical(first) as string;
    if (this.own.has(c) || this.sessionOwn.has(c)) return verdict('own-address', `next hop ${first} is this host's own address (RFC 4271 §6.3)`);
    const nets = this.nets6;
    if (nets !== null && !nets.some((n) => in6(b, n))) return unresolvable(first);
    return null;
  }

  private judge4(text: string): NextHopVerdict | null {
    const a = parseIpv4(text);
    const top = a >>> 24;
    // 0/8 (this network), 224/4 (multicast), 240/4 (reserved, and the broadcast address). 127/8 is left to the
    // resolution check: the daemon's feed has no route to it outside the host's own addresses (the local table),
    // while speakers in one host's loopback range (tests, the lab) do use it between themselves.
    if (top === 0 || top >= 224) {
      return verdict('martian', `next hop ${text} cannot be a router's address (this-network, multicast or reserved; RFC 4271 §6.3)`);
    }
    const c = ipv4ToString(a);
    if (this.own.has(c) || this.sessionOwn.has(c)) return verdict('own-address', `next hop ${text} is this host's own address (RFC 4271 §6.3)`);
    const nets = this.nets4;
    if (nets !== null && !nets.some((n) => in4(a, n))) return unresolvable(text);
    return null;
  }
}

/** Which next hops a change concerns: those a changed route covers, and the addresses that came or went. */
function concerns(ch4: readonly Net4[], ch6: readonly Net6[], addrs: ReadonlySet<string>): (nextHop: string) => boolean {
  return (nh) => {
    try {
      if (isIpv4(nh)) {
        const a = parseIpv4(nh);
        return ch4.some((n) => in4(a, n)) || (addrs.size > 0 && addrs.has(ipv4ToString(a)));
      }
      const b = parseIpv6(nh);
      return ch6.some((n) => in6(b, n)) || (addrs.size > 0 && addrs.has(canonical(nh) as string));
    } catch {
      return false; // not an address: 'invalid' whatever the host reaches
    }
  };
}

function removeNet4(nets: Net4[], n: Net4): void {
  const i = nets.findIndex((x) => x.addr === n.addr && x.len === n.len);
  if (i >= 0) nets.splice(i, 1);
}

function removeNet6(nets: Net6[], n: Net6): void {
  const i = nets.findIndex((x) => x.len === n.len && x.addr.every((b, j) => b === n.addr[j]));
  if (i >= 0) nets.splice(i, 1);
}

function verdict(code: NextHopProblem, text: string): NextHopVerdict {
  return Object.freeze({ code, text });
}

function unresolvable(nh: string): NextHopVerdict {
  return verdict('unresolvable', `next hop ${nh} is not resolvable: no connected or non-BGP route covers it (RFC 4271 §9.1.2)`);
}

function canonical(text: string): string | null {
  try {
    if (isIpv4(text)) return ipv4ToString(parseIpv4(text));
    const p = parsePrefix6(`${text}/128`);
    return p.slice(0, p.lastIndexOf('/'));
  } catch {
    return null;
  }
}

const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);
const isLinkLocal6 = (b: Uint8Array): boolean => b[0] === 0xfe && ((b[1] as number) & 0xc0) === 0x80;
const isLoopback6 = (b: Uint8Array): boolean => b[15] === 1 && b.subarray(0, 15).every((x) => x === 0);
const isMapped4 = (b: Uint8Array): boolean => b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
