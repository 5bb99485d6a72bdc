// A peer as the core keeps it (session terms, its update group, personal outbound work, stale generations), and a Loc-RIB
// entry with several candidates.
import { IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import { Path, addressSortKey, isUsable } from './decision.js';
import type { PathSource, Selection } from './decision.js';
import type { AddPathOut } from './add-path.js';
import type { AttrSet } from './intern.js';
import { PrefixMap } from './prefix-map.js';
import { Personal, type UpdateGroup } from './update-group.js';
import type { PeerConfig, PeerView, PrefixKey, SessionTerms } from './types.js';

export class Peer implements PathSource, PeerView {
  readonly local = false;
  readonly addressKey: string;
  readonly address: string;
  readonly asn: number;
  ibgp: boolean;
  routerId = 0;
  established = false;
  families = new Set<number>();
  addPathRx: ReadonlySet<number> = new Set();
  addPathTx: ReadonlySet<number> = new Set();
  enhancedRouteRefresh = false;
  llgrFamilies: ReadonlySet<number> = new Set();
  /** while Established: the update group whose Adj-RIB-Out and queues this peer shares (update-group.ts) */
  group: UpdateGroup | null = null;
  /** what the session negotiated (peerUp), for its update group's key */
  terms: SessionTerms | null = null;
  /** work for this peer alone: markers, a late joiner's or a refresh's table, source moves (update-group.ts) */
  readonly personal = new Personal();
  /** joined a group that already advertised: walking its table, so the group's End-of-RIB is not this peer's yet */
  catchingUp = false;
  /** ADD-PATH send (RFC 7911) while Established: Adj-RIB-Out and queues of its families, which the group then leaves alone */
  ap: AddPathOut | null = null;
  /** count of Adj-RIB-In paths */
  paths = 0;
  /** of which IPv6 (per-family maximum-prefix limits, RFC 4486) */
  paths6 = 0;
  /** bumped whenever the export rules for this peer may change (settings, session) */
  epoch = 0;
  /** per family: the current generation; paths announced under an older one are stale */
  readonly gens = new Map<number, number>();
  /** how many of the peer's IPv4 / IPv6 paths are stale now (kept as paths change: stale.ts, core.ts staleMoved) */
  stale4 = 0;
  stale6 = 0;
  /** counts sessions up and down: a walk started for one session (initial table, refresh) stops when it changes */
  sessions = 0;
  /**
   * What the peer sent, before the rules (after the loop checks), by "prefix|path id": kept only for a session
   * without route refresh, so a change of its import rules can be applied from it (keepReceived).
   */
  rawIn: Map<string, { prefix: PrefixKey; pathId: number; set: AttrSet }> | null = null;
  /** reimport walks started over rawIn and not finished (import.ts) */
  reimports = 0;
  /**
   * Routes refused by the import rules (policy.ts), kept to be listed and explained: per prefix a flat
   * [path id, rule index, set, ...] (one small exactly sized array, as add-path.ts keeps its lists); at most
   * CoreConfig.keepRefused routes, `refused` of them (import.ts keepRefused / forgetRefused / clearRefused).
   */
  readonly refusedIn = new PrefixMap<(number | AttrSet)[]>();
  refused = 0;
  /** refused routes not kept because the bound was reached (only grows) */
  refusedNotKept = 0;
  /** decisions of the rules that refused a route: on import, and on export (each evaluation counts) */
  policyRejectedIn = 0;
  policyRejectedOut = 0;

  gen(family: number): number {
    return this.gens.get(family) ?? 0;
  }
  constructor(
    readonly id: number,
    public cfg: PeerConfig,
    localAs: number,
  ) {
    this.address = cfg.address;
    this.addressKey = addressSortKey(cfg.address);
    this.asn = cfg.asn;
    this.localAs = cfg.localAs ?? localAs;
    this.ibgp = cfg.asn === this.localAs;
  }

  /** our AS on this session */
  readonly localAs: number;

  get rrClient(): boolean {
    return this.cfg.routeReflectorClient === true;
  }
}

/** A Loc-RIB entry with more than one candidate. */
export class Dest {
  constructor(
    public paths: Path[],
    public sel: Selection,
  ) {}
}

export type LocEntry = Path | Dest;

export const familyOf = (p: PrefixKey): number => (typeof p === 'number' ? IPV4_UNICAST : IPV6_UNICAST);

/** The best path if it may be used (installed, advertised); null when even the best has an unusable next hop. */
export function usableBest(e: LocEntry): Path | null {
  const b = e instanceof Path ? e : e.sel.best;
  return isUsable(b) ? b : null;
}

export function sameHops(a: readonly Path[], b: readonly Path[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if ((a[i] as Path).attrs.nextHops[0] !== (b[i] as Path).attrs.nextHops[0]) return false;
  return true;
}
