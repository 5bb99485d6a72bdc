// The results of the control methods, which are what `skeinctl COMMAND --json` prints. docs/contract.md ("The
// `--json` shapes") pins the status, peers and routes shapes (fields may be added, never renamed or removed);
// fields marked "extra" are additions skeinctl renders when present. The fib and reload shapes are defined here
// (docs/contract.md lists them too).

export type PeerType = 'node-to-node mesh' | 'global' | 'node specific' | 'route reflector';
export type PeerStateName = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface PeerJson {
  address: string;
  port: number;
  asn: number;
  localAsn: number;
  type: PeerType;
  state: PeerStateName;
  /** ISO 8601, when the peer entered `state` */
  since: string;
  info: string;
  families: string[];
  prefixes: { received: number; accepted: number; advertised: number };
  // extra
  localAddress?: string;
  routerId?: string;
  holdTime?: number;
  keepaliveTime?: number;
  lastError?: string;
  /** the peer's prefix counts per family, when the daemon reports them */
  prefixesByFamily?: Record<string, { received: number; accepted: number; advertised: number }>;
  /** graceful restart (RFC 4724, RFC 8538) and long-lived graceful restart (RFC 9494) state */
  gracefulRestart?: GracefulRestartJson;
  /** BFD on this session (RFC 5880), when a BFDConfiguration applies: `skeinctl bfd` has the details */
  bfd?: { state: string; lastDownReason: string; downCount: number };
  /** ADD-PATH (RFC 7911) negotiated on the current session, and how many paths we send */
  addPath?: { send: string[]; receive: string[]; sendMode: string };
  /** the BGPFilters the peer names (BGPPeer.filters), in order */
  filters?: string[];
  /** routes its routing policy refused: import, and export decisions */
  policyRejected?: { import: number; export: number };
  /** routes refused on import kept to be listed (routes --refused), and refused past bgp.keepRefused (not kept) */
  refusedRoutes?: { kept: number; notKept: number };
}

export interface GracefulRestartJson {
  /** what we announce to the peer; longLivedStaleTime null: no LLGR offered */
  local: { enabled: boolean; restartTime: number; longLivedStaleTime: number | null };
  /** what the peer announced in its current or last session (null: no GR capability, or no session yet) */
  peer: {
    restartTime: number;
    restarting: boolean;
    notification: boolean;
    families: { family: string; forwardingState: boolean }[];
    longLived: { family: string; forwardingState: boolean; staleTime: number }[];
  } | null;
  /** we keep the peer's routes after its session went down (helper mode); null when not */
  helper: { phase: 'restart' | 'stale-path' | 'long-lived'; families: string[]; secondsLeft: number | null; staleRoutes: number } | null;
  /** families in the RFC 9494 long-lived phase and the seconds left on each */
  longLived: { family: string; secondsLeft: number }[];
  /** End-of-RIB per family in the current session */
  endOfRib: { received: string[]; pending: string[] };
}

/** Our own restart: the R bit, and whether our UPDATEs wait for the peers' End-of-RIB (RFC 4724 §4.1). */
export interface LocalRestartJson {
  restarting: boolean;
  deferring: boolean;
  secondsLeft: number | null;
  waitingFor: string[];
  /**
   * the start-up FIB sweep (routes left in the kernel by a previous run are removed once every start-up peer has
   * sent End-of-RIB, or at the deadline): done, or the seconds left and the peers it waits for
   */
  fibSync?: { done: boolean; secondsLeft: number | null; waitingFor: string[] };
}

export interface StatusJson {
  node: string;
  routerId: string;
  asn: number;
  ready: boolean;
  peers: PeerJson[];
  // extra
  /** what keeps the node from being ready (the /readyz reasons) */
  notReady?: string[];
  version?: string;
  gracefulRestart?: LocalRestartJson;
  datastore?: DatastoreJson;
  /** RFC 8326 graceful shutdown of this node (skeinctl drain / undrain) */
  drain?: DrainJson;
}

export type DrainStateName = 'off' | 'draining' | 'drained';

/** `skeinctl drain --json`, `skeinctl undrain --json`, and status's `drain` field. */
export interface DrainJson {
  /** off; draining: routes carry GRACEFUL_SHUTDOWN and peers are given `seconds` to move traffic; drained: they had it */
  state: DrainStateName;
  /** ISO 8601, when `state` was entered; null before any drain */
  since: string | null;
  /** the wait of the current (or last) drain */
  seconds: number;
  /** while draining: seconds until drained */
  secondsLeft: number | null;
  /** skeind is stopping: the sessions end (Cease) when the drain is over */
  stopping: boolean;
  /** skein.yaml's bgp.shutdownDrainSeconds: how long a stop drains (0: a stop does not drain) */
  shutdownDrainSeconds: number;
}

/** The datastore as the daemon sees it (the same values as skein_datastore_state / _revision / _held). */
export interface DatastoreJson {
  type: 'etcd' | 'file';
  state: 'connecting' | 'synced' | 'resyncing' | 'disconnected';
  /** ISO 8601, when `state` was entered (for disconnected: stale since) */
  since: string;
  revision?: string;
  lastError?: string;
  /** file: why the file's newest version is held back */
  held?: string;
}

export interface PeersJson {
  peers: PeerJson[];
}

export type OriginName = 'IGP' | 'EGP' | 'INCOMPLETE';

export interface PathJson {
  from: string;
  nextHops: string[];
  asPath: number[];
  origin: OriginName;
  localPref: number;
  med: number;
  communities: string[];
  largeCommunities: string[];
  reason: string;
  /** false: the next hop is bad or unresolvable (RFC 4271 §6.3, §9.1.2); kept, never best, installed or advertised */
  usable?: boolean;
  unusableReason?: string | null;
  unusableCode?: string | null;
}

export interface RouteJson {
  prefix: string;
  installed: boolean;
  best: PathJson | null;
  paths: PathJson[];
}

export interface RoutesJson {
  routes: RouteJson[];
  /** `routes PREFIX` only: the routing-policy rule that decided, per peer, on import and on export */
  policy?: { imported: PolicyVerdictJson[]; exported: PolicyVerdictJson[] };
}

export interface PolicyVerdictJson {
  peer: string;
  accept: boolean;
  /** the rule, e.g. "BGPFilter/edge importV4[0]" or "IPPool/pods 10.65.0.0/16 (accept)" */
  rule: string;
}

/** One route as skein wants it or as the kernel has it. */
export interface FibEntryJson {
  /** unicast: via next hops; blackhole: an affine IPAM block; device: a local workload's interface */
  type: 'unicast' | 'blackhole' | 'device';
  nextHops: string[];
  dev?: string;
}

export interface FibRouteJson {
  prefix: string;
  /** what skein wants; null: skein wants it gone (a route of ours the kernel still has) */
  desired: FibEntryJson | null;
  /** what the kernel has (routes with skein's protocol only); null: not there */
  kernel: FibEntryJson | null;
  /** in-sync: kernel matches; pending: being programmed; failed: the kernel refused (see error) */
  state: 'in-sync' | 'pending' | 'failed';
  error?: string;
}

/** The kernel writer's counters (fib/ Programmer.writer()), in `skeinctl fib`'s header. */
export interface FibWriterJson {
  requestThreadRunning: boolean;
  requestThreadStarts: number;
  directBatches: number;
  nexthops: number;
  resyncs: number;
  overruns: number;
  repairs: number;
  errors: number;
}

export interface FibJson {
  enabled: boolean;
  table: number;
  protocol: number;
  /** absent from an older skeind, and with the FIB disabled */
  writer?: FibWriterJson;
  counts: { desired: number; installed: number; pending: number; failed: number };
  routes: FibRouteJson[];
}

export interface ReloadJson {
  reloaded: boolean;
  message: string;
  /** what the reload changed, one line each */
  changes?: string[];
}

/** `skeinctl bfd --json`: one entry per session, and the peers that should run BFD but do not yet. */
export interface BfdJson {
  sessions: BfdSessionJson[];
  pending: { peer: string; reason: string }[];
}

export interface BfdSessionJson {
  peer: string;
  /** the process that runs the session: the companion skein-bfdd, or skeind itself */
  runsIn: 'skein-bfdd' | 'skeind' | 'undecided';
  local: string;
  interface: string;
  multihop: boolean;
  state: string;
  remoteState: string;
  /** ISO 8601, when `state` was entered */
  since: string;
  localDiag: string;
  lastDownReason: string;
  upCount: number;
  downCount: number;
  /** the peer's C bit (RFC 5880 §4.1) */
  remoteControlPlaneIndependent: boolean;
  /** milliseconds; negotiated values are 0 until the peer was heard */
  timers: {
    desiredMinTx: number;
    requiredMinRx: number;
    detectMult: number;
    txInterval: number;
    detectTime: number;
    remoteMinTx: number;
    remoteMinRx: number;
    remoteDetectMult: number;
  };
}
