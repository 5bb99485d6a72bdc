// Route refresh in both directions. A peer asks us (RFC 2918 ROUTE-REFRESH, subtype 0) to send a family again, or
// brackets its own re-send with BoRR / EoRR (RFC 7313 subtypes 1 and 2: mark its routes stale, then sweep what it
// did not send again). We ask a peer when our import side changed; a peer that cannot refresh is re-imported from
// what we kept of it (soft-reconfiguration inbound), or, failing that, reset.
import type { RibCore } from '../rib/core.js';
import { CeaseSubcode, familyKey } from '../wire/constants.js';
import type { Connection, Peer } from './peer.js';
import type { Sender } from './sender.js';

/** A ROUTE-REFRESH the peer sent (the FSM's routeRefresh action). */
export function refreshRequested(rib: RibCore, p: Peer, afi: number, safi: number, subtype: number): void {
  const fam = familyKey(afi, safi);
  if (subtype === 0) rib.routeRefresh(p.coreId, afi, safi);
  else if (subtype === 1) rib.markStale(p.coreId, fam);
  else if (subtype === 2) rib.sweepStale(p.coreId, fam);
}

export interface RefreshHost {
  rib: RibCore;
  sender: Sender;
  /** the import side was re-applied to kept routes: hand out the changes */
  changed: () => void;
  /** end the session: the peer cannot send its routes again */
  reset: (subcode: number, reason: string) => void;
}

/** Our import side changed for this session: get the peer's routes through it again. */
export function refreshImports(p: Peer, conn: Connection, h: RefreshHost): void {
  const s = conn.session;
  if (s?.routeRefresh) {
    for (const f of s.families) h.sender.send(p, conn, { type: 'ROUTE-REFRESH', afi: f >> 8, safi: f & 0xff, subtype: 0 });
  } else if (h.rib.keepsReceived(p.coreId)) {
    h.rib.reimport(p.coreId);
    h.changed();
  } else {
    h.reset(CeaseSubcode.OtherConfigurationChange, 'import policy changed; the peer cannot refresh');
  }
}
