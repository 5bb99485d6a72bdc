// Routes other programs wrote into the kernel's main table, learned as Calico's BIRD learns them beside Felix
// (`fib.learn`). Calico's bird.cfg.template gives BIRD's kernel protocol `learn` and `import all`: every route in
// the main table that is not the kernel's own (proto kernel) nor BIRD's becomes a route of this node, and
// calico_export_to_bgp_peers (bird_ipam.cfg.template, bird_aggr.cfg.template) decides which of them go out — Felix's
// device routes to the workloads (cali*, tap*) among them, which is how a Calico node announces the addresses it
// hosts outside its own blocks. Which of these are announced is decided in src/controller/originate.ts; this module
// only keeps the kernel's set.
//
// Sources, both from what the daemon runs anyway:
// - the FIB's event socket (fib/kernel-events.ts 'foreignRouteChange'): each route change of another protocol, at
//   once, so a workload's route goes out in the same turn Felix wrote it;
// - the next-hop reachability reads (src/daemon/reachability.ts onRoutes): a dump of each protocol's routes every
//   fib.nextHopScan, after every FIB resync (events may have been lost), and after an event that could not be
//   parsed whole. A dump no event overlapped is the kernel's state for that protocol and replaces what the events
//   built (BIRD's `scan time`).
// Unlike BIRD, a protocol number that neither iproute2 names nor an event reported since skeind started is not read
// (src/daemon/reachability.ts resolvingProtocols): a route of such a number written before skeind started and never
// changed is not learned.
import type { HostRoute, KernelRoute } from '../../fib/index.js';
import { formatAddress } from '../../fib/index.js';

/** A route of the kernel's main table that another program wrote. */
export interface LearnedRoute {
  /** "10.65.0.5/32", "fd00::5/128" */
  readonly prefix: string;
  readonly family: 4 | 6;
  /** RTA_PRIORITY (BIRD's krt_metric); 0 when the kernel gave none (an IPv4 route of metric 0) */
  readonly metric: number;
  /** rtm_protocol: Felix's 80, boot 3, static 4... */
  readonly protocol: number;
  /** rtm_type: unicast 1, blackhole 6, unreachable 7, prohibit 8 */
  readonly type: number;
  /** the interface of its first hop that names one (BIRD's `ifname`), when it has one */
  readonly ifname?: string;
}

const RT_TABLE_MAIN = 254;
/** rtm_types BIRD's kernel protocol learns (unicast, blackhole, unreachable, prohibit); not throw, local, nat... */
const LEARNED_TYPES: ReadonlySet<number> = new Set([1, 6, 7, 8]);

export interface KernelLearnOptions {
  /** skein's own protocol (fib.protocol): never learned */
  readonly ownProtocol: number;
  /** an interface's name by index (the FIB's link table) */
  readonly linkName?: (ifindex: number) => string | undefined;
  /** the learned set changed (called at most once per turn of the event loop) */
  readonly onChange: () => void;
}

interface Entry {
  readonly route: LearnedRoute;
  /** what orders routes of one prefix: the kernel uses the lowest metric */
  readonly metric: number;
}

/** The kernel's routes of other programs, by protocol, and the one per prefix that a BIRD-like node would export. */
export class KernelLearner {
  /** per protocol: "prefix metric" -> route (the kernel keys a route by destination and metric, not by protocol) */
  readonly #byProtocol = new Map<number, Map<string, Entry>>();
  /** the same entries by prefix (all protocols and metrics) */
  readonly #byPrefix = new Map<string, Set<Entry>>();
  /** prefixes changed since takeChanges() */
  readonly #changed = new Set<string>();
  readonly #opts: KernelLearnOptions;
  #scheduled = false;
  #version = 0;

  constructor(opts: KernelLearnOptions) {
    this.#opts = opts;
  }

  /** bumped at every change (tests, and callers that cache the list) */
  get version(): number {
    return this.#version;
  }

  /** A route change from the FIB's event socket: true for RTM_NEWROUTE, false for RTM_DELROUTE. */
  change(added: boolean, k: KernelRoute): void {
    if (k.table !== RT_TABLE_MAIN || !this.#learns(k.protocol, k.type)) return;
    const route = this.#fromKernel(k);
    const key = `${route.prefix} ${route.metric}`;
    if (added) {
      // a route replaced in place may have changed protocol: one destination and metric has one route
      for (const [p, m] of this.#byProtocol) {
        const other = p !== k.protocol ? m.get(key) : undefined;
        if (other === undefined) continue;
        m.delete(key);
        this.#unindex(other);
      }
      let m = this.#byProtocol.get(k.protocol);
      if (m === undefined) this.#byProtocol.set(k.protocol, (m = new Map()));
      const had = m.get(key);
      if (had === undefined || !sameRoute(had.route, route)) {
        if (had !== undefined) this.#unindex(had);
        const e = { route, metric: route.metric };
        m.set(key, e);
        this.#index(e);
      }
    } else {
      const m = this.#byProtocol.get(k.protocol);
      const had = m?.get(key);
      if (m === undefined || had === undefined) return;
      m.delete(key);
      this.#unindex(had);
    }
  }

  /**
   * A reachability read's dumps (main table, both families): each `settled` protocol's routes replace what was known
   * of it; the others (an event named them during the read) keep what their events said.
   */
  settle(dumped: ReadonlyMap<number, readonly HostRoute[]>, settled: ReadonlySet<number>): void {
    for (const [proto, routes] of dumped) {
      if (!settled.has(proto) || proto === this.#opts.ownProtocol) continue;
      const next = new Map<string, Entry>();
      for (const r of routes) {
        if (!this.#learns(r.protocol, r.type)) continue;
        const route = this.#fromHost(r);
        next.set(`${route.prefix} ${route.metric}`, { route, metric: route.metric });
      }
      const have = this.#byProtocol.get(proto);
      if (sameEntries(have, next)) continue;
      for (const e of have?.values() ?? []) this.#unindex(e);
      for (const e of next.values()) this.#index(e);
      if (next.size === 0) this.#byProtocol.delete(proto);
      else this.#byProtocol.set(proto, next);
    }
  }

  /** One route per prefix, the lowest metric's (the one the kernel forwards with), sorted by prefix text. */
  routes(): LearnedRoute[] {
    const out: LearnedRoute[] = [];
    for (const entries of this.#byPrefix.values()) out.push(best(entries));
    return out.sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  }

  /**
   * The prefixes whose routes changed since the last call, each with its route now as routes() gives it (undefined:
   * none left). A workload's route changes one prefix; the consumer derives that one again, not the whole set.
   */
  takeChanges(): Map<string, LearnedRoute | undefined> {
    const out = new Map<string, LearnedRoute | undefined>();
    for (const prefix of this.#changed) {
      const entries = this.#byPrefix.get(prefix);
      out.set(prefix, entries === undefined ? undefined : best(entries));
    }
    this.#changed.clear();
    return out;
  }

  /** How many kernel routes are held (all metrics). */
  get size(): number {
    let n = 0;
    for (const m of this.#byProtocol.values()) n += m.size;
    return n;
  }

  #learns(protocol: number, type: number): boolean {
    // 0 unspec, 1 redirect, 2 the kernel's own (connected subnets, link-local): BIRD's `learn` without `all`
    return protocol > 2 && protocol !== this.#opts.ownProtocol && LEARNED_TYPES.has(type);
  }

  #name(ifindex: number | undefined): string | undefined {
    if (ifindex === undefined || ifindex === 0) return undefined;
    // iproute2 names an interface it does not know if<index>
    return this.#opts.linkName?.(ifindex) ?? `if${ifindex}`;
  }

  #fromKernel(k: KernelRoute): LearnedRoute {
    const ifname = this.#name(k.hops.find((h) => h.ifindex !== 0)?.ifindex);
    return {
      prefix: `${formatAddress(k.addr)}/${k.len}`, family: k.family, metric: k.metric, protocol: k.protocol, type: k.type,
      ...(ifname !== undefined ? { ifname } : {}),
    };
  }

  #fromHost(r: HostRoute): LearnedRoute {
    const addr = r.dst ?? new Uint8Array(r.family === 4 ? 4 : 16);
    const ifname = this.#name(r.hops.find((h) => h.ifindex !== undefined)?.ifindex);
    return {
      prefix: `${formatAddress(addr)}/${r.dstLen}`, family: r.family, metric: r.metric ?? 0, protocol: r.protocol, type: r.type,
      ...(ifname !== undefined ? { ifname } : {}),
    };
  }

  #index(e: Entry): void {
    const p = e.route.prefix;
    let set = this.#byPrefix.get(p);
    if (set === undefined) this.#byPrefix.set(p, (set = new Set()));
    set.add(e);
    this.#dirty(p);
  }

  #unindex(e: Entry): void {
    const p = e.route.prefix;
    const set = this.#byPrefix.get(p);
    if (set?.delete(e) === true && set.size === 0) this.#byPrefix.delete(p);
    this.#dirty(p);
  }

  #dirty(prefix: string): void {
    this.#changed.add(prefix);
    this.#version++;
    if (this.#scheduled) return;
    this.#scheduled = true;
    // a burst of kernel events (Felix writing a host's routes at start) makes one derivation, not one per route
    setImmediate(() => {
      this.#scheduled = false;
      this.#opts.onChange();
    });
  }
}

/** The route a BIRD-like node exports for one prefix: the lowest metric's, then the lowest protocol number's. */
function best(entries: ReadonlySet<Entry>): LearnedRoute {
  let b: Entry | undefined;
  for (const e of entries) if (b === undefined || e.metric < b.metric || (e.metric === b.metric && e.route.protocol < b.route.protocol)) b = e;
  return b!.route;
}

function sameRoute(a: LearnedRoute, b: LearnedRoute): boolean {
  return a.prefix === b.prefix && a.metric === b.metric && a.protocol === b.protocol && a.type === b.type && a.ifname === b.ifname;
}

function sameEntries(a: ReadonlyMap<string, Entry> | undefined, b: ReadonlyMap<string, Entry>): boolean {
  if ((a?.size ?? 0) !== b.size) return false;
  if (a === undefined) return true;
  for (const [k, e] of b) {
    const x = a.get(k);
    if (x === undefined || !sameRoute(x.route, e.route)) return false;
  }
  return true;
}
