// Recursive next-hop resolution (RFC 4271 §9.1.2.1): a BGP next hop that is not on a connected subnet is reached
// through the route that covers it (the longest match), and a route using it is installed in the kernel via that
// route's gateway(s), not via the BGP next hop itself — the kernel refuses a gateway that no link route covers.
// This is what BIRD's `gateway recursive` does, which Calico's BIRD configuration asks for on every BGP session
// (projectcalico/calico node/filesystem/etc/calico/confd/templates/bird.cfg.template, its bgp_template).
//
// Pure data in, an answer out: the daemon gives the routes the host has without BGP (src/daemon/reachability.ts
// reads them from the kernel: connected, static, boot, DHCP/RA), never skein's own, so a next hop never resolves
// through the path it belongs to. The yes/no question (usable at all) stays with next-hop.ts, which is fed the same
// routes and so agrees: a next hop resolves here exactly when next-hop.ts finds a covering route.
import { isIpv4, parseIpv4, parseIpv6, parsePrefix4, parsePrefix6, prefix4Addr, prefix4Len, prefix6Bytes, prefix6Len } from '../wire/prefix.js';

/** One way out of a covering route: its gateway (absent on a link route), its device, the onlink flag. */
export interface ViaHop {
  readonly gateway?: string;
  readonly dev?: string;
  readonly onlink?: boolean;
}

/** A route the host has without BGP, as read from the kernel. */
export interface ResolvingRoute {
  /** prefix text ("10.0.0.0/8", "0.0.0.0/0", "fd00::/64"); an address alone is a host route */
  readonly dst: string;
  /** its next hops: one for an ordinary route, several for a multipath one; none or no gateway: a link route */
  readonly hops: readonly ViaHop[];
  /** kernel metric: among routes for the same prefix the lowest wins, as in the kernel's own lookup */
  readonly metric?: number;
}

interface Entry4 {
  readonly addr: number;
  readonly len: number;
  readonly metric: number;
  readonly hops: readonly ViaHop[];
}
interface Entry6 {
  readonly addr: Uint8Array;
  readonly len: number;
  readonly metric: number;
  readonly hops: readonly ViaHop[];
}

const CACHE_MAX = 4096;

/** Longest prefix first; among equal prefixes the lowest metric first (the kernel's choice). */
const order = (a: { len: number; metric: number }, b: { len: number; metric: number }): number => b.len - a.len || a.metric - b.metric;

function in4(a: number, addr: number, len: number): boolean {
  if (len === 0) return true;
  const shift = 32 - len;
  return a >>> shift === addr >>> shift;
}

function in6(a: Uint8Array, addr: Uint8Array, len: number): boolean {
  let bits = len;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const m = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((a[i] as number) & m) !== ((addr[i] as number) & m)) return false;
  }
  return true;
}

/** Into its place in a list sorted by `order`, after the entries that compare equal (as a stable sort puts it). */
function insertSorted<T extends { len: number; metric: number }>(list: T[], e: T): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (order(list[mid]!, e) <= 0) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, e);
}

interface ParsedDst {
  readonly v6: boolean;
  readonly addr: number | Uint8Array;
  readonly len: number;
}

/**
 * Destinations parsed, shared by the resolvers: the daemon builds a new one per view of the host's routes, and a view
 * differs from the last by a route or two (a workload's, beside Felix), so most texts were parsed before. Bounded:
 * cleared when full (the texts come from the host's kernel, not the network).
 */
const parsedDsts = new Map<string, ParsedDst | null>();

function parsedDst(dst: string): ParsedDst | null {
  const hit = parsedDsts.get(dst);
  if (hit !== undefined) return hit;
  let d: ParsedDst | null;
  try {
    if (dst.includes(':')) {
      const p = parsePrefix6(dst.includes('/') ? dst : `${dst}/128`);
      d = { v6: true, addr: prefix6Bytes(p), len: prefix6Len(p) };
    } else {
      const p = parsePrefix4(dst.includes('/') ? dst : `${dst}/32`);
      d = { v6: false, addr: prefix4Addr(p), len: prefix4Len(p) };
    }
  } catch {
    d = null;
  }
  if (parsedDsts.size >= CACHE_MAX) parsedDsts.clear();
  parsedDsts.set(dst, d);
  return d;
}

/**
 * Answers, per BGP next hop, how the kernel reaches it:
 * - null: no route covers it (unresolvable; next-hop.ts has already made such a path unusable);
 * - []: a link route covers it (connected subnet, or a device route): the next hop itself is the gateway;
 * - otherwise the covering route's gateways (with device and onlink flag): install the BGP route via them.
 */
export class NextHopResolver {
  readonly #v4: Entry4[] = [];
  readonly #v6: Entry6[] = [];
  readonly #cache = new Map<string, readonly ViaHop[] | null>();

  constructor(routes: readonly ResolvingRoute[]) {
    for (const r of routes) {
      const metric = r.metric ?? 0;
      const d = parsedDst(r.dst);
      if (d === null) continue; // a prefix that does not parse resolves nothing (the feed reports its own errors)
      if (d.v6) this.#v6.push({ addr: d.addr as Uint8Array, len: d.len, metric, hops: r.hops });
      else this.#v4.push({ addr: d.addr as number, len: d.len, metric, hops: r.hops });
    }
    this.#v4.sort(order);
    this.#v6.sort(order);
  }

  /**
   * A route came or went (beside Felix, a pod's): the resolver then answers as one built from the routes with it
   * added or taken out, without sorting them all again. A removed route is matched by destination, metric and hops.
   */
  add(r: ResolvingRoute): void {
    const d = parsedDst(r.dst);
    if (d === null) return;
    const metric = r.metric ?? 0;
    this.#cache.clear();
    if (d.v6) insertSorted(this.#v6, { addr: d.addr as Uint8Array, len: d.len, metric, hops: r.hops });
    else insertSorted(this.#v4, { addr: d.addr as number, len: d.len, metric, hops: r.hops });
  }

  remove(r: ResolvingRoute): void {
    const d = parsedDst(r.dst);
    if (d === null) return;
    const metric = r.metric ?? 0;
    const hops = JSON.stringify(r.hops);
    this.#cache.clear();
    if (d.v6) {
      const a = d.addr as Uint8Array;
      const i = this.#v6.findIndex((e) => e.len === d.len && e.metric === metric && e.addr.every((b, j) => b === a[j]) && JSON.stringify(e.hops) === hops);
      if (i >= 0) this.#v6.splice(i, 1);
    } else {
      const i = this.#v4.findIndex((e) => e.addr === d.addr && e.len === d.len && e.metric === metric && JSON.stringify(e.hops) === hops);
      if (i >= 0) this.#v4.splice(i, 1);
    }
  }

  /** How the kernel reaches `nextHop` (see the class comment). Cached per next hop, bounded. */
  resolve(nextHop: string): readonly ViaHop[] | null {
    const hit = this.#cache.get(nextHop);
    if (hit !== undefined || this.#cache.has(nextHop)) return hit ?? null;
    const v = this.#lookup(nextHop);
    if (this.#cache.size >= CACHE_MAX) this.#cache.clear();
    this.#cache.set(nextHop, v);
    return v;
  }

  #lookup(nextHop: string): readonly ViaHop[] | null {
    let hops: readonly ViaHop[] | undefined;
    try {
      if (isIpv4(nextHop)) {
        const a = parseIpv4(nextHop);
        hops = this.#v4.find((e) => in4(a, e.addr, e.len))?.hops;
      } else {
        const a = parseIpv6(nextHop);
        hops = this.#v6.find((e) => in6(a, e.addr, e.len))?.hops;
      }
    } catch {
      return null;
    }
    if (hops === undefined) return null;
    // A link route (no gateway anywhere): the next hop is on that link, and is its own gateway.
    if (!hops.some((h) => h.gateway !== undefined)) return [];
    // A multipath route mixing link hops and gateways: a link hop reaches the next hop directly on its device.
    return Object.freeze(hops.map((h) => (h.gateway !== undefined ? h : { gateway: nextHop, ...(h.dev !== undefined ? { dev: h.dev } : {}) })));
  }
}
