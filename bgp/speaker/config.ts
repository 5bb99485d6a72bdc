// What a Speaker is told: the local end, and one entry per peer. Session
// parameters (everything that goes into the OPEN or the TCP connection) reset
// a peer when they change; policy and next-hop settings do not (see
// sessionKey() and Speaker.updatePeer()).
import { IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import type { Policy, PrefixKey } from '../rib/core.js';
import type { PeerRules } from '../rib/policy.js';
import type { AddPathSend } from '../rib/add-path.js';
import { canonicalIpv6 } from '../wire/prefix.js';
import type { LogRateLimit } from './rate-limit.js';

export type FamilyName = 'ipv4-unicast' | 'ipv6-unicast';

export const FAMILY_KEYS: Readonly<Record<FamilyName, number>> = {
  'ipv4-unicast': IPV4_UNICAST,
  'ipv6-unicast': IPV6_UNICAST,
};

export const familyNameOf = (key: number): FamilyName => (key === IPV6_UNICAST ? 'ipv6-unicast' : 'ipv4-unicast');

export interface PeerOptions {
  /** numeric IPv4 or IPv6 address of the peer */
  readonly address: string;
  /** the peer's BGP port; default 179 */
  readonly port?: number;
  /** the peer's AS; 0 accepts any */
  readonly asn: number;
  /** our AS on this session instead of the speaker's (RFC 4271 §4.2 My Autonomous System) */
  readonly localAsn?: number;
  /** never dial: wait for the peer to connect (PassiveTcpEstablishment) */
  readonly passive?: boolean;
  /** numeric local address to bind when dialling; default the speaker's listen address when it is a specific one */
  readonly sourceAddress?: string;
  /** RFC 2385 TCP MD5 key */
  readonly md5Key?: Buffer | string;
  /** RFC 5082 GTSM: the peer is this many hops away */
  readonly ttlSecurity?: number;
  /** default both unicast families */
  readonly families?: readonly FamilyName[];
  /** iBGP: set NEXT_HOP to ourselves (eBGP does unless nextHopKeep) */
  readonly nextHopSelf?: boolean;
  /** eBGP: keep the route's NEXT_HOP (a third-party next hop, RFC 4271 §5.1.3) instead of ours */
  readonly nextHopKeep?: boolean;
  /** our IPv6 next hop for this peer (an IPv4 session carrying IPv6 routes needs one); default the speaker's nextHop6 */
  readonly nextHop6?: string;
  /** our IPv4 next hop for this peer; default the session's local address when IPv4, else the speaker's nextHop4 */
  readonly nextHop4?: string;
  /** accept our own AS in AS_PATH up to this many times (Calico numAllowedLocalASNumbers) */
  readonly allowOwnAs?: number;
  readonly importPolicy?: Policy;
  readonly exportPolicy?: Policy;
  /**
   * Rule lists (bgp/rib/policy.ts) for import and export, per family. A change applies without a reset: exports are
   * evaluated again, and a changed import side asks the peer for its routes again (ROUTE-REFRESH).
   */
  readonly rules?: PeerRules;
  /** RFC 7911: ask the peer to send several paths per prefix */
  readonly addPathReceive?: boolean;
  /**
   * RFC 7911: offer to send several paths per prefix — every path ({ mode: 'all' }) or the count best
   * ({ mode: 'best', count }) — used in each family where the peer offers to receive them. Default: the best only.
   * Turning it on or off resets the session (a capability); changing the count does not.
   */
  readonly addPathSend?: AddPathSend;
  /**
   * RFC 8654: offer the extended message capability (messages up to 65535 octets once both ends offer it:
   * about 16 times fewer UPDATEs for a full table). Default true; false for a peer that mishandles it.
   */
  readonly extendedMessage?: boolean;
  /**
   * RFC 4724 §3 restart time (seconds) announced in our graceful restart capability: how long the peer should keep
   * our routes when we restart (Calico maxRestartTime / nodeMeshMaxRestartTime). Default 120; at most 4095.
   */
  readonly restartTime?: number;
  /**
   * RFC 9494 long-lived graceful restart: the long-lived stale time (seconds, at most 16777215) we announce in our
   * LLGR capability, beside GR, for every family of the session. Setting it also makes us the peer's LLGR helper:
   * when its session drops, families it announced a long-lived stale time for are kept, with LLGR_STALE, for that long
   * once its restart time has run out. Unset or 0 (the default): no LLGR capability, no long-lived phase.
   */
  readonly longLivedStaleTime?: number;
  /** the peer is our route reflector client (RFC 4456 §6); a change resets the session */
  readonly routeReflectorClient?: boolean;
  /**
   * RFC 4486 maximum prefixes accepted from the peer, counted per address
   * family: `limit` for each family unless perFamily names another. Warn (a
   * 'log' event) once at warningThreshold percent (default 75), close with
   * Cease / Maximum Number of Prefixes Reached (data: that family's AFI/SAFI
   * and limit) above it, then stay down — or restart after restartAfterSec
   * seconds.
   */
  readonly maxPrefixes?: {
    readonly limit: number;
    readonly perFamily?: { readonly [F in FamilyName]?: number };
    readonly warningThreshold?: number;
    readonly restartAfterSec?: number;
  };
  /** docs/contract.md PEER "type"; default "global" */
  readonly type?: string;
  /** per-peer timer overrides, seconds */
  readonly holdTime?: number;
  readonly keepaliveTime?: number;
  readonly connectRetryTime?: number;
}

export interface SpeakerOptions {
  readonly localAsn: number;
  /** the limiter of log lines a remote party can cause; default a new one (skeind shares one across speakers) */
  readonly remoteLog?: LogRateLimit;
  /** dotted quad */
  readonly routerId: string;
  /**
   * default '::' (dual stack); several: one listener each, on one port (Calico's bindMode NodeIP on a dual-stack
   * node: bird listens on the IPv4 node address, bird6 on the IPv6 one); null: do not listen at all
   */
  readonly listenAddress?: string | readonly string[] | null;
  /** default 179 */
  readonly listenPort?: number;
  /** seconds; default 90 */
  readonly holdTime?: number;
  /** seconds; default a third of the negotiated hold time */
  readonly keepaliveTime?: number;
  /** seconds; default 120 */
  readonly connectRetryTime?: number;
  /** peer oscillation damping, seconds (see SessionFsm) */
  readonly idleHold?: { readonly initial?: number; readonly max?: number; readonly stable?: number };
  /** next hops for routes we originate without one and for next-hop-self, when a session gives none */
  readonly nextHop4?: string;
  readonly nextHop6?: string;
  /** most equal-cost paths handed to the FIB; default 1 */
  readonly maxPaths?: number;
  /** RFC 4456 CLUSTER_ID when reflecting (dotted quad or uint32); default the router ID (Calico routeReflectorClusterID) */
  readonly clusterId?: string | number;
  /** most routes refused by import rules kept per peer, to be listed (RibCore CoreConfig.keepRefused); default 10,000 */
  readonly keepRefused?: number;
  /** most prefixes taken from the RIB per batch when sending; default 2048 */
  readonly batchPrefixes?: number;
  /** peers with the same export share one Adj-RIB-Out, queue and UPDATE encoding (bgp/rib/update-group.ts); default true */
  readonly updateGroups?: boolean;
  /** ms of received input handled before the event loop gets a turn (read-slices.ts); default 8 */
  readonly readSliceMs?: number;
  /** announce the graceful restart capability (RFC 4724, with the N bit of RFC 8538) and act as its helper; default true */
  readonly gracefulRestart?: boolean;
  /** RFC 4724 §4.1 Restart State (R) bit: this process started after a restart of the speaker; default false */
  readonly restarting?: boolean;
  /** RFC 4724 §3 Forwarding State (F) bit for every family: our routes stayed in the kernel's FIB; default false */
  readonly forwardingState?: boolean;
  /** after a restart (restarting), seconds our UPDATEs wait at most for every peer's End-of-RIB (RFC 4724 §4.1); default 360 */
  readonly selectionDeferralTime?: number;
  /** seconds a restarted peer's stale routes may wait for its End-of-RIB (RFC 4724 §4.2 "stale routes" timer); default 360 */
  readonly stalePathTime?: number;
  /** the outgoing interface of a route, for rules that match on it (RibCore CoreConfig.routeInterface) */
  readonly routeInterface?: (prefix: PrefixKey, nextHops: readonly string[], local: boolean) => string | undefined;
  /** called with the seconds each received UPDATE took to apply to the RIB (policy, Adj-RIB-In, decision) */
  readonly onUpdateApplied?: (seconds: number) => void;
  /**
   * Run the route path's warm-up (warm.ts) before the first session of the process, so a first table of many routes
   * is handled by optimised code; default false. It costs ~0.1 s of CPU at start and ~1.5-2.5 MiB of idle RSS
   * (bench/footprint.ts), which is why only a speaker expecting whole tables turns it on.
   */
  readonly warmUp?: boolean;
  readonly peers?: readonly PeerOptions[];
}

/** The parts of a peer's options that the session depends on: a change resets the peer. */
export function sessionKey(p: PeerOptions): string {
  return JSON.stringify([
    p.port ?? 179,
    p.asn,
    p.localAsn ?? null,
    p.passive ?? false,
    p.sourceAddress ?? null,
    p.md5Key === undefined ? null : Buffer.from(p.md5Key).toString('hex'),
    p.ttlSecurity ?? null,
    [...(p.families ?? ['ipv4-unicast', 'ipv6-unicast'])].sort(),
    p.addPathReceive ?? false,
    p.addPathSend !== undefined,
    p.extendedMessage ?? true,
    p.restartTime ?? null,
    p.longLivedStaleTime ?? 0,
    p.routeReflectorClient ?? false,
    p.holdTime ?? null,
    p.keepaliveTime ?? null,
    p.connectRetryTime ?? null,
  ]);
}

/** IPv4-mapped IPv6 (a dual-stack listener's view of an IPv4 peer) back to plain IPv4; IPv6 lower-cased. */
export function normalizeAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (m) return m[1] as string;
  return a.includes(':') ? canonicalIpv6(a) : a;
}
