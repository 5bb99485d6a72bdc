// The kernel-facing half of the route table (src/daemon/routes.ts): prefix keys and their bytes, the interned
// next-hop sets of learned routes with the kernel targets computed from them, and how one change of a prefix's
// winner is handed to fib/'s Programmer. No table state lives here.
import { parsePrefixText, type PrefixKey } from '../../bgp/index.js';
import type { NextHop, Placement, Programmer, Target } from '../../fib/index.js';
import { addressBytes, ipv4Bytes, type PrefixBytes } from '../ip.js';

/** The next hops of a best path, interned: every prefix with the same next hops shares one. */
export interface HopSet {
  readonly nextHops: readonly string[];
  /**
   * The kernel metric of a learned route with these next hops when it wins its prefix: 2^31-1 minus its LOCAL_PREF,
   * as Calico's BIRD writes it (confd's SetMetricForBGPRoutes; src/controller/migration.ts kernelMetricOf);
   * undefined: the Programmer's default. Part of the interned key, so all ordinary mesh routes share one set.
   */
  readonly metric: number | undefined;
  /** kernel targets by family and decision, computed once per set (cleared when `own` changes) */
  t4?: Target | null;
  t6?: Target | null;
  tun?: Target | null;
}


export const BLACKHOLE: Target = { blackhole: true };
/** Bound on distinct next-hop sets kept (a cluster has a handful; a churning one must not grow without end). */
const MAX_HOP_SETS = 10_000;

export const addrOf = (k: number): number => Math.floor(k / 64);
export const lenOf = (k: number): number => k % 64;

/** The interned next-hop sets: every prefix with the same next hops (and metric) shares one. */
export class HopSetPool {
  #hopSets = new Map<string, HopSet>();
  /** the speaker hands the same frozen next-hop array for every prefix of one attribute set */
  #hopSetOf = new WeakMap<readonly string[], HopSet>();

  get(nextHops: readonly string[], metric?: number): HopSet {
    if (metric === 0) metric = undefined;
    let hs = this.#hopSetOf.get(nextHops);
    if (hs !== undefined && hs.metric === metric) return hs;
    const id = metric === undefined ? nextHops.join(',') : `${metric}|${nextHops.join(',')}`;
    hs = this.#hopSets.get(id);
    if (hs === undefined) {
      if (this.#hopSets.size >= MAX_HOP_SETS) {
        this.#hopSets = new Map();
        this.#hopSetOf = new WeakMap();
      }
      hs = { nextHops: Object.freeze([...nextHops]), metric };
      this.#hopSets.set(id, hs);
    }
    this.#hopSetOf.set(nextHops, hs);
    return hs;
  }

  values(): IterableIterator<HopSet> {
    return this.#hopSets.values();
  }

  /** Targets depend on the node's own addresses: computed again on next use. */
  forgetTargets(): void {
    for (const hs of this.#hopSets.values()) {
      delete hs.t4;
      delete hs.t6;
      delete hs.tun;
    }
  }
}

/**
 * The Programmer's placement of a route at kernel metric m, one frozen object per metric: every learned route carries
 * one (2^31-1 minus LOCAL_PREF, as Calico's confd sets it: route-priority.ts), and a cluster has a handful of
 * distinct ones, so a write allocates nothing for it (it was one object per set() and per remove(), two million at a
 * full table's announce and withdraw). The Programmer reads the placement and keeps nothing of it.
 */
const placements = new Map<number, Placement>();
export const placementAt = (m: number | undefined): Placement | undefined => {
  if (m === undefined) return undefined;
  let p = placements.get(m);
  if (p === undefined) {
    if (placements.size >= 1024) placements.clear(); // bounded: metrics come from LOCAL_PREF, which peers choose
    placements.set(m, (p = Object.freeze({ metric: m })));
  }
  return p;
};

/**
 * Hands the change of a prefix's winner from (before, bm) to (after, am) to the Programmer; a new metric is another
 * kernel route. scratch4: 4 bytes reused for an IPv4 prefix (the Programmer keeps numbers, not the array).
 */
export function writeToFib(fib: Programmer, k: PrefixKey, before: Target | undefined, bm: number | undefined, after: Target | undefined, am: number | undefined, scratch4: Uint8Array): void {
  let fam: 4 | 6 = 4, addr: Uint8Array, len: number;
  if (typeof k === 'number') {
    const a = addrOf(k);
    addr = scratch4;
    addr[0] = a >>> 24;
    addr[1] = (a >>> 16) & 255;
    addr[2] = (a >>> 8) & 255;
    addr[3] = a & 255;
    len = lenOf(k);
  } else {
    const p = bytesOf(k);
    if (p === undefined) return;
    fam = 6;
    addr = p.addr;
    len = p.len;
  }
  // the route at the old metric goes first
  if (before !== undefined && bm !== am) fib.remove(fam, addr, len, placementAt(bm));
  if (after !== undefined) fib.set(fam, addr, len, after, placementAt(am));
  else if (before !== undefined && bm === am) fib.remove(fam, addr, len, placementAt(am));
}

/** Two kernel targets of a learned route are the same (null: none; undefined: not computed). */
export function sameTarget(a: Target | null | undefined, b: Target | null | undefined): boolean {
  if (a === b) return true;
  if (a == null || b == null) return false;
  const ha = a.hops ?? [], hb = b.hops ?? [];
  if (ha.length !== hb.length || a.blackhole !== b.blackhole) return false;
  for (let i = 0; i < ha.length; i++) {
    const x = ha[i]!, y = hb[i]!;
    if (x.dev !== y.dev || x.onlink !== y.onlink || x.ifindex !== y.ifindex || x.weight !== y.weight) return false;
    if ((x.gateway === undefined) !== (y.gateway === undefined) || (x.gateway !== undefined && Buffer.compare(x.gateway, y.gateway!) !== 0)) return false;
  }
  return true;
}

/** Text -> the RIB's prefix key; undefined when it is not a prefix. */
export function keyOf(prefix: string): PrefixKey | undefined {
  try {
    return parsePrefixText(prefix.includes('/') ? prefix : `${prefix}/${prefix.includes(':') ? 128 : 32}`);
  } catch {
    return undefined;
  }
}

export function bytesOf(k: PrefixKey): PrefixBytes | undefined {
  if (typeof k === 'number') {
    const a = addrOf(k);
    return { family: 4, addr: ipv4Bytes(a), len: lenOf(k) };
  }
  const i = k.lastIndexOf('/');
  const addr = addressBytes(k.slice(0, i));
  return addr === undefined ? undefined : { family: 6, addr, len: Number(k.slice(i + 1)) };
}

/** confd's `krt_tunnel = "tunl0"`: the route goes through the IPIP device, onlink to the peer's address. */
export function tunnelTarget(nextHops: readonly string[], own: ReadonlySet<string>): Target | undefined {
  const hops: NextHop[] = [];
  for (const nh of nextHops) {
    const b = addressBytes(nh);
    if (b === undefined || b.length !== 4 || own.has(nh)) continue;
    hops.push({ gateway: b, dev: 'tunl0', onlink: true });
  }
  return hops.length > 0 ? { hops } : undefined;
}
