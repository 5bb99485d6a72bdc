// The decoded shapes of BGP messages: what the codec produces and consumes.
// Representation choices (docs/architecture.md, "Representation"):
// - An IPv4 prefix is one number, `address * 64 + length` (a Prefix4): no
//   allocation per prefix, a ready Map key, and exact in a double (38 bits).
// - An IPv6 prefix is its RFC 5952 text with length, e.g. "fd00:1::/64" (a
//   Prefix6), host bits cleared. IPv6 tables are small; text keeps keys short
//   and readable, and the FIB converts to bytes only at the kernel boundary.
// - BGP identifiers, ORIGINATOR_ID and CLUSTER_LIST ids are unsigned 32-bit
//   numbers: RFC 4271 §9.1.2.2 compares them as integers.
// - Next hops are address text (one per attribute set, not per prefix).
import type { BgpError, ErrorAction } from './errors.js';

/** address (uint32) * 64 + prefix length; see prefix.ts for helpers. */
export type Prefix4 = number;
/** canonical IPv6 text with length, host bits zero: "fd00::/64". */
export type Prefix6 = string;

/** The prefixes of one family in one field of one UPDATE, in wire order. */
export type PrefixList =
  | { readonly afi: 1; readonly safi: number; readonly prefixes: Prefix4[]; readonly pathIds: number[] | null }
  | { readonly afi: 2; readonly safi: number; readonly prefixes: Prefix6[]; readonly pathIds: number[] | null };

/** What was negotiated on a session and changes how bytes are read or written. */
export interface CodecContext {
  /** RFC 6793: both ends sent the 4-octet AS capability; AS numbers in AS_PATH/AGGREGATOR are 4 octets. */
  readonly as4: boolean;
  /** RFC 8654: both ends sent the extended message capability; messages (other than OPEN/KEEPALIVE) up to 65535. */
  readonly extendedMessage: boolean;
  /** RFC 7911: families (familyKey) whose NLRI carry a path identifier when we receive. */
  readonly addPathRx: ReadonlySet<number>;
  /** RFC 7911: families (familyKey) whose NLRI carry a path identifier when we send. */
  readonly addPathTx: ReadonlySet<number>;
  /**
   * The peer is external (eBGP): RFC 7606 §7.5, §7.9, §7.10 — LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST it sends are
   * discarded, whatever their length. Default false.
   */
  readonly external?: boolean;
  /**
   * RFC 8950 §3: families (familyKey) for which we advertised the extended next hop capability, so the peer may send
   * an IPv6 next hop with their NLRI. Unset or empty (skein never advertises it): an IPv4 MP_REACH_NLRI must carry a
   * 4-octet next hop.
   */
  readonly extendedNextHopRx?: ReadonlySet<number>;
}

export const DEFAULT_CONTEXT: CodecContext = Object.freeze({
  as4: true,
  extendedMessage: false,
  addPathRx: new Set<number>(),
  addPathTx: new Set<number>(),
});

// ---------------------------------------------------------------- OPEN

export interface AfiSafi {
  readonly afi: number;
  readonly safi: number;
}

export type Capability =
  | { readonly code: 1; readonly name: 'multiprotocol'; readonly afi: number; readonly safi: number }
  | { readonly code: 2; readonly name: 'route-refresh' }
  | {
      readonly code: 5;
      readonly name: 'extended-next-hop';
      readonly entries: readonly { readonly afi: number; readonly safi: number; readonly nextHopAfi: number }[];
    }
  | { readonly code: 6; readonly name: 'extended-message' }
  /** RFC 9234 §4.1: 0 provider, 1 route server, 2 RS client, 3 customer, 4 peer */
  | { readonly code: 9; readonly name: 'bgp-role'; readonly role: number }
  | {
      readonly code: 64;
      readonly name: 'graceful-restart';
      /** R bit: the sender has restarted (RFC 4724 §3) */
      readonly restarting: boolean;
      /** N bit: the sender supports NOTIFICATION-triggered graceful restart (RFC 8538 §2) */
      readonly notification: boolean;
      /** seconds, 12 bits */
      readonly restartTime: number;
      readonly families: readonly (AfiSafi & { readonly forwardingState: boolean })[];
    }
  | { readonly code: 65; readonly name: '4-octet-as'; readonly asn: number }
  | {
      readonly code: 69;
      readonly name: 'add-path';
      /** 1 receive, 2 send, 3 both (RFC 7911 §4) */
      readonly families: readonly (AfiSafi & { readonly sendReceive: 1 | 2 | 3 })[];
    }
  | { readonly code: 70; readonly name: 'enhanced-route-refresh' }
  | {
      readonly code: 71;
      readonly name: 'long-lived-graceful-restart';
      /** staleTime in seconds, 24 bits (RFC 9494 §3) */
      readonly families: readonly (AfiSafi & { readonly forwardingState: boolean; readonly staleTime: number })[];
    }
  | { readonly code: 73; readonly name: 'fqdn'; readonly hostname: string; readonly domainName: string }
  | { readonly code: number; readonly name: 'unknown'; readonly value: Buffer };

export interface OpenMessage {
  readonly type: 'OPEN';
  /** always 4 (RFC 4271 §4.2) */
  readonly version: number;
  /** the 2-octet My Autonomous System field (AS_TRANS when the real AS needs 4 octets) */
  readonly myAs: number;
  readonly holdTime: number;
  /** BGP Identifier as uint32 */
  readonly bgpId: number;
  readonly capabilities: readonly Capability[];
  /** optional parameters other than capabilities (type 2), kept to report them (RFC 4271 §6.2) */
  readonly otherParameters?: readonly { readonly type: number; readonly value: Buffer }[];
}

// ---------------------------------------------------------------- UPDATE

export interface AsPathSegment {
  readonly type: 1 | 2 | 3 | 4;
  readonly asns: readonly number[];
}

export interface Aggregator {
  readonly asn: number;
  readonly address: string;
}

/** An attribute skein does not interpret, kept whole so it can be passed on (RFC 4271 §5). */
export interface UnknownAttribute {
  readonly flags: number;
  readonly type: number;
  readonly value: Buffer;
}

/**
 * Path attributes of one UPDATE, decoded. On a 2-octet AS session the AS_PATH
 * and AGGREGATOR here are already reconstructed from AS4_PATH/AS4_AGGREGATOR
 * (RFC 6793 §4.2.3); AS4_* never appear as separate fields.
 */
export interface PathAttributes {
  readonly origin?: 0 | 1 | 2;
  readonly asPath?: readonly AsPathSegment[];
  /** IPv4 NEXT_HOP (type 3), dotted quad */
  readonly nextHop?: string;
  readonly med?: number;
  readonly localPref?: number;
  readonly atomicAggregate?: boolean;
  readonly aggregator?: Aggregator;
  /** RFC 1997, each as uint32 (high 16 bits AS, low 16 bits value) */
  readonly communities?: readonly number[];
  /** RFC 4456 */
  readonly originatorId?: number;
  readonly clusterList?: readonly number[];
  /** RFC 4360, 8 bytes each */
  readonly extendedCommunities?: readonly Buffer[];
  /** RFC 8092, [global administrator, local data 1, local data 2] */
  readonly largeCommunities?: readonly (readonly [number, number, number])[];
  /** unrecognised optional attributes, in wire order; transitive ones get Partial set when passed on */
  readonly unknown?: readonly UnknownAttribute[];
}

export interface MpReach {
  readonly afi: number;
  readonly safi: number;
  /** one address, or for IPv6 a global plus a link-local (RFC 2545 §3) */
  readonly nextHops: readonly string[];
  readonly nlri: PrefixList;
}

export interface MpUnreach {
  readonly afi: number;
  readonly safi: number;
  readonly withdrawn: PrefixList;
}

export interface UpdateMessage {
  readonly type: 'UPDATE';
  /** IPv4 unicast withdrawn routes field */
  readonly withdrawn: PrefixList;
  readonly attributes: PathAttributes;
  /** IPv4 unicast NLRI field */
  readonly nlri: PrefixList;
  readonly mpReach?: MpReach;
  readonly mpUnreach?: MpUnreach;
  /**
   * RFC 7606 outcome when the UPDATE was malformed in a way that does not reset
   * the session: the strongest action, and every error found. With
   * 'treat-as-withdraw' the receiver withdraws every prefix in nlri/mpReach too.
   */
  readonly errorAction?: Exclude<ErrorAction, 'session-reset'>;
  readonly errors?: readonly BgpError[];
}

// ------------------------------------------------------- the other three

export interface NotificationMessage {
  readonly type: 'NOTIFICATION';
  readonly code: number;
  readonly subcode: number;
  readonly data: Buffer;
  /** RFC 9003 shutdown communication, for Cease/Administrative Shutdown or Reset */
  readonly message?: string;
}

export interface KeepaliveMessage {
  readonly type: 'KEEPALIVE';
}

export interface RouteRefreshMessage {
  readonly type: 'ROUTE-REFRESH';
  readonly afi: number;
  readonly safi: number;
  /** RFC 7313 §3: 0 normal request, 1 BoRR, 2 EoRR */
  readonly subtype: number;
}

export type Message = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;
