// What skeind wants in the kernel, merged from its three sources, and handed to fib/'s Programmer one prefix at a
// time. Per prefix the sources rank as Calico's BIRD ranks them (device routes to local workloads are kernel
// routes that BIRD never replaces; the static blackhole of an affine block has a higher preference than BGP):
//   local workload device route  >  blackhole of an affine block  >  BGP best path.
// While the ClusterInformation gate is closed, the table keeps track but writes nothing (CONTRACT: nothing is
// programmed until the datastore is ready); opening it writes the whole state.
// Learned routes pass the kernel policy first (src/controller/kernel.ts: Calico's kernel export filter for
// encapsulated pools, service ranges and WireGuard): rejected ones are kept here but not written, tunnelled ones go
// via tunl0 onlink.
import type { NextHop, Placement, Programmer, Target } from '../../fib/index.js';
import type { KernelPolicy } from '../controller/index.js';
import { addressBytes, bgpTarget, prefixBytes, type PrefixBytes } from './mapping.js';

export type RouteKind = 'device' | 'blackhole' | 'bgp';

interface Entry {
  p: PrefixBytes;
  device?: { dev: string; target: Target };
  blackhole?: boolean;
  /** the kernel policy rejects this prefix: its blackhole is not written (Felix writes it) */
  blackholeRejected?: boolean;
  bgp?: { nextHops: string[]; target: Target };
  /** the best path's next hops as the speaker gave them, whatever the kernel policy decided */
  learned?: string[];
  /**
   * The best path is elevated (a live migration's target announces it): it beats the local device route and goes
   * into the kernel at this metric, 2^31-1 minus its LOCAL_PREF, as confd's SetMetricForBGPRoutes has BIRD write it
   * (so beside Felix it sits below Felix's own route to the local copy of the VM instead of replacing it).
   */
  override?: number;
  /**
   * The kernel metric of the learned route when it is written (the winner of the prefix), as Calico's BIRD writes
   * it (src/controller/migration.ts kernelMetricOf); undefined: the Programmer's default.
   */
  metric?: number;
  /** the target last handed to the Programmer (undefined: nothing) */
  written?: Target;
  /** the metric it was written at (undefined: the Programmer's default, as for blackholes and device routes) */
  writtenMetric?: number;
}

export interface DesiredRoute {
  prefix: string;
  kind: RouteKind;
  target: Target;
  nextHops: string[];
  dev?: string;
}

const BLACKHOLE: Target = { blackhole: true };

export class RouteTable {
  readonly #fib: Programmer | undefined;
  readonly #entries = new Map<string, Entry>();
  /** shared target objects (fib/ interns by identity first) */
  readonly #devTargets = new Map<string, Target>();
  readonly #bgpTargets = new Map<string, Target>();
  #open = false;
  #stale: Set<string> | undefined;
  /** this node's own addresses: never a next hop */
  own: ReadonlySet<string> = new Set();
  /** told of every route handed to the Programmer (skeinctl watch); undefined: nobody listens */
  onWrite: ((prefix: string, route: DesiredRoute | undefined) => void) | undefined;
  #policy: KernelPolicy | undefined;

  constructor(fib: Programmer | undefined) {
    this.#fib = fib;
  }

  get open(): boolean {
    return this.#open;
  }

  /** Open (write everything) or close (freeze the kernel as it is) the gate. */
  setOpen(open: boolean): void {
    if (open === this.#open) return;
    this.#open = open;
    if (open) for (const [k, e] of this.#entries) this.#write(k, e);
  }

  setDevice(prefix: string, dev: string | null): void {
    const e = this.#entry(prefix, dev !== null);
    if (!e) return;
    if (dev === null) delete e.device;
    else {
      let t = this.#devTargets.get(dev);
      if (!t) this.#devTargets.set(dev, (t = { hops: [{ dev }] }));
      e.device = { dev, target: t };
    }
    this.#changed(prefix, e);
  }

  setBlackhole(prefix: string, on: boolean): void {
    const e = this.#entry(prefix, on);
    if (!e) return;
    if (on) e.blackhole = true;
    else delete e.blackhole;
    this.#judgeBlackhole(prefix, e);
    this.#changed(prefix, e);
  }

  /**
   * A BGP best path (next hops), or null when the prefix has none we can install. `override`: the path is elevated
   * (a live migration's target announces it) and wins over a local workload route; the value is its kernel metric.
   * `metric`: the kernel metric the learned route is written at when it wins the prefix.
   */
  setBgp(prefix: string, nextHops: readonly string[] | null, override?: number, metric?: number): void {
    this.#stale?.delete(prefix);
    const e = this.#entry(prefix, nextHops !== null);
    if (!e) return;
    if (nextHops === null) delete e.learned;
    else e.learned = [...nextHops];
    if (nextHops !== null && override !== undefined) e.override = override;
    else delete e.override;
    if (nextHops !== null && metric !== undefined && metric !== 0) e.metric = metric;
    else delete e.metric;
    this.#applyPolicy(prefix, e);
    this.#changed(prefix, e);
  }

  /** A new kernel policy: every learned route is decided again (only those whose decision changed are rewritten). */
  setPolicy(policy: KernelPolicy): void {
    if (this.#policy?.key === policy.key) return;
    this.#policy = policy;
    for (const [k, e] of [...this.#entries]) {
      if (e.learned === undefined && !e.blackhole) continue;
      const before = e.bgp?.target;
      const bhBefore = e.blackholeRejected;
      if (e.learned !== undefined) this.#applyPolicy(k, e);
      this.#judgeBlackhole(k, e);
      if (e.bgp?.target !== before || e.blackholeRejected !== bhBefore) this.#changed(k, e);
    }
  }

  /**
   * The static blackholes of affine blocks go through the same kernel export filter as learned routes in Calico's
   * BIRD (calico_kernel_programming sees every route of BIRD's table): a block of a VXLAN pool, or of an IPIP pool
   * whose cluster routes Felix programs, is rejected there — Felix writes that blackhole itself (with its own
   * protocol, at the same metric: two writers would replace each other's route).
   */
  #judgeBlackhole(prefix: string, e: Entry): void {
    if (e.blackhole && this.#policy?.decide(prefix, []) === 'reject') e.blackholeRejected = true;
    else delete e.blackholeRejected;
  }

  #applyPolicy(prefix: string, e: Entry): void {
    const hops = e.learned;
    const d = hops === undefined ? 'reject' : this.#policy?.decide(prefix, hops) ?? 'accept';
    const t = hops === undefined || d === 'reject' ? undefined
      : d === 'tunnel' ? this.#tunnelTarget(hops) : this.#bgpTarget(e.p.family, hops);
    if (t === undefined) delete e.bgp;
    else e.bgp = { nextHops: [...hops!], target: t };
  }

  /** confd's `krt_tunnel = "tunl0"`: the route goes through the IPIP device, onlink to the peer's address. */
  #tunnelTarget(nextHops: readonly string[]): Target | undefined {
    const key = `tunl0|${nextHops.join(',')}`;
    let t = this.#bgpTargets.get(key);
    if (t !== undefined) return t;
    const hops: NextHop[] = [];
    for (const nh of nextHops) {
      const b = addressBytes(nh);
      if (b === undefined || b.length !== 4 || this.own.has(nh)) continue;
      hops.push({ gateway: b, dev: 'tunl0', onlink: true });
    }
    if (hops.length === 0) return undefined;
    t = { hops };
    this.#bgpTargets.set(key, t);
    return t;
  }

  /** The metric the prefix's route was written at, when not the Programmer's default (a learned route). */
  metricOf(prefix: string): number | undefined {
    return this.#entries.get(prefix)?.writtenMetric;
  }

  /** The winning route of a prefix. */
  desired(prefix: string): DesiredRoute | undefined {
    const e = this.#entries.get(prefix);
    return e ? view(prefix, e) : undefined;
  }

  *all(): IterableIterator<DesiredRoute> {
    for (const [k, e] of this.#entries) {
      const v = view(k, e);
      if (v) yield v;
    }
  }

  /**
   * After the BGP speaker was replaced: every BGP path now installed is stale until the new sessions announce it
   * again (it stays in the kernel meanwhile, as with graceful restart, RFC 4724 §4.2). Returns how many.
   */
  markBgpStale(): number {
    this.#stale = new Set([...this.#entries].filter(([, e]) => e.learned !== undefined).map(([k]) => k));
    return this.#stale.size;
  }

  /** Drops the BGP paths not announced again since markBgpStale(); returns how many. */
  sweepBgpStale(): number {
    const stale = this.#stale;
    this.#stale = undefined;
    if (!stale) return 0;
    for (const k of stale) this.setBgp(k, null);
    return stale.size;
  }

  get size(): number {
    return this.#entries.size;
  }

  prefixOf(prefix: string): PrefixBytes | undefined {
    return this.#entries.get(prefix)?.p;
  }

  #bgpTarget(family: 4 | 6, nextHops: readonly string[]): Target | undefined {
    const key = `${family}|${nextHops.join(',')}`;
    let t = this.#bgpTargets.get(key);
    if (t === undefined) {
      t = bgpTarget(family, nextHops, this.own);
      if (t === undefined) return undefined;
      // A cluster has a handful of next-hop sets; a bound keeps a churning one from growing without end.
      if (this.#bgpTargets.size > 10_000) this.#bgpTargets.clear();
      this.#bgpTargets.set(key, t);
    }
    return t;
  }

  #entry(prefix: string, create: boolean): Entry | undefined {
    let e = this.#entries.get(prefix);
    if (e || !create) return e;
    const p = prefixBytes(prefix);
    if (!p) return undefined;
    e = { p };
    this.#entries.set(prefix, e);
    return e;
  }

  #changed(prefix: string, e: Entry): void {
    if (this.#open) this.#write(prefix, e);
    if (!e.device && !e.blackhole && !e.bgp && e.learned === undefined && e.written === undefined) this.#entries.delete(prefix);
  }

  #write(prefix: string, e: Entry): void {
    const elevated = e.override !== undefined && e.bgp !== undefined;
    const want = (elevated ? e.bgp?.target : undefined) ?? e.device?.target ?? (e.blackhole && !e.blackholeRejected ? BLACKHOLE : undefined) ?? e.bgp?.target;
    const metric = elevated ? e.override : want !== undefined && want === e.bgp?.target ? e.metric : undefined;
    if (want === e.written && metric === e.writtenMetric) return;
    const fib = this.#fib;
    const at = (m: number | undefined): Placement | undefined => (m === undefined ? undefined : { metric: m });
    if (fib) {
      // A new metric is another kernel route: the old one goes first.
      if (e.written !== undefined && metric !== e.writtenMetric) fib.remove(e.p.family, e.p.addr, e.p.len, at(e.writtenMetric));
      if (want !== undefined) fib.set(e.p.family, e.p.addr, e.p.len, want, at(metric));
      else if (e.written !== undefined && metric === e.writtenMetric) fib.remove(e.p.family, e.p.addr, e.p.len, at(metric));
    }
    if (want === undefined) {
      delete e.written;
      delete e.writtenMetric;
    } else {
      e.written = want;
      if (metric === undefined) delete e.writtenMetric;
      else e.writtenMetric = metric;
    }
    this.onWrite?.(prefix, want === undefined ? undefined : view(prefix, e));
    if (!e.device && !e.blackhole && !e.bgp && e.learned === undefined) this.#entries.delete(prefix);
  }
}

function view(prefix: string, e: Entry): DesiredRoute | undefined {
  if (e.override !== undefined && e.bgp) return { prefix, kind: 'bgp', target: e.bgp.target, nextHops: e.bgp.nextHops };
  if (e.device) return { prefix, kind: 'device', target: e.device.target, nextHops: [], dev: e.device.dev };
  if (e.blackhole && !e.blackholeRejected) return { prefix, kind: 'blackhole', target: BLACKHOLE, nextHops: [] };
  if (e.bgp) return { prefix, kind: 'bgp', target: e.bgp.target, nextHops: e.bgp.nextHops };
  return undefined;
}
