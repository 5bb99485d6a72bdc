// The host's own view for src/'s next-hop reachability (src/daemon/reachability.ts): routes of one protocol in one
// table, the host's addresses and its interface names, read over rtnetlink on this thread (no `ip` process).
//
// Route dumps are filtered in the kernel by table and protocol: with NETLINK_GET_STRICT_CHK set on the socket (Linux
// 4.20), the rtmsg of a dump request is a filter (ip_valid_fib_dump_req in net/ipv4/fib_frontend.c; IPv6 uses the
// same), so a million routes of skein's own protocol in the same table are walked by the kernel but never copied
// out. Setting that option needs setsockopt on the socket's descriptor, which the netlink package does not expose:
// the caller passes a setsockopt (src/ has one in bgp/'s native addon; fib/ imports nothing from bgp/), and the
// descriptor is found by the socket's port in /proc/self/net/netlink. Without the option (an older kernel, or no
// setsockopt given) every dump returns the whole table, and the routes of other protocols are dropped here: correct,
// but it copies out skein's routes too, so `strict` says which it is.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { RawNetlinkSocket } from 'netlink/dist/raw.js';
import {
  AF_INET, AF_INET6, IFA_ADDRESS, IFA_LOCAL, IFADDRMSG_LEN, IFINFOMSG_LEN, NETLINK_GET_STRICT_CHK, NLMSG_HDRLEN,
  RTM_GETADDR, RTM_GETLINK, RTM_GETROUTE, RTMSG_LEN, SOL_NETLINK,
} from './constants.js';
import { align4, parseLink, parseRoute } from './codec.js';
import { BIG_READ, DumpError, dump, openSocket } from './kernel.js';

/** One way out of a host route, as the kernel gives it. */
export interface HostHop {
  /** RTA_GATEWAY (the route's family) */
  readonly gateway?: Uint8Array;
  /** the hop has RTA_VIA: a gateway of the other family (RFC 5549) */
  readonly otherFamily: boolean;
  /** RTA_OIF / rtnh_ifindex; undefined when the kernel gave none */
  readonly ifindex?: number;
  /** RTNH_F_ONLINK in rtm_flags (one hop) or rtnh_flags (a multipath hop) */
  readonly onlink: boolean;
}

/** A route of the host, as the kernel gives it. */
export interface HostRoute {
  readonly family: 4 | 6;
  /** RTA_DST, or undefined (the default route) */
  readonly dst?: Uint8Array;
  readonly dstLen: number;
  /** rtm_type: RTN_UNICAST 1, blackhole 6, unreachable 7, prohibit 8, throw 9... */
  readonly type: number;
  readonly protocol: number;
  /** RTA_PRIORITY when the kernel gave one (IPv4 routes of metric 0 have none) */
  readonly metric?: number;
  /** RTA_MULTIPATH's hops, or the route's one hop */
  readonly hops: readonly HostHop[];
}

/** setsockopt(fd, level, name, int value) */
export type SetIntOpt = (fd: number, level: number, name: number, value: number) => void;

/** The descriptor of this process's NETLINK_ROUTE socket bound to `port`, from /proc; undefined when not found. */
export function netlinkFd(port: number): number | undefined {
  let inode: string | undefined;
  // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode (net/netlink/af_netlink.c, netlink_seq_show)
  for (const line of readFileSync('/proc/self/net/netlink', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && f[1] === '0' && Number(f[2]) === port) inode = f[9];
  }
  if (inode === undefined) return undefined;
  const want = `socket:[${inode}]`;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === want) return Number(fd);
    } catch {
      // closed meanwhile (the directory's own descriptor among them)
    }
  }
  return undefined;
}

/** A dump socket for the host's routes, addresses and links; one dump at a time (the callers await each). */
export class HostReader {
  readonly #sock: RawNetlinkSocket;
  #seq = 1;
  /** the kernel filters route dumps by table and protocol (NETLINK_GET_STRICT_CHK is set) */
  readonly strict: boolean;
  readonly #timeoutMs: number;
  #closed = false;

  constructor(setIntOpt?: SetIntOpt, timeoutMs = 10_000) {
    // Replies only to our own requests. Reads of 8 KiB, not the dump-sized 32 KiB: the package allocates a read
    // buffer per datagram, freed only when V8 collects the Buffer (it does not know its size), and an idle skeind
    // collects seldom; a strict dump's few routes and the addresses fit (the kernel sizes dump datagrams to the reads
    // it has seen; the unfiltered dump of a kernel without strict checking takes more of them).
    this.#sock = openSocket(1 << 20, 1 << 16, 8192);
    this.#sock.unref(); // referenced only while a dump runs
    this.#timeoutMs = timeoutMs;
    let strict = false;
    if (setIntOpt) {
      try {
        const fd = netlinkFd(this.#sock.address().port);
        if (fd !== undefined) {
          setIntOpt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
          strict = true;
        }
      } catch {
        // ENOPROTOOPT before Linux 4.20: dumps are filtered here instead
      }
    }
    this.strict = strict;
  }

  /** Close the socket (idempotent); a dump under way rejects. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.close();
  }

  async #dump(type: number, family: number, headerLen: number, onMessage: (b: Buffer, o: number, l: number) => void,
    fill?: (req: Buffer) => void): Promise<void> {
    this.#sock.ref();
    try {
      await dump(this.#sock, type, family, headerLen, this.#seq++, this.#timeoutMs, onMessage, fill);
    } finally {
      if (!this.#closed) this.#sock.unref(); // the package throws on a closed socket's unref
    }
  }

  /**
   * The routes of `protocol` in `table` (< 256) of one family. A dump the kernel flags as interrupted (the table
   * changed under it: NLM_F_DUMP_INTR) is taken again, twice at most; then its routes are used as they are, as
   * iproute2 does (it warns and prints them): the change that interrupted it causes another read anyway.
   */
  async routes(family: 4 | 6, table: number, protocol: number): Promise<HostRoute[]> {
    for (let attempt = 0; ; attempt++) {
      const out: HostRoute[] = [];
      try {
        await this.#dump(RTM_GETROUTE, family === 4 ? AF_INET : AF_INET6, RTMSG_LEN, (b, o, l) => {
          if (b[o + NLMSG_HDRLEN + 5] !== protocol) return; // not strict: skipped before anything is parsed
          const r = parseHostRoute(b, o, l);
          if (r !== undefined && r.table === table) out.push(r.route);
        }, (req) => {
          // struct rtmsg: rtm_table (4), rtm_protocol (5) are the strict dump's filters; the rest stays zero
          req[NLMSG_HDRLEN + 4] = table;
          req[NLMSG_HDRLEN + 5] = protocol;
        });
        return out;
      } catch (e) {
        if (!(e instanceof DumpError && e.code === 'EINTR')) throw e;
        if (attempt >= 2) return out;
      }
    }
  }

  /** The host's addresses (IFA_LOCAL, else IFA_ADDRESS, as iproute2 shows them), both families. */
  async addresses(): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    await this.#dump(RTM_GETADDR, 0, IFADDRMSG_LEN, (b, o, l) => {
      const h = o + NLMSG_HDRLEN;
      if (l < NLMSG_HDRLEN + IFADDRMSG_LEN) return;
      const af = b[h];
      const alen = af === AF_INET ? 4 : af === AF_INET6 ? 16 : 0;
      if (alen === 0) return;
      let local: Uint8Array | undefined, address: Uint8Array | undefined;
      forAttrs(b, h + IFADDRMSG_LEN, o + l, (t, p, n) => {
        if (n !== alen) return;
        if (t === IFA_LOCAL) local = Uint8Array.from(b.subarray(p, p + n));
        else if (t === IFA_ADDRESS) address = Uint8Array.from(b.subarray(p, p + n));
      });
      const a = local ?? address;
      if (a !== undefined) out.push(a);
    });
    return out;
  }

  /**
   * Interface index -> name, on a socket of its own with 32 KiB reads, the most the kernel puts in a dump datagram
   * (a link message can be bigger than this socket's 8 KiB reads: a NIC with many VFs); a rare read, when the
   * caller's table lacks a name (src/daemon/reachability.ts).
   */
  async links(): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    const sock = openSocket(1 << 20, 1 << 16, BIG_READ);
    try {
      await dump(sock, RTM_GETLINK, 0, IFINFOMSG_LEN, this.#seq++, this.#timeoutMs, (b, o, l) => {
        const li = parseLink(b, o, l);
        if (li?.name !== undefined) out.set(li.index, li.name);
      });
    } finally {
      sock.close();
    }
    return out;
  }
}

function forAttrs(b: Buffer, from: number, to: number, each: (type: number, payload: number, len: number) => void): void {
  const end = Math.min(to, b.length);
  for (let a = from; a + 4 <= end;) {
    const l = b.readUInt16LE(a);
    if (l < 4 || a + l > end) break; // malformed: stop rather than read past the message
    each(b.readUInt16LE(a + 2) & 0x3fff, a + 4, l - 4);
    a += align4(l);
  }
}

/**
 * A route message as a HostRoute and its table (RTA_TABLE when present), or undefined if it is not IPv4/IPv6: the
 * FIB's own parser (codec.ts parseRoute) in the shape iproute2 gave (no destination for the default route, no
 * metric where the kernel sends none — an IPv4 route of metric 0 — and a hop with neither gateway nor device for a
 * unicast route that names none).
 */
export function parseHostRoute(b: Buffer, o: number, l: number): { route: HostRoute; table: number } | undefined {
  const k = parseRoute(b, o, l);
  if (k === undefined) return undefined;
  const hops: HostHop[] = k.hops.length > 0
    ? k.hops.map((h) => ({
      ...(h.gateway !== undefined ? { gateway: h.gateway } : {}),
      otherFamily: h.otherFamily === true,
      ...(h.ifindex !== 0 ? { ifindex: h.ifindex } : {}),
      onlink: h.onlink,
    }))
    : [{ otherFamily: false, onlink: false }];
  const route: HostRoute = {
    family: k.family, ...(k.len > 0 ? { dst: k.addr } : {}), dstLen: k.len, type: k.type, protocol: k.protocol,
    ...(k.metric !== 0 ? { metric: k.metric } : {}), hops,
  };
  return { route, table: k.table };
}
