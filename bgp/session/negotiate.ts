// What two OPEN messages agree on: pure functions, no state. The session FSM
// calls validateOpen() on the peer's OPEN and negotiate() once it is accepted;
// the result carries everything later layers need (families, ADD-PATH
// directions, the codec context) so nothing downstream re-reads capabilities.
import { AS_TRANS, CeaseSubcode, ErrorCode, IPV4_UNICAST, OpenSubcode, familyKey } from '../wire/constants.js';
import { BgpError } from '../wire/errors.js';
import type { Capability, CodecContext, OpenMessage } from '../wire/types.js';

/** The peer's graceful restart parameters (RFC 4724 §3), limited to negotiated families. */
export interface PeerGracefulRestart {
  readonly restarting: boolean;
  readonly notification: boolean;
  /** seconds */
  readonly restartTime: number;
  readonly families: readonly { readonly family: number; readonly forwardingState: boolean }[];
}

/** The peer's long-lived graceful restart parameters (RFC 9494 §3), limited to negotiated families. */
export interface PeerLongLivedGracefulRestart {
  readonly families: readonly { readonly family: number; readonly forwardingState: boolean; readonly staleTime: number }[];
}

export interface NegotiatedSession {
  /** the peer's real AS: the 4-octet AS capability when present, else My Autonomous System (RFC 6793 §4.1) */
  readonly peerAs: number;
  readonly peerId: number;
  readonly ibgp: boolean;
  /** seconds; 0 means no KEEPALIVEs and no hold timer (RFC 4271 §4.2) */
  readonly holdTime: number;
  /** seconds; 0 when holdTime is 0 */
  readonly keepaliveTime: number;
  /** familyKey values both ends announced, ascending */
  readonly families: readonly number[];
  readonly as4: boolean;
  readonly routeRefresh: boolean;
  readonly enhancedRouteRefresh: boolean;
  readonly extendedMessage: boolean;
  /** families where NLRI we receive carry path ids */
  readonly addPathRx: ReadonlySet<number>;
  /** families where NLRI we send carry path ids */
  readonly addPathTx: ReadonlySet<number>;
  /** the peer's GR capability, or null if it sent none */
  readonly gracefulRestart: PeerGracefulRestart | null;
  /** the peer's LLGR capability, or null if it sent none, or sent it without GR (RFC 9494 §4.1, §4.5: then it is ignored) */
  readonly longLivedGracefulRestart: PeerLongLivedGracefulRestart | null;
  /** families whose LLGR_STALE routes may be sent to the peer: it announced LLGR for them (RFC 9494 §4.3) */
  readonly llgrFamilies: ReadonlySet<number>;
  readonly codec: CodecContext;
}

/** The AS a speaker claims in its OPEN: RFC 6793 §4.1, the capability wins over the 2-octet field. */
export function openAs(open: OpenMessage): number {
  const cap = open.capabilities.find((c) => c.code === 65);
  return cap && cap.name === '4-octet-as' ? cap.asn : open.myAs;
}

/** Families a speaker announced. RFC 4760 §8: no multiprotocol capability at all means IPv4 unicast only. */
export function announcedFamilies(open: OpenMessage): Set<number> {
  const out = new Set<number>();
  for (const c of open.capabilities) if (c.name === 'multiprotocol') out.add(familyKey(c.afi, c.safi));
  if (out.size === 0) out.add(IPV4_UNICAST);
  return out;
}

function has(open: OpenMessage, name: Capability['name']): boolean {
  return open.capabilities.some((c) => c.name === name);
}

/** ADD-PATH send/receive bits per family, merged over every ADD-PATH capability in the OPEN. */
function addPathModes(open: OpenMessage): Map<number, number> {
  const out = new Map<number, number>();
  for (const c of open.capabilities) {
    if (c.name !== 'add-path') continue;
    for (const f of c.families) {
      const k = familyKey(f.afi, f.safi);
      out.set(k, (out.get(k) ?? 0) | f.sendReceive);
    }
  }
  return out;
}

export interface OpenExpectations {
  readonly localAs: number;
  readonly routerId: number;
  /** the AS configured for the peer; 0 accepts any AS */
  readonly peerAs: number;
}

/**
 * RFC 4271 §6.2 checks on a received OPEN, in the order the RFC lists them.
 * Returns the error to send in a NOTIFICATION, or null when the OPEN is acceptable.
 */
export function validateOpen(open: OpenMessage, want: OpenExpectations): BgpError | null {
  if (open.version !== 4) {
    // §6.2: the data field is the largest locally supported version, 2 octets.
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.UnsupportedVersionNumber,
      `peer speaks BGP version ${open.version}, we speak 4`, Buffer.from([0, 4]));
  }
  const asn = openAs(open);
  // RFC 7607 §2: AS 0 is never a valid peer AS.
  if (asn === 0) return new BgpError(ErrorCode.OpenMessage, OpenSubcode.BadPeerAs, 'peer AS is 0');
  // RFC 6793 §4.1: compare against the capability's AS; AS_TRANS in My AS is only a stand-in.
  if (want.peerAs !== 0 && asn !== want.peerAs) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.BadPeerAs,
      `peer says AS ${asn}${asn !== open.myAs ? ` (My AS field ${open.myAs})` : ''}, configured AS ${want.peerAs}`);
  }
  if (open.holdTime === 1 || open.holdTime === 2) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.UnacceptableHoldTime,
      `hold time ${open.holdTime} s: must be 0 or at least 3 (RFC 4271 §4.2)`);
  }
  // RFC 6286 §2.2: the identifier must be non-zero, and differ from ours within one AS.
  if (open.bgpId === 0) return new BgpError(ErrorCode.OpenMessage, OpenSubcode.BadBgpIdentifier, 'BGP Identifier is 0');
  if (asn === want.localAs && open.bgpId >>> 0 === want.routerId >>> 0) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.BadBgpIdentifier,
      'iBGP peer uses our own BGP Identifier');
  }
  // §6.2: optional parameters other than capabilities are not understood here.
  const other = open.otherParameters ?? [];
  if (other.length > 0) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.UnsupportedOptionalParameter,
      `unsupported optional parameter type ${other[0]?.type}`);
  }
  return null;
}

/**
 * Combine our OPEN and the peer's (already validated) into the session's terms.
 * Every rule is symmetric where the RFCs say so ("both must send").
 */
export function negotiate(local: OpenMessage, remote: OpenMessage, localAs: number = openAs(local)): NegotiatedSession {
  const ours = announcedFamilies(local);
  const theirs = announcedFamilies(remote);
  const families = [...ours].filter((f) => theirs.has(f)).sort((a, b) => a - b);
  const famSet = new Set(families);

  // RFC 7911 §4: we receive path ids if we said "receive" and they said "send", and vice versa.
  const ourAp = addPathModes(local);
  const theirAp = addPathModes(remote);
  const addPathRx = new Set<number>();
  const addPathTx = new Set<number>();
  for (const f of families) {
    const o = ourAp.get(f) ?? 0;
    const t = theirAp.get(f) ?? 0;
    if (o & 1 && t & 2) addPathRx.add(f);
    if (o & 2 && t & 1) addPathTx.add(f);
  }

  // RFC 4271 §4.2: the smaller hold time; KEEPALIVE at a third of it (§10 suggests 1/3).
  const holdTime = Math.min(local.holdTime, remote.holdTime);
  const keepaliveTime = holdTime === 0 ? 0 : Math.max(1, Math.floor(holdTime / 3));

  const as4 = has(local, '4-octet-as') && has(remote, '4-octet-as');
  const routeRefresh = has(local, 'route-refresh') && has(remote, 'route-refresh');
  // RFC 7313 §3: enhanced route refresh builds on route refresh.
  const enhancedRouteRefresh = routeRefresh && has(local, 'enhanced-route-refresh') && has(remote, 'enhanced-route-refresh');
  // RFC 8654 §3: only when both ends sent the capability.
  const extendedMessage = has(local, 'extended-message') && has(remote, 'extended-message');

  let gracefulRestart: PeerGracefulRestart | null = null;
  for (const c of remote.capabilities) {
    if (c.name !== 'graceful-restart') continue;
    gracefulRestart = {
      restarting: c.restarting,
      notification: c.notification,
      restartTime: c.restartTime,
      families: c.families
        .map((f) => ({ family: familyKey(f.afi, f.safi), forwardingState: f.forwardingState }))
        .filter((f) => famSet.has(f.family)),
    };
  }

  let longLivedGracefulRestart: PeerLongLivedGracefulRestart | null = null;
  if (gracefulRestart) {
    for (const c of remote.capabilities) {
      if (c.name !== 'long-lived-graceful-restart') continue;
      longLivedGracefulRestart = {
        families: c.families
          .map((f) => ({ family: familyKey(f.afi, f.safi), forwardingState: f.forwardingState, staleTime: f.staleTime }))
          .filter((f) => famSet.has(f.family)),
      };
    }
  }
  const llgrFamilies = new Set((longLivedGracefulRestart?.families ?? []).map((f) => f.family));

  const peerAs = openAs(remote);
  return {
    peerAs,
    peerId: remote.bgpId >>> 0,
    ibgp: peerAs === localAs,
    holdTime,
    keepaliveTime,
    families,
    as4,
    routeRefresh,
    enhancedRouteRefresh,
    extendedMessage,
    addPathRx,
    addPathTx,
    gracefulRestart,
    longLivedGracefulRestart,
    llgrFamilies,
    codec: Object.freeze({ as4, extendedMessage, addPathRx, addPathTx, external: peerAs !== localAs }),
  };
}

/** Which end opened a connection. */
export type Initiator = 'local' | 'remote';

/**
 * RFC 4271 §6.8 collision resolution: of two connections to the same peer, keep
 * the one initiated by the speaker with the higher BGP Identifier (compared as
 * uint32). RFC 6286 §2.3: on equal identifiers (possible between ASes), the
 * connection initiated by the speaker with the larger AS survives.
 * Returns which connection to keep; the other gets Cease / Connection Collision
 * Resolution (RFC 4486 subcode 7) through the OpenCollisionDump event.
 */
export function collisionWinner(localId: number, remoteId: number, localAs: number, remoteAs: number): Initiator {
  const l = localId >>> 0;
  const r = remoteId >>> 0;
  if (l !== r) return l > r ? 'local' : 'remote';
  return localAs > remoteAs ? 'local' : 'remote';
}

/** The NOTIFICATION a collision loser is closed with. */
export const COLLISION_CEASE = { code: ErrorCode.Cease, subcode: CeaseSubcode.ConnectionCollisionResolution } as const;

export interface CapabilityOptions {
  readonly localAs: number;
  /** familyKey values to announce (multiprotocol capability each) */
  readonly families: readonly number[];
  /** RFC 2918, default true */
  readonly routeRefresh?: boolean;
  /** RFC 7313, default false */
  readonly enhancedRouteRefresh?: boolean;
  /** RFC 8654, default false */
  readonly extendedMessage?: boolean;
  /** RFC 7911: per familyKey, 1 receive, 2 send, 3 both */
  readonly addPath?: ReadonlyMap<number, 1 | 2 | 3>;
  /** RFC 4724: restart time in seconds and whether forwarding state was kept across a restart */
  readonly gracefulRestart?: { readonly restartTime: number; readonly restarting?: boolean; readonly forwardingState?: boolean; readonly notification?: boolean };
  /** RFC 9494 §3: long-lived stale time in seconds (24 bits) for every family; sent only beside gracefulRestart */
  readonly longLivedGracefulRestart?: { readonly staleTime: number; readonly forwardingState?: boolean };
}

/** The capabilities of our OPEN, in a fixed order; the 4-octet AS capability is always present (RFC 6793 §3). */
export function buildCapabilities(o: CapabilityOptions): Capability[] {
  const fam = (f: number) => ({ afi: f >> 8, safi: f & 0xff });
  const caps: Capability[] = o.families.map((f) => ({ code: 1, name: 'multiprotocol', ...fam(f) }) as const);
  if (o.routeRefresh ?? true) caps.push({ code: 2, name: 'route-refresh' });
  if (o.extendedMessage) caps.push({ code: 6, name: 'extended-message' });
  if (o.gracefulRestart) {
    const g = o.gracefulRestart;
    caps.push({
      code: 64, name: 'graceful-restart', restarting: g.restarting ?? false, notification: g.notification ?? false,
      restartTime: Math.min(g.restartTime, 4095), // 12 bits (RFC 4724 §3)
      families: o.families.map((f) => ({ ...fam(f), forwardingState: g.forwardingState ?? false })),
    });
  }
  caps.push({ code: 65, name: '4-octet-as', asn: o.localAs });
  if (o.gracefulRestart && o.longLivedGracefulRestart) {
    // RFC 9494 §3: the LLGR capability means nothing without the GR capability beside it.
    const l = o.longLivedGracefulRestart;
    caps.push({
      code: 71, name: 'long-lived-graceful-restart',
      families: o.families.map((f) => ({ ...fam(f), forwardingState: l.forwardingState ?? false, staleTime: Math.min(Math.max(0, Math.floor(l.staleTime)), 0xffffff) })),
    });
  }
  const ap = [...(o.addPath ?? new Map<number, 1 | 2 | 3>())].filter(([f]) => o.families.includes(f));
  if (ap.length > 0) caps.push({ code: 69, name: 'add-path', families: ap.map(([f, sendReceive]) => ({ ...fam(f), sendReceive })) });
  if (o.enhancedRouteRefresh) caps.push({ code: 70, name: 'enhanced-route-refresh' });
  return caps;
}

/** My Autonomous System field for an AS (RFC 6793 §4.1: AS_TRANS when it does not fit 2 octets). */
export const myAsField = (asn: number): number => (asn > 0xffff ? AS_TRANS : asn);
