// A peer's configuration as the RIB core sees it (corePeerConfig), and what a change of a peer's options means for
// its session (peerChange, for Speaker.updatePeer): a session parameter (sessionKey) resets the session; a changed
// import side asks the peer for its routes again (RFC 2918 ROUTE-REFRESH); a changed export side recomputes what we
// send; a new prefix limit ends a maximum-prefix hold-down.
import type { PeerConfig } from '../rib/core.js';
import { isIpv4 } from '../wire/prefix.js';
import { sessionKey, type PeerOptions, type SpeakerOptions } from './config.js';

/**
 * The core's view of a peer. Next hops come from the session's own address (`local`) when one is up, else from
 * the peer's or the speaker's options.
 */
export function corePeerConfig(o: PeerOptions, address: string, local: string | undefined, opts: SpeakerOptions): PeerConfig {
  const v4 = o.nextHop4 ?? (local !== undefined && isIpv4(local) ? local : opts.nextHop4);
  const v6 = o.nextHop6 ?? (local !== undefined && !isIpv4(local) ? local : opts.nextHop6);
  const importPolicy = o.importPolicy;
  const exportPolicy = o.exportPolicy;
  return {
    address,
    asn: o.asn,
    ...(o.localAsn !== undefined ? { localAs: o.localAsn } : {}),
    ...(o.routeReflectorClient ? { routeReflectorClient: true } : {}),
    ...(o.addPathSend !== undefined ? { addPathSend: o.addPathSend } : {}),
    ...(v4 !== undefined ? { localAddress: v4 } : {}),
    ...(v6 !== undefined ? { localAddress6: v6 } : {}),
    ...(o.nextHopSelf !== undefined ? { nextHopSelf: o.nextHopSelf } : {}),
    ...(o.nextHopKeep !== undefined ? { nextHopKeep: o.nextHopKeep } : {}),
    ...(o.allowOwnAs !== undefined ? { allowOwnAs: o.allowOwnAs } : {}),
    ...(importPolicy !== undefined ? { importPolicy } : {}),
    ...(exportPolicy !== undefined ? { exportPolicy } : {}),
    ...(o.rules !== undefined ? { rules: o.rules } : {}),
  };
}

export interface PeerChange {
  /** a session parameter changed: the session is reset (Cease / Other Configuration Change, RFC 4486 subcode 6) */
  session: boolean;
  /** import policy, import rules or allowOwnAs changed */
  importChanged: boolean;
  /** export policy, export rules, next-hop handling or ADD-PATH send changed */
  exportChanged: boolean;
  /** maximum prefixes changed */
  limitChanged: boolean;
}

export function peerChange(old: PeerOptions, o: PeerOptions): PeerChange {
  const rulesOf = (x: PeerOptions, dir: 'import' | 'export'): string =>
    x.rules === undefined ? '' : JSON.stringify(dir === 'import' ? [x.rules.import4, x.rules.import6] : [x.rules.export4, x.rules.export6]);
  return {
    session: sessionKey(old) !== sessionKey(o),
    importChanged: old.importPolicy !== o.importPolicy || (old.allowOwnAs ?? 0) !== (o.allowOwnAs ?? 0) || rulesOf(old, 'import') !== rulesOf(o, 'import'),
    exportChanged:
      old.exportPolicy !== o.exportPolicy || rulesOf(old, 'export') !== rulesOf(o, 'export') || old.nextHopSelf !== o.nextHopSelf ||
      old.nextHopKeep !== o.nextHopKeep || old.nextHop4 !== o.nextHop4 || old.nextHop6 !== o.nextHop6 ||
      JSON.stringify(old.addPathSend) !== JSON.stringify(o.addPathSend),
    limitChanged: JSON.stringify(old.maxPrefixes) !== JSON.stringify(o.maxPrefixes),
  };
}
