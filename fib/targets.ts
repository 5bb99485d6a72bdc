// Next-hop sets ("targets"), validated and interned: a million prefixes over a
// handful of next-hop sets share a handful of Spec objects, and each Spec
// caches its encoded netlink attributes for the current interface table.
import { type EncodedHops, type RouteScan, type WireHop, encodeHops } from './codec.js';
import { RTNH_F_ONLINK, RTN_BLACKHOLE, RTN_UNICAST } from './constants.js';
import type { Family, KernelRoute, NextHop, Target } from './types.js';

export class FibInputError extends Error {
  readonly code = 'EINVAL';
  constructor(message: string) {
    super(message);
    this.name = 'FibInputError';
  }
}

export interface SpecHop {
  readonly gateway: Uint8Array | undefined;
  readonly ifindex: number;
  readonly dev: string | undefined;
  readonly onlink: boolean;
  readonly weight: number;
}

/** An interned, validated target for one family. */
export interface Spec {
  readonly key: string;
  readonly family: Family;
  readonly blackhole: boolean;
  readonly hops: readonly SpecHop[];
  /** the caller's object, for views */
  readonly target: Target;
  refs: number;
  /** encoding cache, valid while linkGen matches */
  enc: EncodedHops | undefined;
  encGen: number;
  /** name of a device that does not exist, for the same linkGen */
  missingDev: string | undefined;
  /** nexthop object cache (nexthops.ts): the group id (0: plain route), valid for these generations */
  nhId: number;
  nhGen: number;
  nhLinkGen: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

export class SpecTable {
  readonly #byValue = new Map<string, Spec>();
  readonly #byObject = [new WeakMap<Target, Spec>(), new WeakMap<Target, Spec>()];

  get size(): number {
    return this.#byValue.size;
  }

  /** Validate and intern `target` for `family`; the returned Spec's refs is NOT incremented (see acquire). */
  intern(family: Family, target: Target): Spec {
    const cache = this.#byObject[family === 4 ? 0 : 1]!;
    const hit = cache.get(target);
    if (hit !== undefined) {
      if (hit.refs === 0 && !this.#byValue.has(hit.key)) this.#byValue.set(hit.key, hit);
      return hit;
    }
    const spec = this.#build(family, target);
    const existing = this.#byValue.get(spec.key);
    const chosen = existing ?? spec;
    if (existing === undefined) this.#byValue.set(spec.key, spec);
    cache.set(target, chosen);
    return chosen;
  }

  acquire(s: Spec): void {
    s.refs++;
  }

  release(s: Spec): void {
    if (--s.refs <= 0) {
      s.refs = 0;
      if (this.#byValue.get(s.key) === s) this.#byValue.delete(s.key);
    }
  }

  #build(family: Family, target: Target): Spec {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the library's input check: a caller in plain JS can pass anything
    if (target === null || typeof target !== 'object') throw new FibInputError('target must be an object');
    if (target.blackhole === true) {
      return { key: `${family}|bh`, family, blackhole: true, hops: [], target, refs: 0, enc: undefined, encGen: -1, missingDev: undefined, nhId: 0, nhGen: -1, nhLinkGen: -1 };
    }
    const hops = target.hops;
    if (!Array.isArray(hops) || hops.length === 0) throw new FibInputError('target needs at least one next hop or blackhole: true');
    if (hops.length > 256) throw new FibInputError('at most 256 next hops');
    const alen = family === 4 ? 4 : 16;
    const norm: SpecHop[] = hops.map((h: NextHop, i: number) => {
      const gw = h.gateway;
      if (gw !== undefined && (!(gw instanceof Uint8Array) || gw.length !== alen)) {
        throw new FibInputError(`next hop ${i}: gateway must be ${alen} bytes for an IPv${family} route`);
      }
      if (h.ifindex !== undefined && (!Number.isInteger(h.ifindex) || h.ifindex <= 0 || h.ifindex > 0x7fffffff)) {
        throw new FibInputError(`next hop ${i}: ifindex must be a positive integer`);
      }
      if (h.dev !== undefined && (typeof h.dev !== 'string' || h.dev.length === 0 || h.dev.length > 15)) {
        throw new FibInputError(`next hop ${i}: dev must be an interface name of 1-15 characters`);
      }
      if (gw === undefined && h.ifindex === undefined && h.dev === undefined) {
        throw new FibInputError(`next hop ${i}: needs a gateway, an ifindex or a dev`);
      }
      const weight = h.weight ?? 1;
      if (!Number.isInteger(weight) || weight < 1 || weight > 256) throw new FibInputError(`next hop ${i}: weight must be 1..256`);
      if (h.onlink && (h.ifindex === undefined && h.dev === undefined)) throw new FibInputError(`next hop ${i}: onlink needs a device`);
      return {
        gateway: gw === undefined ? undefined : Uint8Array.from(gw),
        ifindex: h.dev === undefined ? (h.ifindex ?? 0) : 0,
        dev: h.dev,
        onlink: h.onlink === true && gw !== undefined,
        weight: hops.length === 1 ? 1 : weight,
      };
    });
    const keys = norm.map((h) => `${h.gateway ? hex(h.gateway) : '-'},${h.ifindex},${h.dev ?? ''},${h.onlink ? 1 : 0},${h.weight}`);
    keys.sort();
    for (let i = 1; i < keys.length; i++) if (keys[i] === keys[i - 1]) throw new FibInputError('duplicate next hop');
    return { key: `${family}|${keys.join(';')}`, family, blackhole: false, hops: norm, target, refs: 0, enc: undefined, encGen: -1, missingDev: undefined, nhId: 0, nhGen: -1, nhLinkGen: -1 };
  }
}

/** Resolve a hop's interface: ifindex, or the current index of its dev name (0 when missing). */
export function hopIfindex(h: SpecHop, byName: ReadonlyMap<string, number>): number {
  return h.dev === undefined ? h.ifindex : (byName.get(h.dev) ?? 0);
}

/** The encoded attributes of `spec` for the interface table generation `gen`; undefined when a dev is missing. */
export function encodeSpec(spec: Spec, gen: number, byName: ReadonlyMap<string, number>): EncodedHops | undefined {
  if (spec.encGen === gen) return spec.enc;
  spec.encGen = gen;
  spec.missingDev = undefined;
  spec.enc = undefined;
  if (spec.blackhole) return undefined;
  const wire: WireHop[] = [];
  for (const h of spec.hops) {
    const ifindex = hopIfindex(h, byName);
    if (h.dev !== undefined && ifindex === 0) {
      spec.missingDev = h.dev;
      return undefined;
    }
    wire.push({ gateway: h.gateway, ifindex, onlink: h.onlink, weight: h.weight });
  }
  spec.enc = encodeHops(wire);
  return spec.enc;
}

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean => {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

/** Does the kernel's route carry exactly what `spec` asks for? */
export function specMatches(spec: Spec, k: Pick<KernelRoute, 'type' | 'hops'>, byName: ReadonlyMap<string, number>): boolean {
  if (spec.blackhole) return k.type === RTN_BLACKHOLE;
  if (k.type !== RTN_UNICAST || k.hops.length !== spec.hops.length) return false;
  if (spec.hops.length === 1) {
    // the common case: no bookkeeping of which kernel hop is taken
    const h = spec.hops[0]!, kh = k.hops[0]!;
    const idx = hopIfindex(h, byName);
    if (h.dev !== undefined && idx === 0) return false;
    return sameBytes(h.gateway, kh.gateway) && (idx === 0 || kh.ifindex === idx) && h.onlink === kh.onlink;
  }
  const used = new Array<boolean>(k.hops.length).fill(false);
  for (const h of spec.hops) {
    const idx = hopIfindex(h, byName);
    if (h.dev !== undefined && idx === 0) return false;
    let found = false;
    for (let j = 0; j < k.hops.length; j++) {
      const kh = k.hops[j]!;
      if (used[j] || !sameBytes(h.gateway, kh.gateway)) continue;
      if (idx !== 0 && kh.ifindex !== idx) continue;
      if (h.onlink !== kh.onlink || h.weight !== kh.weight) continue;
      used[j] = true;
      found = true;
      break;
    }
    if (!found) return false;
  }
  return true;
}

/** The kernel route that installing `spec` produces, as far as fib/ can tell without asking. */
export function kernelRouteOf(
  spec: Spec, family: Family, addr: Uint8Array, len: number, table: number, metric: number, protocol: number,
  byName: ReadonlyMap<string, number>,
): KernelRoute {
  const enc = spec.enc;
  return {
    family, addr, len, table, metric, protocol,
    type: spec.blackhole ? RTN_BLACKHOLE : RTN_UNICAST,
    scope: enc?.scope ?? 0,
    hops: spec.hops.map((h) => {
      const ifindex = hopIfindex(h, byName);
      return { gateway: h.gateway, ifindex, onlink: h.onlink, weight: h.weight, dead: false };
    }),
  };
}

/** specMatches for a scanned (not parsed) kernel route; false means "parse it and look properly". */
export function fastMatch(spec: Spec, b: Buffer, sc: RouteScan, byName: ReadonlyMap<string, number>): boolean {
  if (spec.blackhole) return sc.type === RTN_BLACKHOLE;
  if (sc.type !== RTN_UNICAST || sc.multipath || spec.hops.length !== 1) return false;
  const h = spec.hops[0]!;
  const idx = hopIfindex(h, byName);
  if (h.dev !== undefined && idx === 0) return false;
  if (idx !== 0 && sc.oif !== idx) return false;
  if (h.onlink !== ((sc.rtmFlags & RTNH_F_ONLINK) !== 0)) return false;
  const gw = h.gateway;
  if (gw === undefined) return sc.gwOff === 0;
  if (sc.gwOff === 0) return false;
  for (let i = 0; i < gw.length; i++) if (b[sc.gwOff + i] !== gw[i]) return false;
  return true;
}
