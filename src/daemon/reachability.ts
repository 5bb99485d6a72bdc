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
// the FIB's own event socket (fib/event-reader.ts passes routes of other protocols in the main and local tables on,
// as the Programmer's 'foreignRoute' event; skein's own writes never get that far): once a burst is over, it dumps
// again the protocols the events named (the others' routes are kept from their last dump). After each of the FIB's
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
import { HostReader, formatAddress, type HostHop, type HostRoute } from '../../fib/index.js';

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
}

/**
 * A source of 'foreignRoute' events (fib's Programmer is one): the protocol number of a route that changed; and of
 * 'resync' events: the FIB dumps because notifications may have been lost (an overrun, a bulk write with the route
 * groups off, a link change: the kernel flushes a downed link's routes without a notification per route).
 */
export interface RouteChanges {
  on(event: 'foreignRoute', listener: (protocol: number) => void): unknown;
  off(event: 'foreignRoute', listener: (protocol: number) => void): unknown;
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

/** protocols without routes dumped per poll, in turn, besides those known to have routes */
const ROTATE = 2;
/** rtm_type of a route that forwards: unreachable, blackhole, prohibit, throw cover an address but forward nothing */
const RTN_UNICAST = 1;
const RT_TABLE_MAIN = 254;

/** One read of the kernel: host addresses, and the routes that resolve next hops (of `protocols`). */
export async function readReachability(protocols: ReadonlySet<number> = resolvingProtocols(171), reader?: HostReader): Promise<Reachability> {
  const own = reader ?? new HostReader(setIntOpt);
  try {
    return await view(own, await dumpProtocols(own, protocols));
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
async function view(reader: HostReader, byProtocol: ReadonlyMap<number, readonly HostRoute[]>,
  known?: (ifindex: number) => string | undefined): Promise<Reachability> {
  const addrs = await reader.addresses();
  const all = [...byProtocol.values()].flat().filter((r) => r.type === RTN_UNICAST);
  const names = new Map<number, string>();
  let missing = false;
  for (const r of all) {
    for (const h of r.hops) {
      if (h.ifindex === undefined || names.has(h.ifindex)) continue;
      const n = known?.(h.ifindex);
      if (n !== undefined) names.set(h.ifindex, n);
      else missing = true;
    }
  }
  if (missing) for (const [i, n] of await reader.links()) names.set(i, n);
  const addresses = addrs.map(addressText);
  const routes: string[] = [];
  const resolving: ResolvingRoute[] = [];
  for (const r of all) {
    const full = r.family === 4 ? 32 : 128;
    // iproute2's text: a host route is its address alone; a route without a destination is the default route
    const dst = r.dst !== undefined
      ? (r.dstLen === full ? addressText(r.dst) : `${addressText(r.dst)}/${r.dstLen}`)
      : r.dstLen === 0 ? (r.family === 4 ? '0.0.0.0/0' : '::/0') : `0/${r.dstLen}`;
    routes.push(dst);
    // a route out through a gateway of the other family only: it covers the next hop, but skein cannot install
    // through it; it resolves as a link route would (the next hop as gateway), which the kernel then refuses
    // visibly (skeinctl fib), rather than being dropped here unseen
    const known = r.hops.map((h) => viaOf(h, names)).filter((h): h is ViaHop => h !== undefined);
    resolving.push({ dst, hops: known, ...(r.metric !== undefined ? { metric: r.metric } : {}) });
  }
  resolving.sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : (a.metric ?? 0) - (b.metric ?? 0)));
  return { addresses: [...new Set(addresses)].sort(), routes: [...new Set(routes)].sort(), resolving };
}

/** Polls the kernel and reports each change of what the host reaches. */
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
  /** the last dump's routes of each protocol that had any (both families) */
  readonly #routes = new Map<number, HostRoute[]>();
  /** where the turn of the protocols without routes is */
  #turn = 0;
  /** dumps asked of the kernel so far (tests: what a poll costs) */
  dumps = 0;
  readonly #opts: ReachabilityOptions;
  readonly #onRoute = (protocol: number): void => this.routeChanged(protocol);
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

  /** the last view read, or null before the first read succeeded */
  get current(): Reachability | null {
    return this.#current;
  }

  /** First read (awaited, so the speaker never starts without it when the kernel answers), then poll. */
  async start(): Promise<void> {
    this.#opts.follow?.on('foreignRoute', this.#onRoute);
    this.#opts.follow?.on('resync', this.#onResync);
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#opts.intervalMs ?? 10_000);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
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
   * A route of another protocol changed in the main or local table (the FIB's 'foreignRoute' event): learn its
   * protocol number, and once the burst is over (100 ms quiet) dump that protocol again (both families, the other
   * protocols' routes as last read); 0: something of no known protocol may have changed (the FIB's resync), a poll.
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
      const found = await dumpProtocols(this.#reader, protocols);
      for (const [p, rs] of found) if (rs.length > 0) this.#routes.set(p, rs);
      else this.#routes.delete(p);
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
      const r = await view(this.#reader, this.#routes, this.#opts.follow?.linkName?.bind(this.#opts.follow));
      // the gateways count too: a covering route that moves to another gateway changes where routes are installed
      const key = `${r.addresses.join(',')}|${JSON.stringify(r.resolving ?? r.routes)}`;
      if (key === this.#last) return;
      this.#last = key;
      this.#current = r;
      this.#opts.onChange(r);
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
      }
    }
  }
}
