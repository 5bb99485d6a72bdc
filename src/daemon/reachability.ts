// What this host reaches without BGP, read from the kernel, for next-hop resolution (RFC 4271 §9.1.2; the engine
// side is bgp/rib/next-hop.ts). A BGP next hop is resolvable when a main-table route of a non-BGP origin covers it:
// connected subnets (proto kernel), routes set at boot, by an operator or by DHCP/RA (boot, static, dhcp, ra),
// including a default route — Calico nodes commonly reach each other through one, and BIRD as Calico configures it
// resolves next hops through the kernel table the same way. skein's own routes (its fib protocol) are never used:
// a next hop must not resolve through the very path it belongs to. The routes' gateways are read too: a next hop
// covered by a route through a gateway (not a link route) is installed via that gateway (bgp/rib/nexthop-resolve.ts,
// src/daemon/routes.ts setResolver), and a change of that gateway moves the routes using it.
//
// It reads with iproute2 (`ip -j`), whose dumps the kernel filters by table and protocol (strict dump checking), so
// a million skein routes in the same table cost nothing here; it polls, as these routes change rarely and a
// missed change only delays the verdict by one interval. Fed only when skeind programs the kernel: without a FIB,
// skein is not this host's router and every well-formed next hop counts as resolvable.
import { execFile } from 'node:child_process';
import type { Reachability, ResolvingRoute, ViaHop } from '../../bgp/index.js';

/** Route origins that count (rtnetlink RTPROT_*): kernel 2, boot 3, static 4, ra 9, dhcp 16. */
export const RESOLVING_PROTOCOLS = ['kernel', 'boot', 'static', 'ra', 'dhcp'] as const;

export interface ReachabilityOptions {
  /** poll interval, ms (default 10 s) */
  readonly intervalMs?: number;
  /** called with the new view whenever it differs from the last one */
  readonly onChange: (r: Reachability) => void;
  /** a read that failed (the last good view stays in force) */
  readonly onError: (e: Error) => void;
  /** iproute2 binary (tests) */
  readonly ip?: string;
}

interface IpHop {
  gateway?: string;
  /** a gateway of the other family (RFC 5549 `via inet6`): iproute2 writes it here, not in `gateway` */
  via?: { family?: string; host?: string };
  dev?: string;
  flags?: string[];
}
interface IpRoute extends IpHop {
  dst?: string;
  type?: string;
  metric?: number;
  /** a multipath route's next hops */
  nexthops?: IpHop[];
}

/** A kernel route's way out, for recursive next-hop resolution; undefined for a gateway of the other family. */
function viaOf(h: IpHop): ViaHop | undefined {
  if (h.via !== undefined) return undefined; // skein's FIB writes gateways of the route's own family only
  return {
    ...(h.gateway !== undefined ? { gateway: h.gateway } : {}),
    ...(h.dev !== undefined ? { dev: h.dev } : {}),
    ...(h.flags?.includes('onlink') === true ? { onlink: true } : {}),
  };
}
interface IpAddr {
  addr_info?: { local?: string }[];
}

function ipJson<T>(bin: string, args: readonly string[]): Promise<T[]> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['-j', ...args], { timeout: 10_000, maxBuffer: 16 << 20 }, (err, stdout) => {
      if (err) return reject(new Error(`ip ${args.join(' ')}: ${err.message}`, { cause: err }));
      try {
        const v = JSON.parse(stdout.trim() === '' ? '[]' : stdout) as unknown;
        resolve(Array.isArray(v) ? (v as T[]) : []);
      } catch (e) {
        reject(new Error(`ip ${args.join(' ')}: unreadable output: ${(e as Error).message}`));
      }
    });
  });
}

/** One read of the kernel: host addresses, and the routes that resolve next hops. */
export async function readReachability(bin = 'ip'): Promise<Reachability> {
  const routeReads = RESOLVING_PROTOCOLS.flatMap((proto) =>
    (['-4', '-6'] as const).map((fam) => ipJson<IpRoute>(bin, [fam, 'route', 'show', 'table', 'main', 'proto', proto]).then((rs) => ({ fam, rs }))),
  );
  const [addrs, ...routeSets] = await Promise.all([ipJson<IpAddr>(bin, ['addr', 'show']), ...routeReads]);
  const addresses = addrs.flatMap((a) => (a.addr_info ?? []).map((i) => i.local).filter((x): x is string => typeof x === 'string'));
  const routes: string[] = [];
  const resolving: ResolvingRoute[] = [];
  for (const { fam, rs } of routeSets) {
    for (const r of rs) {
      // unreachable, blackhole, prohibit, throw: they cover an address but forward nothing
      if (r.dst === undefined || (r.type !== undefined && r.type !== 'unicast')) continue;
      const dst = r.dst === 'default' ? (fam === '-4' ? '0.0.0.0/0' : '::/0') : r.dst;
      routes.push(dst);
      const hops = (r.nexthops ?? [r]).map(viaOf);
      // a route out through a gateway of the other family only: it covers the next hop, but skein cannot install
      // through it; it resolves as a link route would (the next hop as gateway), which the kernel then refuses
      // visibly (skeinctl fib), rather than being dropped here unseen
      const known = hops.filter((h): h is ViaHop => h !== undefined);
      resolving.push({ dst, hops: known, ...(r.metric !== undefined ? { metric: r.metric } : {}) });
    }
  }
  resolving.sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : (a.metric ?? 0) - (b.metric ?? 0)));
  return { addresses: [...new Set(addresses)].sort(), routes: [...new Set(routes)].sort(), resolving };
}

/** Polls the kernel and reports each change of what the host reaches. */
export class KernelReachability {
  #timer: NodeJS.Timeout | null = null;
  #last = '';
  #current: Reachability | null = null;
  #reading = false;
  readonly #opts: ReachabilityOptions;

  constructor(opts: ReachabilityOptions) {
    this.#opts = opts;
  }

  /** the last view read, or null before the first read succeeded */
  get current(): Reachability | null {
    return this.#current;
  }

  /** First read (awaited, so the speaker never starts without it when the kernel answers), then poll. */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#opts.intervalMs ?? 10_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Read now; reports a change through onChange. Never throws. */
  async refresh(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      const r = await readReachability(this.#opts.ip);
      // the gateways count too: a covering route that moves to another gateway changes where routes are installed
      const key = `${r.addresses.join(',')}|${JSON.stringify(r.resolving ?? r.routes)}`;
      if (key === this.#last) return;
      this.#last = key;
      this.#current = r;
      this.#opts.onChange(r);
    } catch (e) {
      this.#opts.onError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.#reading = false;
    }
  }
}
