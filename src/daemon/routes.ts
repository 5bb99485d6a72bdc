// What skeind wants in the kernel, merged from its three sources, and handed to fib/'s Programmer one prefix at a
// time. Per prefix the sources rank as Calico's BIRD ranks them (device routes to local workloads are kernel
// routes that BIRD never replaces; the static blackhole of an affine block has a higher preference than BGP):
//   local workload device route  >  blackhole of an affine block  >  BGP best path.
// While the ClusterInformation gate is closed, the table keeps track but writes nothing (CONTRACT: nothing is
// programmed until the datastore is ready); opening it writes the whole state.
// Learned routes pass the kernel policy first (src/controller/kernel.ts: Calico's kernel export filter for
// encapsulated pools, service ranges and WireGuard): rejected ones are kept here but not written, tunnelled ones go
// via tunl0 onlink.
//
// Representation (sized for a million learned routes, ARCHITECTURE "Representation where millions live"): a
// learned route is its prefix key as the RIB has it (an IPv4 prefix as numbers in fib/'s V4Index, an IPv6 one as
// its canonical text) mapping to an interned next-hop set shared by every prefix with the same next hops; nothing
// else is stored per prefix. Device routes and blackholes are a small override table beside it. What was handed
// to the Programmer is not stored at all: the Programmer holds the desired state (and ignores a set() that
// changes nothing), and a change is written only when the winning target before and after it differ.
// Best-path changes arrive in batches of up to hundreds of thousands (one per speaker flush); they are queued
// and applied in slices of ~10 ms, so the event loop keeps turning (keepalives, the control socket) meanwhile.
import { performance } from 'node:perf_hooks';
import { parsePrefixText, prefixText, type PrefixKey } from '../../bgp/index.js';
import { V4Index, type NextHop, type Programmer, type Target } from '../../fib/index.js';
import type { KernelDecision, KernelPolicy } from '../controller/index.js';
import { addressBytes, bgpTarget, type PrefixBytes } from './mapping.js';

export type RouteKind = 'device' | 'blackhole' | 'bgp';

export interface DesiredRoute {
  prefix: string;
  kind: RouteKind;
  target: Target;
  nextHops: string[];
  dev?: string;
}

/** What the route table reads of a best-path change (the speaker's BestEvent). */
export interface BestInput {
  /** the RIB's key; when absent, `prefix` is parsed */
  readonly key?: PrefixKey;
  readonly prefix: string;
  readonly attributes: unknown;
  readonly nextHops: readonly string[];
  readonly local: boolean;
}

/** The next hops of a best path, interned: every prefix with the same next hops shares one. */
interface HopSet {
  readonly nextHops: readonly string[];
  /** kernel targets by family and decision, computed once per set (cleared when `own` changes) */
  t4?: Target | null;
  t6?: Target | null;
  tun?: Target | null;
}

const BLACKHOLE: Target = { blackhole: true };
/** How long one slice of queued best-path changes may run before the loop gets a turn. */
const SLICE_MS = 10;
/** Bound on distinct next-hop sets kept (a cluster has a handful; a churning one must not grow without end). */
const MAX_HOP_SETS = 10_000;

const addrOf = (k: number): number => Math.floor(k / 64);
const lenOf = (k: number): number => k % 64;

export class RouteTable {
  readonly #fib: Programmer | undefined;
  /** learned routes: IPv4 by (address, length), IPv6 by canonical text */
  #bgp4 = new V4Index<HopSet>();
  #bgp6 = new Map<string, HopSet>();
  /** routes learned before markBgpStale() and not announced again since */
  #stale4: V4Index<HopSet> | undefined;
  #stale6: Map<string, HopSet> | undefined;
  /** overrides: device routes to local workloads and blackholes of affine blocks (a few per node) */
  readonly #device = new Map<PrefixKey, { dev: string; target: Target }>();
  readonly #blackhole = new Set<PrefixKey>();
  /** prefixes whose route went away while the gate was closed: removed from the kernel when it opens */
  readonly #gone = new Set<PrefixKey>();
  readonly #devTargets = new Map<string, Target>();
  #hopSets = new Map<string, HopSet>();
  /** the speaker hands the same frozen next-hop array for every prefix of one attribute set */
  #hopSetOf = new WeakMap<readonly string[], HopSet>();
  #open = false;
  #own: ReadonlySet<string> = new Set();
  #policy: KernelPolicy | undefined;
  /** queued best-path batches and the position in the first one */
  #queue: (readonly BestInput[])[] = [];
  #queuePos = 0;
  #queued = 0;
  #scheduled = false;
  #idleWaiters: (() => void)[] = [];
  /** 4 bytes handed to the Programmer for an IPv4 prefix (it keeps numbers, not the array) */
  readonly #scratch4 = new Uint8Array(4);

  readonly #sliceMs: number;

  /** sliceMs: how long one slice of queued best-path changes may run (default 10 ms; tests use 0: 256 a slice) */
  constructor(fib: Programmer | undefined, o: { sliceMs?: number } = {}) {
    this.#fib = fib;
    this.#sliceMs = o.sliceMs ?? SLICE_MS;
  }

  get open(): boolean {
    return this.#open;
  }

  /** this node's own addresses: never a next hop */
  get own(): ReadonlySet<string> {
    return this.#own;
  }
  set own(v: ReadonlySet<string>) {
    this.#own = v;
    this.#forgetTargets();
  }

  /** Open (write everything) or close (freeze the kernel as it is) the gate. */
  setOpen(open: boolean): void {
    if (open === this.#open) return;
    this.#open = open;
    if (!open) return;
    for (const k of this.#gone) if (this.#want(k) === undefined) this.#put(k, undefined);
    this.#gone.clear();
    this.#forEachKey((k) => this.#put(k, this.#want(k)));
  }

  setDevice(prefix: string, dev: string | null): void {
    const k = keyOf(prefix);
    if (k === undefined) return;
    const before = this.#want(k);
    if (dev === null) this.#device.delete(k);
    else {
      let t = this.#devTargets.get(dev);
      if (!t) this.#devTargets.set(dev, (t = { hops: [{ dev }] }));
      this.#device.set(k, { dev, target: t });
    }
    this.#changed(k, before);
  }

  setBlackhole(prefix: string, on: boolean): void {
    const k = keyOf(prefix);
    if (k === undefined) return;
    const before = this.#want(k);
    if (on) this.#blackhole.add(k);
    else this.#blackhole.delete(k);
    this.#changed(k, before);
  }

  /** A BGP best path (next hops), or null when the prefix has none we can install. Applied at once. */
  setBgp(prefix: string | PrefixKey, nextHops: readonly string[] | null): void {
    const k = typeof prefix === 'number' ? prefix : keyOf(prefix);
    if (k === undefined) return;
    this.#setBgp(k, nextHops === null || nextHops.length === 0 ? undefined : this.#hopSet(nextHops));
  }

  /**
   * A batch of best-path changes from the speaker, queued and applied in slices of about 10 ms (in order: a later
   * change of a prefix wins). Own originations and withdrawn prefixes have nothing to install.
   */
  bestChanges(evs: readonly BestInput[]): void {
    if (evs.length === 0) return;
    this.#queue.push(evs);
    this.#queued += evs.length;
    this.#schedule();
  }

  /** Best-path changes queued and not applied yet. */
  get pending(): number {
    return this.#queued;
  }

  /** Resolves once every queued best-path change is applied. */
  idle(): Promise<void> {
    if (this.#queued === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** Applies every queued change now (before work that needs the table complete: a stale sweep). */
  drain(): void {
    this.#run(Infinity);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#run(this.#sliceMs);
    });
  }

  #run(budgetMs: number): void {
    const until = performance.now() + budgetMs;
    let n = 0;
    while (this.#queue.length > 0) {
      const batch = this.#queue[0]!;
      while (this.#queuePos < batch.length) {
        const ev = batch[this.#queuePos++]!;
        this.#queued--;
        const k = ev.key ?? keyOf(ev.prefix);
        if (k !== undefined) this.#setBgp(k, ev.local || ev.attributes === null || ev.nextHops.length === 0 ? undefined : this.#hopSet(ev.nextHops));
        // the clock is read every 256 changes: a change costs a microsecond or so
        if ((++n & 255) === 0 && performance.now() >= until) {
          this.#schedule();
          return;
        }
      }
      this.#queue.shift();
      this.#queuePos = 0;
    }
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const f of w) f();
  }

  /** A new kernel policy: every learned route is decided again (only those whose decision changed are rewritten). */
  setPolicy(policy: KernelPolicy): void {
    if (this.#policy?.key === policy.key) return;
    const keys: PrefixKey[] = [];
    const before: (Target | undefined)[] = [];
    this.#forEachBgp((k) => {
      keys.push(k);
      before.push(this.#want(k));
    });
    this.#policy = policy;
    // the targets cached on the next-hop sets do not depend on the policy, only which of them a prefix uses
    for (let i = 0; i < keys.length; i++) this.#changed(keys[i]!, before[i]);
  }

  /** The winning route of a prefix. */
  desired(prefix: string): DesiredRoute | undefined {
    const k = keyOf(prefix);
    return k === undefined ? undefined : this.#view(k);
  }

  *all(): IterableIterator<DesiredRoute> {
    const keys: PrefixKey[] = [];
    this.#forEachKey((k) => keys.push(k));
    for (const k of keys) {
      const v = this.#view(k);
      if (v) yield v;
    }
  }

  /**
   * After the BGP speaker was replaced: every BGP path now installed is stale until the new sessions announce it
   * again (it stays in the kernel meanwhile, as with graceful restart, RFC 4724 §4.2). Returns how many.
   */
  markBgpStale(): number {
    this.drain();
    this.sweepBgpStale(); // a second replacement before the first sweep: what is still stale from it goes now
    this.#stale4 = this.#bgp4;
    this.#stale6 = this.#bgp6;
    this.#bgp4 = new V4Index();
    this.#bgp6 = new Map();
    return this.#stale4.size + this.#stale6.size;
  }

  /** Drops the BGP paths not announced again since markBgpStale(); returns how many. */
  sweepBgpStale(): number {
    this.drain();
    const s4 = this.#stale4;
    const s6 = this.#stale6;
    if (s4 === undefined || s6 === undefined) return 0;
    const keys: PrefixKey[] = [];
    s4.forEach((a, l) => keys.push(a * 64 + l));
    for (const k of s6.keys()) keys.push(k);
    for (const k of keys) this.#setBgp(k, undefined);
    this.#stale4 = undefined;
    this.#stale6 = undefined;
    return keys.length;
  }

  /** Prefixes with any state (a learned route, even one the policy keeps out of the kernel; a device route; a blackhole). */
  get size(): number {
    let n = this.#bgp4.size + this.#bgp6.size + (this.#stale4?.size ?? 0) + (this.#stale6?.size ?? 0);
    const extra = new Set<PrefixKey>([...this.#device.keys(), ...this.#blackhole]);
    for (const k of extra) if (this.#learned(k) === undefined) n++;
    return n;
  }

  prefixOf(prefix: string): PrefixBytes | undefined {
    const k = keyOf(prefix);
    if (k === undefined || (this.#learned(k) === undefined && !this.#device.has(k) && !this.#blackhole.has(k))) return undefined;
    return bytesOf(k);
  }

  // ----- internals

  #learned(k: PrefixKey): HopSet | undefined {
    if (typeof k === 'number') {
      const a = addrOf(k), l = lenOf(k);
      return this.#bgp4.get(a, l) ?? this.#stale4?.get(a, l);
    }
    return this.#bgp6.get(k) ?? this.#stale6?.get(k);
  }

  #setBgp(k: PrefixKey, hs: HopSet | undefined): void {
    const before = this.#want(k);
    if (typeof k === 'number') {
      const a = addrOf(k), l = lenOf(k);
      this.#stale4?.delete(a, l);
      if (hs === undefined) this.#bgp4.delete(a, l);
      else this.#bgp4.set(a, l, hs);
    } else {
      this.#stale6?.delete(k);
      if (hs === undefined) this.#bgp6.delete(k);
      else this.#bgp6.set(k, hs);
    }
    this.#changed(k, before);
  }

  #hopSet(nextHops: readonly string[]): HopSet {
    let hs = this.#hopSetOf.get(nextHops);
    if (hs !== undefined) return hs;
    const id = nextHops.join(',');
    hs = this.#hopSets.get(id);
    if (hs === undefined) {
      if (this.#hopSets.size >= MAX_HOP_SETS) {
        this.#hopSets = new Map();
        this.#hopSetOf = new WeakMap();
      }
      hs = { nextHops: Object.freeze([...nextHops]) };
      this.#hopSets.set(id, hs);
    }
    this.#hopSetOf.set(nextHops, hs);
    return hs;
  }

  /** Targets depend on `own`: computed again on next use. */
  #forgetTargets(): void {
    for (const hs of this.#hopSets.values()) {
      delete hs.t4;
      delete hs.t6;
      delete hs.tun;
    }
  }

  #decide(k: PrefixKey, hops: readonly string[]): KernelDecision {
    const p = this.#policy;
    if (p === undefined) return 'accept';
    return typeof k === 'number' ? p.decide4(addrOf(k), lenOf(k), hops) : p.decide(k, hops);
  }

  /** The learned route's kernel target under the policy, or undefined (rejected, no usable next hop, none). */
  #bgpTarget(k: PrefixKey, hs: HopSet): Target | undefined {
    const d = this.#decide(k, hs.nextHops);
    if (d === 'reject') return undefined;
    if (d === 'tunnel') {
      if (hs.tun === undefined) hs.tun = tunnelTarget(hs.nextHops, this.#own) ?? null;
      return hs.tun ?? undefined;
    }
    if (typeof k === 'number') {
      if (hs.t4 === undefined) hs.t4 = bgpTarget(4, hs.nextHops, this.#own) ?? null;
      return hs.t4 ?? undefined;
    }
    if (hs.t6 === undefined) hs.t6 = bgpTarget(6, hs.nextHops, this.#own) ?? null;
    return hs.t6 ?? undefined;
  }

  /** The winning target of a prefix. */
  #want(k: PrefixKey): Target | undefined {
    const dev = this.#device.get(k);
    if (dev !== undefined) return dev.target;
    if (this.#blackhole.has(k)) return BLACKHOLE;
    const hs = this.#learned(k);
    return hs === undefined ? undefined : this.#bgpTarget(k, hs);
  }

  #view(k: PrefixKey): DesiredRoute | undefined {
    const prefix = prefixText(k);
    const dev = this.#device.get(k);
    if (dev !== undefined) return { prefix, kind: 'device', target: dev.target, nextHops: [], dev: dev.dev };
    if (this.#blackhole.has(k)) return { prefix, kind: 'blackhole', target: BLACKHOLE, nextHops: [] };
    const hs = this.#learned(k);
    const t = hs === undefined ? undefined : this.#bgpTarget(k, hs);
    return t === undefined ? undefined : { prefix, kind: 'bgp', target: t, nextHops: [...hs!.nextHops] };
  }

  #changed(k: PrefixKey, before: Target | undefined): void {
    const after = this.#want(k);
    if (after === before) return;
    if (!this.#open) {
      // nothing is written while the gate is closed; a route that goes away must still leave the kernel later
      if (after === undefined) this.#gone.add(k);
      return;
    }
    this.#put(k, after);
  }

  #put(k: PrefixKey, t: Target | undefined): void {
    const fib = this.#fib;
    if (fib === undefined) return;
    if (typeof k === 'number') {
      const a = addrOf(k);
      const b = this.#scratch4;
      b[0] = a >>> 24;
      b[1] = (a >>> 16) & 255;
      b[2] = (a >>> 8) & 255;
      b[3] = a & 255;
      if (t === undefined) fib.remove(4, b, lenOf(k));
      else fib.set(4, b, lenOf(k), t);
      return;
    }
    const p = bytesOf(k);
    if (p === undefined) return;
    if (t === undefined) fib.remove(6, p.addr, p.len);
    else fib.set(6, p.addr, p.len, t);
  }

  #forEachBgp(fn: (k: PrefixKey) => void): void {
    for (const t of [this.#bgp4, this.#stale4]) t?.forEach((a, l) => fn(a * 64 + l));
    for (const t of [this.#bgp6, this.#stale6]) if (t !== undefined) for (const k of t.keys()) fn(k);
  }

  /** Every prefix with any state, once. */
  #forEachKey(fn: (k: PrefixKey) => void): void {
    this.#forEachBgp(fn);
    for (const k of new Set<PrefixKey>([...this.#device.keys(), ...this.#blackhole])) if (this.#learned(k) === undefined) fn(k);
  }
}

/** Text -> the RIB's prefix key; undefined when it is not a prefix. */
function keyOf(prefix: string): PrefixKey | undefined {
  try {
    return parsePrefixText(prefix.includes('/') ? prefix : `${prefix}/${prefix.includes(':') ? 128 : 32}`);
  } catch {
    return undefined;
  }
}

function bytesOf(k: PrefixKey): PrefixBytes | undefined {
  if (typeof k === 'number') {
    const a = addrOf(k);
    return { family: 4, addr: Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255), len: lenOf(k) };
  }
  const i = k.lastIndexOf('/');
  const addr = addressBytes(k.slice(0, i));
  return addr === undefined ? undefined : { family: 6, addr, len: Number(k.slice(i + 1)) };
}

/** confd's `krt_tunnel = "tunl0"`: the route goes through the IPIP device, onlink to the peer's address. */
function tunnelTarget(nextHops: readonly string[], own: ReadonlySet<string>): Target | undefined {
  const hops: NextHop[] = [];
  for (const nh of nextHops) {
    const b = addressBytes(nh);
    if (b === undefined || b.length !== 4 || own.has(nh)) continue;
    hops.push({ gateway: b, dev: 'tunl0', onlink: true });
  }
  return hops.length > 0 ? { hops } : undefined;
}
