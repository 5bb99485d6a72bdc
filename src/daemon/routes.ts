// What skeind wants in the kernel, merged from its three sources, and handed to fib/'s Programmer one prefix at a
// time. Per prefix the sources rank as Calico's BIRD ranks them (device routes to local workloads are kernel
// routes that BIRD never replaces; the static blackhole of an affine block has a higher preference than BGP):
//   elevated BGP path (a live migration's target)  >  local workload device route  >  blackhole of an affine block
//   >  BGP best path.
// While the ClusterInformation gate is closed, the table keeps track but writes nothing: nothing is programmed
// until the datastore is ready (docs/contract.md, "The datastore: Calico's own resources"); opening it writes the
// whole state.
// Learned routes pass the kernel policy first (src/controller/kernel.ts: Calico's kernel export filter for
// encapsulated pools, service ranges and WireGuard): rejected ones are kept here but not written, tunnelled ones go
// via tunl0 onlink. The static blackholes of affine blocks pass the same policy (with no next hop), as every route of
// BIRD's table passes calico_kernel_programming: a rejected one is left to Felix.
//
// Representation (sized for a million learned routes, docs/architecture.md "Representation"): a
// learned route is its prefix key as the RIB has it (an IPv4 prefix as numbers in fib/'s V4Index, an IPv6 one as
// its canonical text) mapping to an interned next-hop set shared by every prefix with the same next hops; nothing
// else is stored per prefix. Device routes and blackholes are a small override table beside it. What was handed
// to the Programmer is not stored at all: the Programmer holds the desired state (and ignores a set() that
// changes nothing), and a change is written only when the winning target (or its metric) before and after it
// differ. A learned route's kernel metric rides on its interned next-hop set; elevated paths (rare: a live
// migration) keep theirs in a small map beside the table.
// Best-path changes arrive in batches of up to hundreds of thousands (one per speaker flush); they are queued
// and applied in slices of ~5 ms (best-queue.ts), so the event loop keeps turning (keepalives, the control
// socket) meanwhile. Prefix keys, next-hop sets, kernel targets and the write to the Programmer: route-targets.ts.
import { prefixText, type BestBatch, type PrefixKey, type ViaHop } from '../../bgp/index.js';
import { V4Index, type Programmer, type Target } from '../../fib/index.js';
import type { KernelDecision, KernelPolicy } from '../controller/index.js';
import type { PrefixBytes } from '../ip.js';
import { BestQueue, type BestInput } from './best-queue.js';
import { bgpTarget } from './mapping.js';
import {
  BLACKHOLE, HopSetPool, addrOf, bytesOf, keyOf, lenOf, placementAt, sameTarget, tunnelTarget, writeToFib, type HopSet,
} from './route-targets.js';

export type { BestInput } from './best-queue.js';

export type RouteKind = 'device' | 'blackhole' | 'bgp';

export interface DesiredRoute {
  prefix: string;
  kind: RouteKind;
  target: Target;
  nextHops: string[];
  dev?: string;
}

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
  /** blackholes of affine blocks -> the kernel policy rejects it (not written: Felix writes it) */
  readonly #blackhole = new Map<PrefixKey, boolean>();
  /**
   * Elevated learned paths -> their kernel metric (2^31-1 minus LOCAL_PREF, as confd's SetMetricForBGPRoutes has
   * BIRD write it): such a path beats the local device route, and sits below Felix's own route to the local copy
   * of a migrating VM instead of replacing it. A handful at a time.
   */
  readonly #elevated = new Map<PrefixKey, number>();
  /**
   * Prefixes changed while the gate was closed whose route was in the kernel then -> the metric it was written at
   * (undefined: the Programmer's default). When the gate opens, a route that went away or moved to another metric
   * leaves the kernel from there.
   */
  readonly #closedWritten = new Map<PrefixKey, number | undefined>();
  readonly #devTargets = new Map<string, Target>();
  readonly #hopSets = new HopSetPool();
  #open = false;
  /** told of every route handed to the Programmer (skeinctl watch); undefined: nobody listens */
  onWrite: ((prefix: string, route: DesiredRoute | undefined) => void) | undefined;
  /**
   * Whether onWrite wants the routes now (undefined: always). Its arguments are text made per route (a million at a
   * full table), so they are made only while someone watches.
   */
  onWriteWanted: (() => boolean) | undefined;
  /**
   * The kernel metric of a best path that is elevated (it wins over a local workload route), or undefined; for
   * queued best-path changes (the daemon sets it from BGPConfiguration's route priorities).
   */
  elevation: ((ev: BestInput) => number | undefined) | undefined;
  /** The kernel metric of a queued learned best path when it is not elevated (undefined: the Programmer's default). */
  learnedMetric: ((ev: BestInput) => number | undefined) | undefined;
  #own: ReadonlySet<string> = new Set();
  #policy: KernelPolicy | undefined;
  /** recursive next hops: how the kernel reaches a BGP next hop (setResolver); undefined: every one directly */
  #resolve: ((nh: string) => readonly ViaHop[] | null) | undefined;
  /** queued best-path changes, applied in slices (best-queue.ts) */
  readonly #best: BestQueue;
  /** 4 bytes handed to the Programmer for an IPv4 prefix (it keeps numbers, not the array) */
  readonly #scratch4 = new Uint8Array(4);

  /**
   * Whether learned routes are kept (default true). skeind with fib.enabled false keeps none: nothing of them is ever
   * written, and a million-entry copy of the Loc-RIB cost a quarter of its CPU and ~60 MiB at a full table (issue
   * 16). Then the table holds only this node's own routes (device routes, blackholes); best-path changes handed to
   * it (while `skeinctl watch` runs) are only told to the watcher, as the write they would be.
   */
  readonly #keepLearned: boolean;

  /**
   * sliceMs: how long one slice of queued best-path changes may run (default 5 ms; tests use 0: 256 a slice).
   * keepLearned: see #keepLearned.
   */
  constructor(fib: Programmer | undefined, o: { sliceMs?: number; keepLearned?: boolean } = {}) {
    this.#fib = fib;
    this.#keepLearned = o.keepLearned ?? true;
    this.#best = new BestQueue((ev) => this.#applyBest(ev), o.sliceMs);
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
    this.#hopSets.forgetTargets();
  }

  /** Open (write everything) or close (freeze the kernel as it is) the gate. */
  setOpen(open: boolean): void {
    if (open === this.#open) return;
    this.#open = open;
    if (!open) return;
    const was = this.#closedWritten;
    for (const [k, m] of was) {
      const t = this.#want(k);
      this.#write(k, BLACKHOLE, m, t, this.#metricOf(k, t));
    }
    this.#forEachKey((k) => {
      if (was.size > 0 && was.has(k)) return;
      const t = this.#want(k);
      if (t !== undefined) this.#write(k, undefined, undefined, t, this.#metricOf(k, t));
    });
    was.clear();
  }

  setDevice(prefix: string, dev: string | null): void {
    const k = keyOf(prefix);
    if (k === undefined) return;
    const before = this.#want(k), bm = this.#metricOf(k, before);
    if (dev === null) this.#device.delete(k);
    else {
      let t = this.#devTargets.get(dev);
      if (!t) this.#devTargets.set(dev, (t = { hops: [{ dev }] }));
      this.#device.set(k, { dev, target: t });
    }
    this.#changed(k, before, bm);
  }

  setBlackhole(prefix: string, on: boolean): void {
    const k = keyOf(prefix);
    if (k === undefined) return;
    const before = this.#want(k), bm = this.#metricOf(k, before);
    if (on) this.#blackhole.set(k, this.#decide(k, []) === 'reject');
    else this.#blackhole.delete(k);
    this.#changed(k, before, bm);
  }

  /**
   * A BGP best path (next hops), or null when the prefix has none we can install. Applied at once. `override`: the
   * path is elevated (a live migration's target announces it) and wins over a local workload route; the value is
   * its kernel metric. `metric`: the kernel metric of the learned route when it wins the prefix without being elevated.
   */
  setBgp(prefix: string | PrefixKey, nextHops: readonly string[] | null, override?: number, metric?: number): void {
    const k = typeof prefix === 'number' ? prefix : keyOf(prefix);
    if (k === undefined) return;
    this.#setBgp(k, nextHops === null || nextHops.length === 0 ? undefined : this.#hopSets.get(nextHops, metric), override);
  }

  /**
   * A batch of best-path changes from the speaker, queued and applied in slices of about 5 ms (in order: a later
   * change of a prefix wins). Own originations and withdrawn prefixes have nothing to install.
   */
  bestChanges(evs: readonly BestInput[] | BestBatch): void {
    this.#best.push(evs);
  }

  /** Best-path changes queued and not applied yet. */
  get pending(): number {
    return this.#best.pending;
  }

  /** Resolves once every queued best-path change is applied. */
  idle(): Promise<void> {
    return this.#best.idle();
  }

  /** Applies every queued change now (before work that needs the table complete: a stale sweep). */
  drain(): void {
    this.#best.drain();
  }

  /**
   * The last learned change's attributes, next hops and family, the slice it was in, and what they gave: the
   * next-hop set and the elevated metric. Consecutive changes mostly share them (the prefixes of one UPDATE share one
   * attribute set, so the RIB hands the same objects), and the hooks read only the attributes and the family: one
   * pool lookup and one call of each hook per run of such changes instead of per prefix. Kept within one slice only,
   * so hooks whose settings change between slices (BGPConfiguration's route priorities) are asked again.
   */
  #last: { attrs: object | null; hops: readonly string[]; afi: number; turn: number; hs: HopSet | undefined; el: number | undefined } = {
    attrs: null, hops: [], afi: 0, turn: -1, hs: undefined, el: undefined,
  };

  /** One queued best-path change (read `ev` now: a batch entry is a reused cursor). */
  #applyBest(ev: BestInput): void {
    const k = ev.key ?? keyOf(ev.prefix);
    if (k === undefined) return;
    const attrs = ev.attributes;
    const hops = ev.nextHops;
    if (ev.local || attrs === null || hops.length === 0) {
      this.#setBgp(k, undefined, undefined);
      return;
    }
    const afi = typeof k === 'number' ? 1 : 2;
    const l = this.#last;
    if (l.attrs !== attrs || l.hops !== hops || l.afi !== afi || l.turn !== this.#best.turn) {
      l.hs = this.#hopSets.get(hops, this.learnedMetric?.(ev));
      l.el = this.elevation?.(ev);
      l.attrs = attrs;
      l.hops = hops;
      l.afi = afi;
      l.turn = this.#best.turn;
    }
    this.#setBgp(k, l.hs, l.el);
  }

  /**
   * A new kernel policy: every learned route and every blackhole is decided again (only those whose decision
   * changed are rewritten).
   */
  setPolicy(policy: KernelPolicy): void {
    if (this.#policy?.key === policy.key) return;
    const keys: PrefixKey[] = [];
    const before: (Target | undefined)[] = [];
    const metrics: (number | undefined)[] = [];
    const note = (k: PrefixKey): void => {
      keys.push(k);
      const t = this.#want(k);
      before.push(t);
      metrics.push(this.#metricOf(k, t));
    };
    this.#forEachBgp(note);
    for (const k of this.#blackhole.keys()) if (this.#learned(k) === undefined) note(k);
    this.#policy = policy;
    // The static blackholes of affine blocks go through the same kernel export filter as learned routes in Calico's
    // BIRD (calico_kernel_programming sees every route of BIRD's table): a block of a VXLAN pool, or of an IPIP pool
    // whose cluster routes Felix programs, is rejected there: Felix writes that blackhole itself (with its own
    // protocol, at the same metric: two writers would replace each other's route).
    for (const k of this.#blackhole.keys()) this.#blackhole.set(k, this.#decide(k, []) === 'reject');
    // the targets cached on the next-hop sets do not depend on the policy, only which of them a prefix uses
    for (let i = 0; i < keys.length; i++) this.#changed(keys[i]!, before[i], metrics[i]);
  }

  /**
   * How the kernel reaches BGP next hops changed (bgp/rib/nexthop-resolve.ts; undefined: as gateways directly):
   * the targets of the next-hop sets are computed again, and only the prefixes whose set's target changed are
   * rewritten; when none did (the usual poll), nothing is walked. Returns the number of prefixes rewritten.
   * (A walk of the whole table in one piece when a gateway moves: rare, but not sliced yet, see issue 16.)
   */
  setResolver(resolve: ((nh: string) => readonly ViaHop[] | null) | undefined): number {
    const moved = new Map<HopSet, { t4: Target | null | undefined; t6: Target | null | undefined }>();
    for (const hs of this.#hopSets.values()) {
      // only targets already computed can be in the kernel; the others are computed on first use, with the new resolver
      const t4 = hs.t4 === undefined ? undefined : bgpTarget(4, hs.nextHops, this.#own, resolve) ?? null;
      const t6 = hs.t6 === undefined ? undefined : bgpTarget(6, hs.nextHops, this.#own, resolve) ?? null;
      if (!sameTarget(t4, hs.t4) || !sameTarget(t6, hs.t6)) moved.set(hs, { t4, t6 });
    }
    const keys: PrefixKey[] = [];
    const before: (Target | undefined)[] = [];
    const metrics: (number | undefined)[] = [];
    if (moved.size > 0) {
      this.#forEachBgp((k) => {
        const hs = this.#learned(k);
        if (hs === undefined || !moved.has(hs)) return;
        keys.push(k);
        const t = this.#want(k);
        before.push(t);
        metrics.push(this.#metricOf(k, t));
      });
    }
    this.#resolve = resolve;
    for (const [hs, m] of moved) {
      if (m.t4 !== undefined) hs.t4 = m.t4;
      if (m.t6 !== undefined) hs.t6 = m.t6;
    }
    for (let i = 0; i < keys.length; i++) this.#changed(keys[i]!, before[i], metrics[i]);
    return keys.length;
  }

  /** The metric the prefix's route was written at, when not the Programmer's default (a learned route's, or an elevated path's). */
  metricOf(prefix: string): number | undefined {
    const k = keyOf(prefix);
    if (k === undefined) return undefined;
    if (!this.#open && this.#closedWritten.has(k)) return this.#closedWritten.get(k);
    return this.#metricOf(k, this.#want(k));
  }

  /**
   * Whether the kernel holds the prefix's winning route as wanted, at the metric it was written at: `installed` in
   * `skeinctl routes`, asked for each row of a dump (issue 15) and for a prefix given as text (daemon.ts: the
   * one meaning of it). By key, with no text made or parsed: the text form it replaced (parse the prefix three
   * times, build the winner's view, fib/'s view of the kernel route) was 24% of the control bench's time.
   */
  installed(k: PrefixKey): boolean {
    const fib = this.#fib;
    if (fib === undefined) return false;
    const want = this.#want(k);
    if (want === undefined) return false;
    const m = !this.#open && this.#closedWritten.has(k) ? this.#closedWritten.get(k) : this.#metricOf(k, want);
    const where = placementAt(m);
    if (typeof k === 'number') {
      const a = addrOf(k), b = this.#scratch4;
      b[0] = a >>> 24;
      b[1] = (a >>> 16) & 255;
      b[2] = (a >>> 8) & 255;
      b[3] = a & 255;
      return fib.holds(4, b, lenOf(k), where);
    }
    const p = bytesOf(k);
    return p !== undefined && fib.holds(6, p.addr, p.len, where);
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
    const extra = new Set<PrefixKey>([...this.#device.keys(), ...this.#blackhole.keys()]);
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

  #setBgp(k: PrefixKey, hs: HopSet | undefined, override?: number): void {
    if (!this.#keepLearned) {
      this.#tellLearned(k, hs, override);
      return;
    }
    if (override === undefined && this.#elevated.size === 0 && !this.#overridden(k)) {
      // The common case (every learned route of a full table): no elevated path, device route or blackhole has a
      // say in this prefix, so its winner before and after is its learned route alone. One lookup of the learned
      // route instead of five (#want and #metricOf before and after).
      const prev = this.#swapBgp(k, hs);
      // Without a kernel to write to and nobody watching the writes (skeind with fib.enabled off, as a pure route
      // reflector runs), the stored route is all there is to it: the kernel targets before and after (two kernel
      // policy decisions per route) would be worked out for nothing.
      if (this.#fib === undefined && this.#open && !this.#watched()) return;
      const before = prev === undefined ? undefined : this.#bgpTarget(k, prev);
      const after = hs === undefined ? undefined : this.#bgpTarget(k, hs);
      const bm = before === undefined ? undefined : prev!.metric;
      const am = after === undefined ? undefined : hs!.metric;
      if (after !== before || am !== bm) this.#emit(k, before, bm, after, am);
      return;
    }
    const before = this.#want(k);
    const el = this.#elevated;
    const bm = this.#metricOf(k, before);
    if (hs !== undefined && override !== undefined) el.set(k, override);
    else if (el.size > 0) el.delete(k);
    this.#storeBgp(k, hs);
    this.#changed(k, before, bm);
  }

  /**
   * A learned route changed in a table that keeps none (#keepLearned false): a watcher hears of it as the write it
   * would be, unless a device route or blackhole wins the prefix anyway (an elevated path wins over them).
   */
  #tellLearned(k: PrefixKey, hs: HopSet | undefined, override: number | undefined): void {
    if (!this.#open || !this.#watched()) return;
    if (override === undefined && this.#overridden(k) && this.#want(k) !== undefined) return;
    const t = hs === undefined ? undefined : this.#bgpTarget(k, hs);
    const prefix = prefixText(k);
    this.onWrite?.(prefix, t === undefined ? undefined : { prefix, kind: 'bgp', target: t, nextHops: [...hs!.nextHops] });
  }

  /** A device route or a blackhole of this prefix exists (each may win over the learned route). */
  #overridden(k: PrefixKey): boolean {
    return (this.#device.size > 0 && this.#device.has(k)) || (this.#blackhole.size > 0 && this.#blackhole.has(k));
  }

  /** #learned then #storeBgp in one probe of the IPv4 table (swap / take): what the prefix had before. */
  #swapBgp(k: PrefixKey, hs: HopSet | undefined): HopSet | undefined {
    if (typeof k !== 'number') {
      const prev = this.#learned(k);
      this.#storeBgp(k, hs);
      return prev;
    }
    const a = addrOf(k), l = lenOf(k);
    const prev = hs === undefined ? this.#bgp4.take(a, l) : this.#bgp4.swap(a, l, hs);
    const stale = this.#stale4?.take(a, l);
    return prev ?? stale;
  }

  #storeBgp(k: PrefixKey, hs: HopSet | undefined): void {
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
      if (hs.t4 === undefined) hs.t4 = bgpTarget(4, hs.nextHops, this.#own, this.#resolve) ?? null;
      return hs.t4 ?? undefined;
    }
    if (hs.t6 === undefined) hs.t6 = bgpTarget(6, hs.nextHops, this.#own, this.#resolve) ?? null;
    return hs.t6 ?? undefined;
  }

  /** The learned route's target when it is elevated and installable, else undefined. */
  #elevatedTarget(k: PrefixKey): Target | undefined {
    if (this.#elevated.size === 0 || !this.#elevated.has(k)) return undefined;
    const hs = this.#learned(k);
    return hs === undefined ? undefined : this.#bgpTarget(k, hs);
  }

  /** The winning target of a prefix. */
  #want(k: PrefixKey): Target | undefined {
    const el = this.#elevatedTarget(k);
    if (el !== undefined) return el;
    if (this.#device.size > 0) {
      const dev = this.#device.get(k);
      if (dev !== undefined) return dev.target;
    }
    if (this.#blackhole.size > 0 && this.#blackhole.get(k) === false) return BLACKHOLE;
    const hs = this.#learned(k);
    return hs === undefined ? undefined : this.#bgpTarget(k, hs);
  }

  /**
   * The kernel metric of the winner: an elevated path's; a learned route's own (its next-hop set's) when it wins;
   * else undefined (the Programmer's default: device routes and blackholes, as Calico writes them).
   */
  #metricOf(k: PrefixKey, want: Target | undefined): number | undefined {
    // `want` is #want(k): only which of the prefix's candidates won is asked here, so a change costs no second
    // kernel-policy decision (elevated paths, a handful, are the exception)
    if (want === undefined) return undefined;
    if (this.#elevated.size > 0 && this.#elevatedTarget(k) !== undefined) return this.#elevated.get(k);
    if (want === BLACKHOLE) return undefined;
    if (this.#device.size > 0 && this.#device.get(k)?.target === want) return undefined;
    return this.#learned(k)?.metric;
  }


  #view(k: PrefixKey): DesiredRoute | undefined {
    const prefix = prefixText(k);
    const el = this.#elevatedTarget(k);
    if (el !== undefined) return { prefix, kind: 'bgp', target: el, nextHops: [...this.#learned(k)!.nextHops] };
    const dev = this.#device.get(k);
    if (dev !== undefined) return { prefix, kind: 'device', target: dev.target, nextHops: [], dev: dev.dev };
    if (this.#blackhole.get(k) === false) return { prefix, kind: 'blackhole', target: BLACKHOLE, nextHops: [] };
    const hs = this.#learned(k);
    const t = hs === undefined ? undefined : this.#bgpTarget(k, hs);
    return t === undefined ? undefined : { prefix, kind: 'bgp', target: t, nextHops: [...hs!.nextHops] };
  }

  /** The prefix's state changed from (before, bm): write the difference, or remember it while the gate is closed. */
  #changed(k: PrefixKey, before: Target | undefined, bm: number | undefined): void {
    const after = this.#want(k);
    const am = this.#metricOf(k, after);
    if (after === before && am === bm) return;
    this.#emit(k, before, bm, after, am);
  }

  /** The winner of a prefix changed: write it, or while the gate is closed remember what was in the kernel. */
  #emit(k: PrefixKey, before: Target | undefined, bm: number | undefined, after: Target | undefined, am: number | undefined): void {
    if (!this.#open) {
      // nothing is written while the gate is closed; what was in the kernel must still be replaced or removed later
      if (before !== undefined && !this.#closedWritten.has(k)) this.#closedWritten.set(k, bm);
      return;
    }
    this.#write(k, before, bm, after, am);
  }

  /** Hands the change from (before, bm) to (after, am) to the Programmer (route-targets.ts), and tells a watcher. */
  #write(k: PrefixKey, before: Target | undefined, bm: number | undefined, after: Target | undefined, am: number | undefined): void {
    if (this.#fib !== undefined) writeToFib(this.#fib, k, before, bm, after, am, this.#scratch4);
    if (this.#watched()) this.onWrite?.(prefixText(k), after === undefined ? undefined : this.#view(k));
  }

  /** Someone wants to hear of each route written (onWrite). */
  #watched(): boolean {
    return this.onWrite !== undefined && this.onWriteWanted?.() !== false;
  }

  #forEachBgp(fn: (k: PrefixKey) => void): void {
    for (const t of [this.#bgp4, this.#stale4]) t?.forEach((a, l) => fn(a * 64 + l));
    for (const t of [this.#bgp6, this.#stale6]) if (t !== undefined) for (const k of t.keys()) fn(k);
  }

  /** Every prefix with any state, once. */
  #forEachKey(fn: (k: PrefixKey) => void): void {
    this.#forEachBgp(fn);
    for (const k of new Set<PrefixKey>([...this.#device.keys(), ...this.#blackhole.keys()])) if (this.#learned(k) === undefined) fn(k);
  }
}
