// What this host reaches without skein, read from the kernel, for next-hop resolution (RFC 4271 §9.1.2; the engine
// side is bgp/rib/next-hop.ts). A BGP next hop is resolvable when a main-table route of any origin but skein's
// covers it: connected subnets (proto kernel), routes set at boot, by an operator or by DHCP/RA (boot, static,
// dhcp, ra), including a default route — Calico nodes commonly reach each other through one — and the routes other
// daemons write (an IGP or another BGP daemon: zebra, bird, ospf, bgp, babel..., Felix's 80), as BIRD as Calico
// configures it resolves next hops through the kernel table. skein's own routes (its fib protocol) are never used:
// a next hop must not resolve through the very path it belongs to (the Loc-RIB side, one level deep, is
// bgp/rib/recursive.ts). The routes' gateways are read too: a next hop covered by a route through a gateway (not a
// link route) is installed via that gateway (bgp/rib/nexthop-resolve.ts, src/daemon/fib-resolver.ts), and a change
// of that gateway moves the routes using it.
//
// It reads over rtnetlink in this process (fib/host-routes.ts, HostReader: no `ip` process), a dump of the main
// table per protocol which the kernel filters by table and protocol (strict dump checking, NETLINK_GET_STRICT_CHK),
// so a million skein routes in the same table are never copied out; then the host's addresses and, for the routes'
// devices, its interface names. The protocols are the ones iproute2 names (rt_protos and rt_protos.d) and the
// well-known ones, except skein's; a route change of any other protocol number adds it. It follows changes through
// the FIB's own event socket (fib/event-reader.ts passes routes of other protocols in the main and local tables on;
// skein's own writes never get that far). A main-table route an event carries whole (the Programmer's
// 'foreignRouteChange', parsed) changes the view as it is, with no dump: Felix writing a workload's route costs one
// entry, not a walk of the kernel's table (what dumps cost is below). What an event cannot give whole (a local-table
// change, that is an address come or gone; a multipath route, whose hops the kernel may report one at a time; a
// message the parser refuses) only names its protocol ('foreignRoute'): once that burst is over, the protocols named
// are dumped again (the others' routes kept as they were). Events that come while a read runs are applied again on
// top of its dumps, so a dump that passed a route before it changed loses nothing. What route events alone changed
// goes to the consumers as a change (onRoutesChanged: texts and routes that came or went), not as a whole view, so
// a pod's route costs the next-hop checks O(1) rather than a rebuild over every route of the host; the next read
// gives them a whole view again. After each of the FIB's
// resyncs it polls (notifications may have been lost: an overrun, a bulk write with the route groups off,
// fib/writer.ts; a link gone down, whose routes the kernel flushes without a notification each); and it still polls
// every fib.nextHopScan, for whatever no event announces. Fed only when skeind programs the kernel: without a FIB,
// skein is not this host's router and every well-formed next hop counts as resolvable.
// Cost: each dump walks the whole table in the kernel, skein's million routes included, even when it returns none
// (~55-140 ms of system time at 1M routes, now on this thread: the loop waits that long per dump, and the dumps of
// a read go one at a time, the loop turning between them); dumping twenty-odd protocols every poll took seconds of
// CPU and, on a loaded machine, over the 10 s limit (bench/control.ts). So after a first full read, a poll dumps the
// protocols known to have routes (found by a dump, or named by an event) and ROTATE of the others in turn: every
// protocol is still read every few polls, and a poll's cost stays bounded whatever the number of protocols; a read
// after an event dumps only the protocols it named.
import { readFileSync, readdirSync } from 'node:fs';
import { setIntOpt, type Reachability, type ResolvingRoute, type ViaHop } from '../../bgp/index.js';
import { HostReader, formatAddress, type HostHop, type HostRoute, type KernelRoute } from '../../fib/index.js';

/**
 * Route origins read whatever iproute2's tables say (rtnetlink RTPROT_*): kernel 2, boot 3, static 4, gated 8, ra 9,
 * mrt 10, zebra 11, bird 12, dnrouted 13, xorp 14, ntk 15, dhcp 16, keepalived 18, babel 42, Calico Felix 80,
 * openr 99, bgp 186, isis 187, ospf 188, rip 189, eigrp 192. Not 0 (unspec) or 1 (ICMP redirects, cached routes).
 */
export const WELL_KNOWN_PROTOCOLS: readonly number[] = [2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 42, 80, 99, 186, 187, 188, 189, 192];

/** Protocol names → numbers from iproute2's tables (rt_protos and rt_protos.d/*.conf), where they exist. */
export function protocolNames(dirs: readonly string[] = ['/etc/iproute2', '/usr/share/iproute2', '/usr/lib/iproute2']): Map<string, number> {
  const names = new Map<string, number>();
  const read = (file: string): void => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return;
    }
    for (const line of text.split('\n')) {
      const m = /^\s*(\d+)\s+(\S+)/.exec(line);
      if (m !== null && Number(m[1]) <= 255) names.set(m[2] as string, Number(m[1]));
    }
  };
  for (const d of dirs) {
    read(`${d}/rt_protos`);
    let extra: string[] = [];
    try {
      extra = readdirSync(`${d}/rt_protos.d`).filter((f) => f.endsWith('.conf'));
    } catch {
      // no such directory
    }
    for (const f of extra) read(`${d}/rt_protos.d/${f}`);
  }
  return names;
}

/** The protocols whose routes resolve next hops: the well-known and the named ones, except `own` (skein's). */
export function resolvingProtocols(own: number, names: ReadonlyMap<string, number> = protocolNames()): Set<number> {
  const set = new Set<number>([...WELL_KNOWN_PROTOCOLS, ...names.values()]);
  for (const n of [0, 1, own]) set.delete(n);
  return set;
}

export interface ReachabilityOptions {
  /** poll interval, ms (default 10 s) */
  readonly intervalMs?: number;
  /** skein's own route protocol (skein.yaml fib.protocol, default 171): its routes never resolve a next hop */
  readonly ownProtocol?: number;
  /**
   * What announces route changes of other protocols (the FIB's Programmer, its 'foreignRoute' event); without it,
   * only the poll reads changes
   */
  readonly follow?: RouteChanges;
  /** called with the new view whenever it differs from the last one */
  readonly onChange: (r: Reachability) => void;
  /** a read that failed (the last good view stays in force) */
  readonly onError: (e: Error) => void;
  /**
   * After each read: the routes of every protocol it dumped (main table, both families, all route types), and of
   * those the protocols no event named while the read ran, whose dump is therefore the kernel's state (one an event
   * named may have changed after the kernel passed it). What learns those routes (src/daemon/kernel-learn.ts) takes
   * the settled ones as the truth.
   */
  readonly onRoutes?: (dumped: ReadonlyMap<number, readonly HostRoute[]>, settled: ReadonlySet<number>) => void;
  /**
   * When given, a change made of route events alone (no read: the addresses as they were) is reported as what
   * changed, not as a whole view: beside Felix every pod's route is one, and rebuilding the next-hop checks from a
   * whole view cost O(routes) per pod. onChange still gets whole views (the reads; and the first read after such
   * deltas always, so a poll sets everything straight).
   */
  readonly onRoutesChanged?: (d: ReachabilityDelta) => void;
}

/**
 * A source of 'foreignRoute' events (fib's Programmer is one): the protocol number of a route that changed; and of
 * 'resync' events: the FIB dumps because notifications may have been lost (an overrun, a bulk write with the route
 * groups off, a link change: the kernel flushes a downed link's routes without a notification per route).
 */
export interface RouteChanges {
  on(event: 'foreignRoute', listener: (protocol: number) => void): unknown;
  off(event: 'foreignRoute', listener: (protocol: number) => void): unknown;
  /**
   * the same change parsed, emitted just before 'foreignRoute' for each message the parser takes: true for
   * RTM_NEWROUTE, false for RTM_DELROUTE
   */
  on(event: 'foreignRouteChange', listener: (added: boolean, route: KernelRoute) => void): unknown;
  off(event: 'foreignRouteChange', listener: (added: boolean, route: KernelRoute) => void): unknown;
  on(event: 'resync', listener: () => void): unknown;
  off(event: 'resync', listener: () => void): unknown;
  /** an interface's name, from the table the FIB keeps anyway: a read then dumps the links only for one it lacks */
  linkName?(ifindex: number): string | undefined;
}

/**
 * An address as iproute2 prints it (glibc's inet_ntop): RFC 5952 text for IPv6, with the IPv4-mapped (::ffff:a.b.c.d)
 * and IPv4-compatible (::a.b.c.d) forms in dotted quad, so the text is the same as when `ip -j` was read.
 */
export function addressText(a: Uint8Array): string {
  if (a.length === 16 && a.subarray(0, 10).every((x) => x === 0)) {
    const w5 = (a[10]! << 8) | a[11]!;
    const w6 = (a[12]! << 8) | a[13]!;
    // glibc: the zero run must be exactly words 0-5 (compatible) or 0-4 followed by ffff (mapped)
    if (w5 === 0xffff) return `::ffff:${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
    if (w5 === 0 && w6 !== 0) return `::${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  }
  return formatAddress(a);
}

/** A kernel route's way out, for recursive next-hop resolution; undefined for a gateway of the other family. */
function viaOf(h: HostHop, names: ReadonlyMap<number, string>): ViaHop | undefined {
  if (h.otherFamily) return undefined; // skein's FIB writes gateways of the route's own family only
  return {
    ...(h.gateway !== undefined ? { gateway: addressText(h.gateway) } : {}),
    // iproute2 names an interface it does not know if<index>
    ...(h.ifindex !== undefined ? { dev: names.get(h.ifindex) ?? `if${h.ifindex}` } : {}),
    ...(h.onlink ? { onlink: true } : {}),
  };
}

/** how long the view waits after a route event applied whole (coalescing a burst), ms */
const COMPOSE_DELAY_MS = 20;
/** protocols without routes dumped per poll, in turn, besides those known to have routes */
const ROTATE = 2;
/** rtm_type of a route that forwards: unreachable, blackhole, prohibit, throw cover an address but forward nothing */
const RTN_UNICAST = 1;
const RT_TABLE_MAIN = 254;

/** One read of the kernel: host addresses, and the routes that resolve next hops (of `protocols`). */
export async function readReachability(protocols: ReadonlySet<number> = resolvingProtocols(171), reader?: HostReader): Promise<Reachability> {
  const own = reader ?? new HostReader(setIntOpt);
  try {
    return (await view(own, (await dumpProtocols(own, protocols)).values())).view;
  } finally {
    if (reader === undefined) own.close();
  }
}

/** The routes of each protocol in the main table, both families (one dump at a time: a socket runs one). */
async function dumpProtocols(reader: HostReader, protocols: ReadonlySet<number>): Promise<Map<number, HostRoute[]>> {
  const out = new Map<number, HostRoute[]>();
  for (const family of [4, 6] as const) {
    for (const proto of [...protocols].sort((a, b) => a - b)) {
      const rs = await reader.routes(family, RT_TABLE_MAIN, proto);
      out.set(proto, [...(out.get(proto) ?? []), ...rs]);
    }
  }
  return out;
}

/**
 * The view from the routes per protocol, with the host's addresses read now and the interface names from `known`
 * (the FIB's link table), or from a link dump when it lacks one.
 */
async function view(reader: HostReader, byProtocol: Iterable<Iterable<HostRoute>>,
  known?: (ifindex: number) => string | undefined): Promise<{ view: Reachability; addrs: Uint8Array[] }> {
  const addrs = await reader.addresses();
  const all = unicast(byProtocol);
  const names = knownNames(all, known) ?? await reader.links();
  return { view: compose(addrs, all, names), addrs };
}

/** The routes that forward (unicast), of every protocol. */
function unicast(byProtocol: Iterable<Iterable<HostRoute>>): HostRoute[] {
  const all: HostRoute[] = [];
  for (const rs of byProtocol) for (const r of rs) if (r.type === RTN_UNICAST) all.push(r);
  return all;
}

/** The names of the routes' interfaces from `known`; null when it lacks one (the caller dumps the links). */
function knownNames(all: readonly HostRoute[], known?: (ifindex: number) => string | undefined): Map<number, string> | null {
  const names = new Map<number, string>();
  for (const r of all) {
    for (const h of r.hops) {
      if (h.ifindex === undefined || names.has(h.ifindex)) continue;
      const n = known?.(h.ifindex);
      if (n === undefined) return null;
      names.set(h.ifindex, n);
    }
  }
  return names;
}

/** The view from the host's addresses and its forwarding routes, with their interfaces' names. */
function compose(addrs: readonly Uint8Array[], all: readonly HostRoute[], names: ReadonlyMap<number, string>): Reachability {
  const addresses = addrs.map(addressText);
  const routes: string[] = [];
  const resolving: ResolvingRoute[] = [];
  for (const r of all) {
    const res = resolvingOf(r, names);
    routes.push(res.dst);
    resolving.push(res);
  }
  resolving.sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : (a.metric ?? 0) - (b.metric ?? 0)));
  return { addresses: [...new Set(addresses)].sort(), routes: [...new Set(routes)].sort(), resolving };
}

/** A route's destination as the view's text: iproute2's ("10.0.0.5" for a host route, the default route spelled out). */
function routeText(r: HostRoute): string {
  const full = r.family === 4 ? 32 : 128;
  return r.dst !== undefined
    ? (r.dstLen === full ? addressText(r.dst) : `${addressText(r.dst)}/${r.dstLen}`)
    : r.dstLen === 0 ? (r.family === 4 ? '0.0.0.0/0' : '::/0') : `0/${r.dstLen}`;
}

/** A route as the view's text and its ways out. */
function resolvingOf(r: HostRoute, names: ReadonlyMap<number, string>): ResolvingRoute {
  const dst = routeText(r);
  // a route out through a gateway of the other family only: it covers the next hop, but skein cannot install
  // through it; it resolves as a link route would (the next hop as gateway), which the kernel then refuses
  // visibly (skeinctl fib), rather than being dropped here unseen
  const known = r.hops.map((h) => viaOf(h, names)).filter((h): h is ViaHop => h !== undefined);
  // an IPv4 route of metric 0 comes without RTA_PRIORITY in a dump, and as metric 0 from an event: one view either way
  return { dst, hops: known, ...(r.metric !== undefined && r.metric !== 0 ? { metric: r.metric } : {}) };
}

/** How many forwarding routes there are of each text (two metrics of one prefix are one text). */
function textCounts(all: readonly HostRoute[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of all) {
    const t = routeText(r);
    out.set(t, (out.get(t) ?? 0) + 1);
  }
  return out;
}

/**
 * What changed in the view since the last one the consumers were given (ReachabilityOptions.onRoutesChanged): route
 * texts that came or went (Reachability.routes) and routes with their ways out that came or went (resolving).
 */
export interface ReachabilityDelta {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly addedResolving: readonly ResolvingRoute[];
  readonly removedResolving: readonly ResolvingRoute[];
}

/**
 * A route's identity in a table as RTM_DELROUTE names it: family, destination, length, metric. (IPv4 also keys by
 * TOS, which skein's parser does not keep; two routes that differ only in it share a key, and the event path leaves
 * such a key to the dumps.)
 */
function routeKey(family: number, dst: Uint8Array | undefined, len: number, metric: number): string {
  return `${family} ${len === 0 || dst === undefined ? '' : formatAddress(dst)}/${len} ${metric}`;
}

/** A route from an event, as a dump would give it. */
function hostRoute(k: KernelRoute): HostRoute {
  return {
    family: k.family, ...(k.len > 0 ? { dst: k.addr } : {}), dstLen: k.len, type: k.type, protocol: k.protocol,
    ...(k.metric !== 0 ? { metric: k.metric } : {}),
    hops: k.hops.map((h) => ({
      ...(h.gateway !== undefined ? { gateway: h.gateway } : {}), otherFamily: h.otherFamily === true,
      ...(h.ifindex !== 0 ? { ifindex: h.ifindex } : {}), onlink: h.onlink,
    })),
  };
}

/** A dump's routes by key; a key met twice (an appended route, a TOS) gets a suffix, which the event path avoids. */
function keyed(rs: readonly HostRoute[]): Map<string, HostRoute> {
  const m = new Map<string, HostRoute>();
  for (const r of rs) {
    const key = routeKey(r.family, r.dst, r.dstLen, r.metric ?? 0);
    if (!m.has(key)) {
      m.set(key, r);
      continue;
    }
    for (let n = 1; ; n++) {
      if (!m.has(`${key}#${n}`)) {
        m.set(`${key}#${n}`, r);
        break;
      }
    }
  }
  return m;
}

/** Polls the kernel, follows its route events, and reports each change of what the host reaches. */
export class KernelReachability {
  #timer: NodeJS.Timeout | null = null;
  #burst: NodeJS.Timeout | null = null;
  #again = false;
  #stopped = false;
  readonly #protocols: Set<number>;
  #last = '';
  #current: Reachability | null = null;
  #reading = false;
  #reader: HostReader | null = null;
  /** protocols known to have routes (their last dump found some, or an event named one); null: no full read yet */
  #present: Set<number> | null = null;
  /** protocols events named since the current read began */
  readonly #reported = new Set<number>();
  /** protocols events named since the last read began: the next read dumps these (unless it is a poll) */
  readonly #changed = new Set<number>();
  /** the next read is a poll (a resync, a failed read, a poll asked for during a read) */
  #full = false;
  /** per protocol that has any, its routes (both families) by routeKey: the last dump's, changed by events since */
  readonly #routes = new Map<number, Map<string, HostRoute>>();
  /** the host's addresses at the last read (an address change comes as a local-table event, which makes a read) */
  #addrs: Uint8Array[] | null = null;
  /** while a read's dumps run: the events applied meanwhile, to apply again on top of the dumps */
  #pending: Array<{ added: boolean; route: KernelRoute; key: string }> | null = null;
  /** the 'foreignRoute' event that follows was applied whole already (see #onParsed) */
  #taken = false;
  #composeScheduled = false;
  /**
   * the route events applied since the consumers were last given a whole view or a delta, in order: the route that
   * went (the one under that key before) and the one that came, each unicast only
   */
  #delta: Array<{ went?: HostRoute; came?: HostRoute }> = [];
  /** the forwarding routes per text, as the consumers last had them (a whole view, then deltas) */
  #texts = new Map<string, number>();
  /** deltas were given since the last whole view: #current is recomposed when asked for, the next read publishes */
  #stale = false;
  /** an event changed the routes while a read ran: compose once it is over */
  #composeAfterRead = false;
  /** where the turn of the protocols without routes is */
  #turn = 0;
  /** dumps asked of the kernel so far (tests: what a poll costs) */
  dumps = 0;
  /** route events applied without a dump (tests) */
  applied = 0;
  readonly #opts: ReachabilityOptions;
  readonly #onRoute = (protocol: number): void => {
    if (this.#taken) {
      this.#taken = false;
      return;
    }
    this.routeChanged(protocol);
  };
  readonly #onParsed = (added: boolean, route: KernelRoute): void => this.#event(added, route);
  /** the FIB's resync: what it may have missed, this may have too; re-read as after a change of no known protocol */
  readonly #onResync = (): void => this.routeChanged(0);

  constructor(opts: ReachabilityOptions) {
    this.#opts = opts;
    this.#protocols = resolvingProtocols(opts.ownProtocol ?? 171, protocolNames());
  }

  /** the protocol numbers read (tests) */
  get protocols(): ReadonlySet<number> {
    return this.#protocols;
  }

  /** no route event waits to reach the consumers and no read runs (tests) */
  get idle(): boolean {
    return !this.#composeScheduled && this.#delta.length === 0 && !this.#reading && this.#burst === null;
  }

  /** the last view read, or null before the first read succeeded */
  get current(): Reachability | null {
    if (this.#stale && this.#addrs !== null && !this.#stopped) {
      const all = this.#forwarding();
      const names = this.#names(all);
      if (names !== null) this.#current = compose(this.#addrs, all, names);
    }
    return this.#current;
  }

  /** First read (awaited, so the speaker never starts without it when the kernel answers), then poll. */
  async start(): Promise<void> {
    this.#opts.follow?.on('foreignRouteChange', this.#onParsed);
    this.#opts.follow?.on('foreignRoute', this.#onRoute);
    this.#opts.follow?.on('resync', this.#onResync);
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#opts.intervalMs ?? 10_000);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    this.#opts.follow?.off('foreignRouteChange', this.#onParsed);
    this.#opts.follow?.off('foreignRoute', this.#onRoute);
    this.#opts.follow?.off('resync', this.#onResync);
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#burst) clearTimeout(this.#burst);
    this.#burst = null;
    // a read under way fails on the closed socket (a DumpError, reported through onError unless stopped)
    this.#reader?.close();
    this.#reader = null;
  }

  /**
   * A route of another protocol changed in the main or local table (the FIB's 'foreignRoute' event, for what the
   * event path could not apply whole): learn its protocol number, and once the burst is over (100 ms quiet) dump
   * that protocol again (both families, the other protocols' routes as they are); 0: something of no known protocol
   * may have changed (the FIB's resync), a poll.
   */
  routeChanged(protocol: number): void {
    if (this.#stopped) return;
    if (protocol !== (this.#opts.ownProtocol ?? 171) && protocol > 1) {
      this.#protocols.add(protocol);
      // dumped by the next polls, even the partial ones
      this.#present?.add(protocol);
      this.#reported.add(protocol);
      this.#changed.add(protocol);
    } else this.#full = true;
    if (this.#burst) clearTimeout(this.#burst);
    this.#burst = setTimeout(() => {
      this.#burst = null;
      void this.#read(false);
    }, 100);
    this.#burst.unref();
  }

  /** Poll now: the protocols known to have routes and ROTATE others; reports a change through onChange. Never throws. */
  refresh(): Promise<void> {
    return this.#read(true);
  }

  /**
   * A parsed route change (the FIB's 'foreignRouteChange'): a main-table route of one hop is applied to the view as
   * it is; anything else is left to the 'foreignRoute' event that follows (a dump of its protocol).
   */
  #event(added: boolean, route: KernelRoute): void {
    const own = this.#opts.ownProtocol ?? 171;
    if (this.#stopped || this.#present === null || route.table !== RT_TABLE_MAIN || route.protocol <= 1 || route.protocol === own) return;
    const key = routeKey(route.family, route.addr, route.len, route.metric);
    if (route.hops.length > 1 || !this.#whole(key)) return;
    this.#taken = true;
    this.applied++;
    this.#protocols.add(route.protocol);
    this.#present.add(route.protocol);
    if (this.#reading) this.#reported.add(route.protocol);
    this.#pending?.push({ added, route, key });
    this.#apply(added, route, key);
    if (this.#composeScheduled) return;
    this.#composeScheduled = true;
    // A burst of routes (Felix writing a host's workloads at start) makes one view, not one per route; and the
    // view waits a little, so that announcing a workload's route (src/daemon/kernel-learn.ts, the same event) goes
    // out first (composing is O(routes), then next hops are rechecked: work no announcement should wait for). In the
    // 10-host bench, composing in the same turn made the first peer's p50 3.5 ms instead of 2.4.
    const t = setTimeout(() => {
      this.#composeScheduled = false;
      if (this.#reading) this.#composeAfterRead = true;
      else this.#compose();
    }, COMPOSE_DELAY_MS);
    t.unref();
  }

  /** The entry under `key` can be changed from an event alone: no multipath route, no second route of that key. */
  #whole(key: string): boolean {
    for (const m of this.#routes.values()) {
      const r = m.get(key);
      if ((r !== undefined && r.hops.length > 1) || m.has(`${key}#1`)) return false;
    }
    return true;
  }

  #apply(added: boolean, route: KernelRoute, key: string): void {
    let went: HostRoute | undefined;
    let came: HostRoute | undefined;
    if (added) {
      // one destination and metric has one route: a replace may have changed its protocol
      for (const [p, m] of this.#routes) {
        const old = m.get(key);
        if (old === undefined || p === route.protocol) continue;
        went = old;
        m.delete(key);
        if (m.size === 0) this.#routes.delete(p);
      }
      let m = this.#routes.get(route.protocol);
      if (m === undefined) this.#routes.set(route.protocol, (m = new Map()));
      went = m.get(key) ?? went;
      came = hostRoute(route);
      m.set(key, came);
    } else {
      const m = this.#routes.get(route.protocol);
      went = m?.get(key);
      if (m?.delete(key) === true && m.size === 0) this.#routes.delete(route.protocol);
    }
    if (went?.type !== RTN_UNICAST) went = undefined;
    if (came?.type !== RTN_UNICAST) came = undefined;
    if (went !== undefined || came !== undefined) this.#delta.push({ ...(went ? { went } : {}), ...(came ? { came } : {}) });
  }

  /**
   * The consumers get what the route events since their last view changed (onRoutesChanged); false when that
   * cannot be told that way (no such consumer, no whole view given yet, an interface without a name), so a whole
   * view is composed instead.
   */
  #publishDelta(): boolean {
    const onDelta = this.#opts.onRoutesChanged;
    if (onDelta === undefined || this.#current === null) return false;
    const ops = this.#delta;
    const touched: HostRoute[] = [];
    for (const o of ops) {
      if (o.went) touched.push(o.went);
      if (o.came) touched.push(o.came);
    }
    const names = this.#names(touched);
    if (names === null) return false;
    this.#delta = [];
    // the texts: counted, so a prefix with two metrics goes only with the last of them
    const before = new Map<string, number>();
    const net = new Map<string, { r: ResolvingRoute; n: number }>();
    const count = (r: HostRoute, by: number): void => {
      const res = resolvingOf(r, names);
      const t = res.dst;
      if (!before.has(t)) before.set(t, this.#texts.get(t) ?? 0);
      const n = (this.#texts.get(t) ?? 0) + by;
      if (n > 0) this.#texts.set(t, n);
      else this.#texts.delete(t);
      // the same route (destination, metric, ways out) coming and going in one batch cancels out
      const k = `${t}|${res.metric ?? 0}|${JSON.stringify(res.hops)}`;
      const e = net.get(k);
      if (e === undefined) net.set(k, { r: res, n: by });
      else e.n += by;
    };
    for (const o of ops) {
      if (o.went) count(o.went, -1);
      if (o.came) count(o.came, +1);
    }
    const added: string[] = [];
    const removed: string[] = [];
    for (const [t, was] of before) {
      const now = this.#texts.get(t) ?? 0;
      if (was === 0 && now > 0) added.push(t);
      else if (was > 0 && now === 0) removed.push(t);
    }
    const addedResolving: ResolvingRoute[] = [];
    const removedResolving: ResolvingRoute[] = [];
    for (const { r, n } of net.values()) {
      if (n > 0) addedResolving.push(r);
      else if (n < 0) removedResolving.push(r);
    }
    this.#stale = true;
    // the next read gives the consumers a whole view again, whatever it finds
    this.#last = '';
    if (added.length + removed.length + addedResolving.length + removedResolving.length > 0) onDelta({ added, removed, addedResolving, removedResolving });
    return true;
  }

  /** The forwarding routes known now, of every protocol. */
  #forwarding(): HostRoute[] {
    return unicast([...this.#routes.values()].map((m) => m.values()));
  }

  /** The names of these routes' interfaces from the FIB's link table; null when it lacks one. */
  #names(routes: readonly HostRoute[]): Map<number, string> | null {
    return knownNames(routes, this.#opts.follow?.linkName?.bind(this.#opts.follow));
  }

  /** The view from the routes as they are and the addresses of the last read; no dump unless a name is missing. */
  #compose(): void {
    if (this.#stopped || this.#addrs === null) return;
    if (this.#delta.length === 0 || this.#publishDelta()) return;
    const all = this.#forwarding();
    const names = this.#names(all);
    if (names === null) {
      // an interface the FIB's table lacks: a read dumps the links
      this.#full = true;
      void this.#read(false);
      return;
    }
    this.#delta = [];
    this.#publish(compose(this.#addrs, all, names), all);
  }

  /** A whole view, to the consumers if it differs from the last they were given; `all` its forwarding routes. */
  #publish(r: Reachability, all: readonly HostRoute[]): void {
    this.#texts = textCounts(all);
    this.#stale = false;
    this.#current = r;
    // the gateways count too: a covering route that moves to another gateway changes where routes are installed
    const key = `${r.addresses.join(',')}|${JSON.stringify(r.resolving ?? r.routes)}`;
    if (key === this.#last) return;
    this.#last = key;
    this.#opts.onChange(r);
  }

  async #read(poll: boolean): Promise<void> {
    if (this.#stopped) return;
    if (this.#reading) {
      // a change came in during this read: read once more after it
      if (poll) this.#full = true;
      this.#again = true;
      return;
    }
    this.#reading = true;
    try {
      const present = this.#present;
      this.#reported.clear();
      let protocols: Set<number>;
      if (present === null) protocols = new Set(this.#protocols);
      else if (poll || this.#full) {
        protocols = new Set(present);
        const others = [...this.#protocols].filter((p) => !present.has(p)).sort((a, b) => a - b);
        for (let i = 0; i < Math.min(ROTATE, others.length); i++) protocols.add(others[(this.#turn + i) % others.length] as number);
        this.#turn = others.length === 0 ? 0 : (this.#turn + ROTATE) % others.length;
      } else protocols = new Set(this.#changed);
      this.#full = false;
      this.#changed.clear();
      if (protocols.size === 0) return;
      this.dumps += 2 * protocols.size;
      this.#reader ??= new HostReader(setIntOpt);
      this.#pending = [];
      let found: Map<number, HostRoute[]>;
      try {
        found = await dumpProtocols(this.#reader, protocols);
        for (const [p, rs] of found) if (rs.length > 0) this.#routes.set(p, keyed(rs));
        else this.#routes.delete(p);
        // what events applied while the dumps ran, again: a dump that passed a route before it changed is corrected
        for (const e of this.#pending) this.#apply(e.added, e.route, e.key);
      } finally {
        this.#pending = null;
      }
      if (this.#opts.onRoutes !== undefined) {
        const settled = new Set<number>();
        for (const p of protocols) if (!this.#reported.has(p)) settled.add(p);
        this.#opts.onRoutes(found, settled);
      }
      // a protocol dumped and found empty leaves the known ones, unless an event named it meanwhile (its dump may
      // have passed before the change)
      const next = new Set(this.#present ?? []);
      for (const p of protocols) if (this.#routes.has(p) || this.#reported.has(p)) next.add(p);
      else next.delete(p);
      for (const p of this.#reported) next.add(p);
      this.#present = next;
      const addrs = await this.#reader.addresses();
      // the routes as they are now: the route events applied before this point are in them (and leave the delta), the
      // ones that come while the links are dumped stay in the delta for the next compose
      const all = this.#forwarding();
      this.#delta = [];
      const names = this.#names(all) ?? await this.#reader.links();
      this.#addrs = addrs;
      this.#publish(compose(addrs, all, names), all);
    } catch (e) {
      // stop() may have run during the read (it closed the socket: that is the error then)
      const stopped = this.#stopped as boolean;
      if (!stopped) {
        this.#opts.onError(e instanceof Error ? e : new Error(String(e)));
        // a socket that failed is opened again by the next read, a poll (what failed is not known)
        this.#reader?.close();
        this.#reader = null;
        this.#full = true;
      }
    } finally {
      this.#reading = false;
      if (this.#again && !(this.#stopped as boolean)) {
        this.#again = false;
        void this.#read(false);
      } else if (this.#composeAfterRead) {
        this.#composeAfterRead = false;
        this.#compose();
      }
    }
  }
}
