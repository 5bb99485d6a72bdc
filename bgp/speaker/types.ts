// The speaker's exported vocabulary other than JSON: what peerInfo() returns, what the Speaker emits, and the
// options of stop(). Kept apart from speaker.ts so that readers of the API (the daemon, the tests) find it without
// reading the speaker's machinery. The JSON shapes the operator sees are in json.ts.
import type { State } from '../session/fsm.js';
import type { Message, PathAttributes } from '../wire/types.js';
import type { PrefixKey } from '../rib/core.js';

export type MessageTypeName = Message['type'];

export interface PeerCounters {
  messagesIn: Record<MessageTypeName, number>;
  messagesOut: Record<MessageTypeName, number>;
  /** NOTIFICATIONs by "code/subcode" */
  notificationsIn: Record<string, number>;
  notificationsOut: Record<string, number>;
  /** NLRI announced to us in UPDATEs (cumulative, pre-policy) */
  prefixesReceived: number;
  /** of those, IPv6 NLRI (MP_REACH_NLRI with AFI 2): the rest are IPv4 */
  prefixesReceived6: number;
  /** UPDATEs that carried an RFC 7606 error handled without a reset */
  updateErrors: number;
  /** routes that could not be encoded for this peer (too large for its message size): withdrawn instead */
  unsendable: number;
  /** sessions that reached Established */
  established: number;
}

export interface PeerInfo {
  readonly state: State;
  readonly since: Date;
  /** the last error or NOTIFICATION, as text */
  readonly info: string;
  /** serial number of the primary connection; a new number means a new TCP connection */
  readonly connection: number | null;
  readonly counters: PeerCounters;
  /** octets accepted by socket.write() but not yet handed to the kernel */
  readonly writeBuffered: number;
  /** sending waits for 'drain' */
  readonly writeBlocked: boolean;
  /** families (familyKey) of the current session whose End-of-RIB has not arrived yet; empty when not Established */
  readonly endOfRibPending: readonly number[];
  /** the current session's peer announced graceful restart (and so promises End-of-RIB, RFC 4724 §2) */
  readonly gracefulRestart: boolean;
}

export interface PeerStateEvent {
  readonly address: string;
  readonly from: State;
  readonly state: State;
  readonly since: Date;
  readonly info: string;
}

export interface BestEvent {
  /** "10.0.0.0/24" / "fd00::/64" (made when read) */
  readonly prefix: string;
  /** the RIB's key of the prefix: IPv4 as address * 64 + length, IPv6 as its canonical text */
  readonly key: PrefixKey;
  readonly afi: 1 | 2;
  /** null: the prefix is gone */
  readonly attributes: PathAttributes | null;
  readonly nextHops: readonly string[];
  /** our own origination (nothing to install) */
  readonly local: boolean;
  readonly from: string | null;
}

export interface EndOfRibEvent {
  readonly peer: string;
  readonly afi: number;
  readonly safi: number;
}

export interface StaleEvent {
  readonly peer: string;
  /** long-lived: the families entered the RFC 9494 long-lived phase (paths: how many were kept, with LLGR_STALE) */
  readonly action: 'retained' | 'swept' | 'long-lived';
  /** familyKey values */
  readonly families: readonly number[];
  /** swept: how many paths went; retained: how many paths the peer has in all */
  readonly paths: number;
  readonly reason: string;
}

export interface StopOptions {
  /** send Cease / Administrative Shutdown with this RFC 9003 text; omit to close without a NOTIFICATION */
  readonly message?: string;
  readonly notify?: boolean;
}
