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
// It reads with iproute2 in one process (`ip -j -batch -`, a dump per protocol, which the kernel filters by table
// and protocol: strict dump checking), so a million skein routes in the same table are never copied out. The
// protocols are the ones iproute2 names (rt_protos and rt_protos.d) and the well-known ones, except skein's; a route
// change of any other protocol number seen on the monitor adds it. It follows changes with `ip -o monitor route`
// (rtnetlink's route groups), skein's own lines dropped by grep before they reach this process, re-reading once a
// burst is over; and it still polls, in case the monitor dies or misses something. Fed only when skeind programs
// the kernel: without a FIB, skein is not this host's router and every well-formed next hop counts as resolvable.
// Cost: each dump walks the whole table in the kernel, skein's million routes included, even when it returns none
// (~140 ms of system time at 1M routes); dumping twenty-odd protocols every poll took seconds of CPU and, on a
// loaded machine, over the 10 s limit (bench/control.ts). So after a first full read, a poll dumps the protocols
// known to have routes (found by a dump, or seen on the monitor) and ROTATE of the others in turn: every protocol is
// still read every few polls, and a poll's cost stays bounded whatever the number of protocols.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Reachability, ResolvingRoute, ViaHop } from '../../bgp/index.js';

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
  /** follow route changes with `ip monitor` (default true) */
  readonly monitor?: boolean;
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

/** protocols without routes dumped per poll, in turn, besides those known to have routes */
const ROTATE = 2;

/** Dumps of the main table for each protocol, of one family, in one `ip -j -batch -` (one JSON array a line). */
function readRoutes(bin: string, fam: '-4' | '-6', protocols: ReadonlySet<number>): Promise<{ fam: '-4' | '-6'; proto: number; rs: IpRoute[] }[]> {
  const order = [...protocols].sort((a, b) => a - b);
  const cmds = order.map((p) => `route show table main proto ${p}`);
  return new Promise((resolve, reject) => {
    const child = execFile(bin, [fam, '-j', '-batch', '-'], { timeout: 10_000, maxBuffer: 64 << 20 }, (err, stdout) => {
      if (err) return reject(new Error(`ip ${fam} -batch (route dumps): ${err.message}`, { cause: err }));
      const lines = stdout.split('\n').filter((l) => l.trim() !== '');
      if (lines.length !== cmds.length) return reject(new Error(`ip ${fam} -batch (route dumps): ${lines.length} answers to ${cmds.length} dumps`));
      try {
        resolve(lines.map((l, i) => {
          const v = JSON.parse(l) as unknown;
          return { fam, proto: order[i] as number, rs: Array.isArray(v) ? (v as IpRoute[]) : [] };
        }));
      } catch (e) {
        reject(new Error(`ip ${fam} -batch (route dumps): unreadable output: ${(e as Error).message}`));
      }
    });
    child.stdin?.end(`${cmds.join('\n')}\n`);
  });
}

/** One read of the kernel: host addresses, and the routes that resolve next hops (of `protocols`). */
export async function readReachability(bin = 'ip', protocols: ReadonlySet<number> = resolvingProtocols(171)): Promise<Reachability> {
  return (await readWithProtocols(bin, protocols)).reach;
}

/** readReachability, and the protocols that had at least one route. */
async function readWithProtocols(bin: string, protocols: ReadonlySet<number>): Promise<{ reach: Reachability; present: Set<number> }> {
  const [addrs, v4, v6] = await Promise.all([ipJson<IpAddr>(bin, ['addr', 'show']), readRoutes(bin, '-4', protocols), readRoutes(bin, '-6', protocols)]);
  const routeSets = [...v4, ...v6];
  const present = new Set(routeSets.filter((x) => x.rs.length > 0).map((x) => x.proto));
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
  return { reach: { addresses: [...new Set(addresses)].sort(), routes: [...new Set(routes)].sort(), resolving }, present };
}

/** Polls the kernel and reports each change of what the host reaches. */
export class KernelReachability {
  #timer: NodeJS.Timeout | null = null;
  #monitor: ChildProcess | null = null;
  #burst: NodeJS.Timeout | null = null;
  #again = false;
  #stopped = false;
  readonly #protocols: Set<number>;
  readonly #names: Map<string, number>;
  #last = '';
  #current: Reachability | null = null;
  #reading = false;
  /** protocols known to have routes (their last dump found some, or the monitor saw one); null: no full read yet */
  #present: Set<number> | null = null;
  /** protocols the monitor reported since the current read began */
  readonly #reported = new Set<number>();
  /** where the turn of the protocols without routes is */
  #turn = 0;
  /** dumps asked of the kernel so far (tests: what a poll costs) */
  dumps = 0;
  readonly #opts: ReachabilityOptions;

  constructor(opts: ReachabilityOptions) {
    this.#opts = opts;
    this.#names = protocolNames();
    this.#protocols = resolvingProtocols(opts.ownProtocol ?? 171, this.#names);
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
    if (this.#opts.monitor !== false) this.#follow();
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#opts.intervalMs ?? 10_000);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#burst) clearTimeout(this.#burst);
    this.#burst = null;
    const m = this.#monitor;
    this.#monitor = null;
    if (m?.pid !== undefined) {
      try {
        process.kill(-m.pid, 'SIGTERM'); // its process group: the shell, ip and grep
      } catch {
        // already gone
      }
    }
  }

  /**
   * Route changes from rtnetlink (`ip -o monitor route`), skein's own dropped by grep in the child so a million
   * writes of ours never reach this process; each other change re-reads once the burst is over (100 ms quiet).
   * A monitor that dies is started again after the poll interval; the poll covers the gap.
   */
  #follow(): void {
    const own = this.#opts.ownProtocol ?? 171;
    const ownNames = [...this.#names].filter(([, n]) => n === own).map(([name]) => name.replace(/[^A-Za-z0-9_-]/g, ''));
    const pattern = `proto (${[String(own), ...ownNames].join('|')})( |$)`;
    const bin = (this.#opts.ip ?? 'ip').replace(/'/g, '');
    // The shell waits on its stdin, which only this process holds: when skeind goes (even by kill -9), read returns
    // and the whole group (ip, grep, the shell) is ended, never left behind in a namespace.
    const script = `'${bin}' -o monitor route | grep --line-buffered -v -E '${pattern}' & read _; kill 0`;
    const child = spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
    this.#monitor = child;
    child.on('error', (e) => this.#opts.onError(new Error(`ip monitor route: ${e.message}`, { cause: e })));
    child.on('exit', () => {
      if (this.#monitor !== child || this.#stopped) return;
      this.#monitor = null;
      setTimeout(() => {
        if (!this.#stopped && this.#monitor === null) this.#follow();
      }, this.#opts.intervalMs ?? 10_000).unref();
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => this.#changed(line));
  }

  /** One monitor line (a route of another origin changed): learn its protocol number, re-read soon. */
  #changed(line: string): void {
    const m = /\bproto (\S+)/.exec(line);
    // iproute2 leaves out "proto boot" (3), the default
    const name = m === null ? 'boot' : (m[1] as string);
    const n = /^\d+$/.test(name) ? Number(name) : name === 'boot' ? 3 : this.#names.get(name);
    if (n !== undefined && n !== (this.#opts.ownProtocol ?? 171) && n > 1) {
      if (!this.#protocols.has(n)) this.#protocols.add(n);
      // dumped by the next polls, even the partial ones
      this.#present?.add(n);
      this.#reported.add(n);
    }
    if (this.#burst) clearTimeout(this.#burst);
    this.#burst = setTimeout(() => {
      this.#burst = null;
      void this.refresh();
    }, 100);
    this.#burst.unref();
  }

  /** Read now; reports a change through onChange. Never throws. */
  async refresh(): Promise<void> {
    if (this.#reading) {
      this.#again = true; // a change came in during this read: read once more after it
      return;
    }
    this.#reading = true;
    try {
      const present = this.#present;
      this.#reported.clear();
      let protocols: Set<number>;
      if (present === null) protocols = new Set(this.#protocols);
      else {
        protocols = new Set(present);
        const others = [...this.#protocols].filter((p) => !present.has(p)).sort((a, b) => a - b);
        for (let i = 0; i < Math.min(ROTATE, others.length); i++) protocols.add(others[(this.#turn + i) % others.length] as number);
        this.#turn = others.length === 0 ? 0 : (this.#turn + ROTATE) % others.length;
      }
      this.dumps += 2 * protocols.size;
      const { reach: r, present: found } = await readWithProtocols(this.#opts.ip ?? 'ip', protocols);
      // a protocol dumped and found empty leaves the known ones, unless the monitor saw it meanwhile (its dump may
      // have passed before the change)
      const next = new Set(this.#present ?? []);
      for (const p of protocols) if (found.has(p) || this.#reported.has(p)) next.add(p);
      else next.delete(p);
      for (const p of this.#reported) next.add(p);
      this.#present = next;
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
      if (this.#again && !this.#stopped) {
        this.#again = false;
        void this.refresh();
      }
    }
  }
}
