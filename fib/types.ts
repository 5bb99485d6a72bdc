// fib/'s own vocabulary. The FIB takes bytes and numbers (what netlink wants),
// never strings on the hot path, and imports nothing from bgp/ or config/.

/** Address family of a route: 4 (AF_INET) or 6 (AF_INET6). */
export type Family = 4 | 6;

/** One next hop of a unicast route. At least one of gateway, ifindex, dev. */
export interface NextHop {
  /** Gateway address: 4 bytes for an IPv4 route, 16 for IPv6. */
  readonly gateway?: Uint8Array;
  /** Outgoing interface by index. */
  readonly ifindex?: number;
  /**
   * Outgoing interface by name. Resolved to its current index when programmed, so a workload interface that is
   * deleted and created again (new index, same name) gets its route back. Takes precedence over ifindex.
   */
  readonly dev?: string;
  /** Treat the gateway as directly reachable on the device even without a covering connected route (RTNH_F_ONLINK). */
  readonly onlink?: boolean;
  /** ECMP weight, 1..256 (default 1). */
  readonly weight?: number;
}

/**
 * What a prefix points at. Reuse the same object for many prefixes: fib/ interns targets by identity first
 * (a WeakMap lookup), then by value, so a million routes over a handful of next-hop sets cost a handful of targets.
 */
export type Target =
  /** Gateway and/or device routes; several hops make one multipath route (RTA_MULTIPATH). */
  | { readonly hops: readonly NextHop[]; readonly blackhole?: undefined }
  /** Silently drop (RTN_BLACKHOLE): Calico blackholes its affine IPAM blocks. */
  | { readonly blackhole: true; readonly hops?: undefined };

/** Where a route lives; the defaults come from ProgrammerOptions. */
export interface Placement {
  /** Routing table id (1..2^32-1), default main (254). */
  readonly table?: number;
  /** Route metric / priority (RTA_PRIORITY). IPv6 stores 0 as 1024, so fib/ does the same. */
  readonly metric?: number;
}

/** Events of a Programmer. */
export interface ProgrammerEvents {
  batch: [BatchReport];
  failure: [RouteView];
  resync: [string];
  overrun: [string];
  warning: [Error];
  /**
   * A route of another protocol (its number) was added, changed or deleted in the main or local table; not while a
   * bulk write has the route notifications off (writer.ts), so a reader of those routes still polls.
   */
  foreignRoute: [number];
  /**
   * The same change, parsed, for a reader that learns those routes (src/daemon/kernel-learn.ts: Calico's BIRD
   * `learn`): true for RTM_NEWROUTE, false for RTM_DELROUTE. Only parsed while something listens.
   */
  foreignRouteChange: [boolean, KernelRoute];
}

/** A prefix as bytes: family, address (4 or 16 bytes; host bits are masked off) and length. */
export interface Prefix {
  readonly family: Family;
  readonly addr: Uint8Array;
  readonly len: number;
}

/** Options of a Programmer. Everything has a default. */
export interface ProgrammerOptions {
  /** rtm_protocol skein's routes are tagged with (default RTPROT_SKEIN = 171; "skein" in fib/skein.conf). */
  readonly protocol?: number;
  /** Default table (254, main). */
  readonly table?: number;
  /** Default metric (0). */
  readonly metric?: number;
  /** Route messages per netlink send (default 1000). */
  readonly batchSize?: number;
  /**
   * Batches sent and not yet acknowledged (default 32 with the request thread, 8 without). The request thread works
   * through them while the programming thread is busy elsewhere (reading BGP): with 8, the kernel sat idle between
   * that thread's turns and a million routes reached it ~2 s after the last UPDATE (issue 16).
   */
  readonly maxInFlight?: number;
  /** A batch whose acknowledgement has not arrived after this long is treated as lost: resync (default 5000 ms). */
  readonly requestTimeoutMs?: number;
  /** Back-off for routes the kernel refused: first retry after retryMinMs, doubling up to retryMaxMs. */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /**
   * When at least this many changes are queued, route notifications are switched off until they are written and
   * one dump follows (reading a notification per own write costs more than the write). Default: a quarter of
   * the routes held, at least 2,000 and at most 20,000.
   */
  readonly bulkThreshold?: number;
  /** How long kernel route/link events are gathered before a resync dump runs (default 50 ms). */
  readonly resyncDelayMs?: number;
  /** A resync waits while a burst of writes is going out, but no longer than this (default 5000 ms). */
  readonly resyncMaxDeferMs?: number;
  /** Socket receive buffer (default 8 MiB; the kernel caps it at net.core.rmem_max). */
  readonly recvBufferSize?: number;
  /**
   * Install gateway routes through kernel nexthop objects (Linux >= 5.3) where the kernel has them (detected at
   * start; plain routes otherwise): a dead next hop is then one message (nextHopDown). Default true.
   */
  readonly nexthopObjects?: boolean;
  /**
   * Send route writes from a thread of their own (request-thread.ts): the kernel does its work inside sendmsg(), on
   * the sending thread, so on the caller's thread it competes with everything else the process does. Default true.
   */
  readonly requestThread?: boolean;
  /**
   * Read the kernel's notifications in a worker thread of its own instead of on the caller's thread. Bulk mode stops
   * the route notifications for a burst, so on the caller's thread the reader costs a route's echo at a time, read in
   * the same turn as the write's ACK; a worker costs a thread wake-up per route written and ~9 MiB of RSS. Default
   * false.
   */
  readonly eventThread?: boolean;
  /**
   * The request thread starts when a write first needs it (more than 256 routes or 32 KiB at once, a burst, a write
   * while a batch is unanswered on it; writer.ts DIRECT_MAX), or at `prepare()`, and stops after this many ms
   * without one, with nothing awaiting an answer (an idle Node worker holds ~9 MiB); 0: once started it stays.
   * Default 60000.
   */
  readonly requestThreadIdleMs?: number;
  /**
   * How often the kernel's nexthop objects are compared with what fib/ wrote (a dump of the objects only; every
   * full resync does it too, and so does a refused write of a route through an object), in ms; 0: only then.
   * An object deleted without fib/ seeing it (a notification lost in an event-socket overrun, a carrier flap whose
   * link events were lost) is re-created with its routes. Default 10000.
   */
  readonly nexthopCheckMs?: number;
}

/** Why a route is not in the kernel as desired: the kernel's errno name (ENETUNREACH, ENODEV, EEXIST, ...). */
export interface RouteFailure {
  readonly code: string;
  /** Human-readable reason, e.g. "Network is unreachable" or "interface cali1 does not exist". */
  readonly message: string;
  /** How many attempts failed in a row. */
  readonly attempts: number;
  /** Date.now() of the last failure. */
  readonly at: number;
  /** Date.now() of the next retry. */
  readonly retryAt: number;
}

/** One next hop as the kernel reports it. */
export interface KernelHop {
  readonly gateway: Uint8Array | undefined;
  /** 0 when the kernel reports none */
  readonly ifindex: number;
  readonly onlink: boolean;
  readonly weight: number;
  /** RTNH_F_DEAD / RTNH_F_LINKDOWN set by the kernel */
  readonly dead: boolean;
  /** the hop's gateway is of the other family (RTA_VIA, RFC 5549), so `gateway` is unset; absent otherwise */
  readonly otherFamily?: true;
}

/** A route of skein's protocol as the kernel holds it. */
export interface KernelRoute {
  readonly family: Family;
  readonly addr: Uint8Array;
  readonly len: number;
  readonly table: number;
  readonly metric: number;
  readonly protocol: number;
  /** rtm_type: 1 unicast, 6 blackhole, ... */
  readonly type: number;
  readonly scope: number;
  readonly hops: readonly KernelHop[];
  /** the nexthop object the route uses (RTA_NH_ID; the kernel also reports its hops), absent for a plain route */
  readonly nhid?: number;
}

/** Per-prefix view for `skeinctl fib`. */
export interface RouteView {
  readonly prefix: Prefix;
  readonly table: number;
  readonly metric: number;
  /** What skein wants, undefined when the prefix is only in the kernel (adopted, awaiting the sweep). */
  readonly desired: Target | undefined;
  /** What skein last knew the kernel to hold (from acknowledgements, events and dumps). */
  readonly kernel: KernelRoute | undefined;
  /** Desired and kernel agree. */
  readonly inSync: boolean;
  /** A change is queued or awaiting the kernel's answer. */
  readonly pending: boolean;
  readonly failure: RouteFailure | undefined;
}

/** Counters and gauges for metrics and `skeinctl fib`. */
export interface FibStats {
  /** Prefixes skein wants in the kernel. */
  readonly desired: number;
  /** Prefixes of skein's that the kernel holds (as far as known). */
  readonly installed: number;
  /** Desired prefixes that match the kernel. */
  readonly inSync: number;
  /** Adopted routes not (yet) desired: removed by the sweep. */
  readonly stale: number;
  /** Changes queued or in flight. */
  readonly pending: number;
  /** Prefixes whose last attempt failed, by errno name. */
  readonly failuresByReason: Readonly<Record<string, number>>;
  /** Route messages sent, by operation. */
  readonly sent: { readonly add: number; readonly replace: number; readonly delete: number };
  /** Route messages the kernel refused. */
  readonly errors: number;
  /** Full table dumps done (start-up, overruns, link changes, lost acknowledgements). */
  readonly resyncs: number;
  /** Netlink socket overruns (ENOBUFS) seen on any socket. */
  readonly overruns: number;
  /** Re-assertions after someone else changed or deleted one of skein's routes. */
  readonly repairs: number;
  /** Whether markSynced() has run and its sweep finished. */
  readonly synced: boolean;
  /** Whether gateway routes go through nexthop objects (false: option off, or the kernel has none). */
  readonly nexthopObjects: boolean;
  /** Nexthop objects of skein's that fib/ knows to be in the kernel. */
  readonly nexthops: number;
  /** Dead next hops' object deletions sent on the urgent socket (not behind queued route writes). */
  readonly urgentSent: number;
  /** Route batches of a few routes written on the programming thread instead of through the request thread. */
  readonly directBatches: number;
  /** The request thread runs now (it starts when a write needs it: requestThreadIdleMs). */
  readonly requestThreadRunning: boolean;
  /** Times the request thread was started. */
  readonly requestThreadStarts: number;
  /** Nexthop checks (nexthopCheckMs, resyncs) that found objects of skein's missing or changed, and re-asserted them. */
  readonly nexthopRepairs: number;
}

/**
 * The kernel writer's own counters (Programmer.writer()): read without a walk of the routes, so `/metrics` and
 * `skeinctl fib` can show them at any table size. The figures stats() has too, less the per-route counts.
 */
export type FibWriterStats = Pick<FibStats, 'sent' | 'errors' | 'resyncs' | 'overruns' | 'repairs' | 'nexthopObjects' | 'nexthops'
  | 'urgentSent' | 'directBatches' | 'requestThreadRunning' | 'requestThreadStarts' | 'nexthopRepairs'>;

/** Reported once per acknowledged batch, for a latency histogram. */
export interface BatchReport {
  /** Route messages in the batch. */
  readonly routes: number;
  /** Of which the kernel refused. */
  readonly failed: number;
  /** Seconds from the oldest change in the batch being queued to the kernel's acknowledgement. */
  readonly latencySeconds: number;
  /** Seconds from send to acknowledgement (kernel time). */
  readonly kernelSeconds: number;
}
