// IANA numbers for BGP-4 (RFC 4271 and the registries it created). Plain
// `as const` objects rather than enums so every module, transpiled alone,
// sees the same values (isolatedModules) and JSON shows names we choose.

/** RFC 4271 §4.1: message header. */
export const MARKER_LEN = 16;
export const HEADER_LEN = 19;
/** RFC 4271 §4.1: maximum message size without RFC 8654. */
export const MAX_MESSAGE_LEN = 4096;
/** RFC 8654 §3: maximum size once the extended message capability is negotiated (both ways). */
export const MAX_EXTENDED_MESSAGE_LEN = 65535;

/** RFC 4271 §4.1 message types, plus ROUTE-REFRESH (RFC 2918 §3). */
export const MessageType = {
  OPEN: 1,
  UPDATE: 2,
  NOTIFICATION: 3,
  KEEPALIVE: 4,
  ROUTE_REFRESH: 5,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

export const MESSAGE_TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'OPEN',
  2: 'UPDATE',
  3: 'NOTIFICATION',
  4: 'KEEPALIVE',
  5: 'ROUTE-REFRESH',
};

/** Address families (IANA AFI) and the sub-families skein speaks (IANA SAFI). */
export const Afi = { IPv4: 1, IPv6: 2 } as const;
export type AfiCode = (typeof Afi)[keyof typeof Afi];
export const Safi = { Unicast: 1 } as const;

/** A family as one number, (afi << 8) | safi, for sets and map keys. */
export const familyKey = (afi: number, safi: number): number => (afi << 8) | safi;
export const IPV4_UNICAST = familyKey(Afi.IPv4, Safi.Unicast);
export const IPV6_UNICAST = familyKey(Afi.IPv6, Safi.Unicast);
export function familyName(afi: number, safi: number): string {
  const a = afi === 1 ? 'ipv4' : afi === 2 ? 'ipv6' : `afi${afi}`;
  const s = safi === 1 ? 'unicast' : `safi${safi}`;
  return `${a}-${s}`;
}

/** RFC 4271 §4.3 attribute flag bits. */
export const AttrFlag = {
  Optional: 0x80,
  Transitive: 0x40,
  Partial: 0x20,
  ExtendedLength: 0x10,
} as const;

/** Path attribute type codes (IANA "BGP Path Attributes"). */
export const AttrType = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MULTI_EXIT_DISC: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8, // RFC 1997
  ORIGINATOR_ID: 9, // RFC 4456
  CLUSTER_LIST: 10, // RFC 4456
  MP_REACH_NLRI: 14, // RFC 4760
  MP_UNREACH_NLRI: 15, // RFC 4760
  EXTENDED_COMMUNITIES: 16, // RFC 4360
  AS4_PATH: 17, // RFC 6793
  AS4_AGGREGATOR: 18, // RFC 6793
  LARGE_COMMUNITY: 32, // RFC 8092
} as const;

/** RFC 4271 §4.3 ORIGIN values. */
export const Origin = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
export type OriginCode = (typeof Origin)[keyof typeof Origin];
export const ORIGIN_NAMES = ['IGP', 'EGP', 'INCOMPLETE'] as const;

/** RFC 9494 §3.2 / §3.3 well-known communities (65535:6, 65535:7), as the uint32 COMMUNITIES values */
export const LLGR_STALE = 0xffff0006;
export const NO_LLGR = 0xffff0007;
/** RFC 8326 §3 GRACEFUL_SHUTDOWN well-known community (65535:0) */
export const GRACEFUL_SHUTDOWN = 0xffff0000;

/** AS_PATH segment types: RFC 4271 §4.3 (SET, SEQUENCE), RFC 5065 §3 (confederations). */
export const SegmentType = {
  AS_SET: 1,
  AS_SEQUENCE: 2,
  AS_CONFED_SEQUENCE: 3,
  AS_CONFED_SET: 4,
} as const;
export type SegmentTypeCode = (typeof SegmentType)[keyof typeof SegmentType];
export const SEGMENT_TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'AS_SET',
  2: 'AS_SEQUENCE',
  3: 'AS_CONFED_SEQUENCE',
  4: 'AS_CONFED_SET',
};

/** RFC 6793 §9: the 2-octet stand-in for a 4-octet AS number. */
export const AS_TRANS = 23456;

/** Capability codes (IANA "Capability Codes"). */
export const CapabilityCode = {
  MULTIPROTOCOL: 1, // RFC 4760
  ROUTE_REFRESH: 2, // RFC 2918
  EXTENDED_NEXT_HOP: 5, // RFC 8950
  EXTENDED_MESSAGE: 6, // RFC 8654
  BGP_ROLE: 9, // RFC 9234
  GRACEFUL_RESTART: 64, // RFC 4724
  FOUR_OCTET_AS: 65, // RFC 6793
  ADD_PATH: 69, // RFC 7911
  ENHANCED_ROUTE_REFRESH: 70, // RFC 7313
  LONG_LIVED_GRACEFUL_RESTART: 71, // RFC 9494
  FQDN: 73, // draft-walton-bgp-hostname-capability
} as const;

/** RFC 4271 §4.5 error codes, RFC 2918/7313 ROUTE-REFRESH message error (7). */
export const ErrorCode = {
  MessageHeader: 1,
  OpenMessage: 2,
  UpdateMessage: 3,
  HoldTimerExpired: 4,
  FsmError: 5,
  Cease: 6,
  RouteRefresh: 7, // RFC 7313 §5
  SendHoldTimerExpired: 8, // RFC 9687
} as const;

/** RFC 4271 §6.1 message header error subcodes. */
export const HeaderSubcode = {
  ConnectionNotSynchronized: 1,
  BadMessageLength: 2,
  BadMessageType: 3,
} as const;

/** RFC 4271 §6.2 OPEN message error subcodes, RFC 5492 §5 (7), RFC 9234 §4.2 (11). */
export const OpenSubcode = {
  UnsupportedVersionNumber: 1,
  BadPeerAs: 2,
  BadBgpIdentifier: 3,
  UnsupportedOptionalParameter: 4,
  UnacceptableHoldTime: 6,
  UnsupportedCapability: 7,
  RoleMismatch: 11,
} as const;

/** RFC 4271 §6.3 UPDATE message error subcodes. */
export const UpdateSubcode = {
  MalformedAttributeList: 1,
  UnrecognizedWellKnownAttribute: 2,
  MissingWellKnownAttribute: 3,
  AttributeFlagsError: 4,
  AttributeLengthError: 5,
  InvalidOriginAttribute: 6,
  InvalidNextHopAttribute: 8,
  OptionalAttributeError: 9,
  InvalidNetworkField: 10,
  MalformedAsPath: 11,
} as const;

/** RFC 6608 §4 FSM error subcodes: which state received the unexpected message. */
export const FsmSubcode = {
  Unspecified: 0,
  UnexpectedMessageInOpenSent: 1,
  UnexpectedMessageInOpenConfirm: 2,
  UnexpectedMessageInEstablished: 3,
} as const;

/** RFC 4486 §4 Cease subcodes, RFC 8538 §5 (9, hard reset). */
export const CeaseSubcode = {
  MaximumPrefixesReached: 1,
  AdministrativeShutdown: 2,
  PeerDeconfigured: 3,
  AdministrativeReset: 4,
  ConnectionRejected: 5,
  OtherConfigurationChange: 6,
  ConnectionCollisionResolution: 7,
  OutOfResources: 8,
  HardReset: 9,
  BfdDown: 10, // RFC 9384
} as const;

/** RFC 7313 §5 ROUTE-REFRESH message error subcodes. */
export const RouteRefreshSubcode = { InvalidMessageLength: 1 } as const;

/** RFC 7313 §3 ROUTE-REFRESH message subtypes (the former reserved octet). */
export const RefreshSubtype = { Normal: 0, BeginOfRouteRefresh: 1, EndOfRouteRefresh: 2 } as const;
