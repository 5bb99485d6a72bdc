// Per-peer state of the speaker: a Peer (one per configured neighbour) and its Connections (one, or two while a
// collision is being resolved, RFC 4271 §6.8). Plain data with no behaviour of its own: the Speaker (speaker.ts)
// drives both; they live here so that speaker.ts reads as the driver and this file as what it drives.
import type net from 'node:net';
import type { NegotiatedSession } from '../session/negotiate.js';
import type { SessionFsm, State } from '../session/fsm.js';
import { Framer } from '../wire/framer.js';
import { DEFAULT_CONTEXT } from '../wire/types.js';
import type { CodecContext } from '../wire/types.js';
import type { PeerOptions } from './config.js';
import type { GracefulRestart } from './graceful-restart.js';
import type { MessageTypeName, PeerCounters } from './types.js';

const emptyTypes = (): Record<MessageTypeName, number> => ({ OPEN: 0, UPDATE: 0, NOTIFICATION: 0, KEEPALIVE: 0, 'ROUTE-REFRESH': 0 });
const emptyCounters = (): PeerCounters => ({
  messagesIn: emptyTypes(),
  messagesOut: emptyTypes(),
  notificationsIn: {},
  notificationsOut: {},
  prefixesReceived: 0,
  prefixesReceived6: 0,
  updateErrors: 0,
  unsendable: 0,
  established: 0,
});

let connectionSerial = 0;

export class Connection {
  readonly serial = ++connectionSerial;
  socket: net.Socket | null = null;
  /** replaced on every attach: bytes left over from an earlier session must not be read as this one's */
  framer = new Framer();
  ctx: CodecContext = DEFAULT_CONTEXT;
  dial: AbortController | null = null;
  /** taken out of its peer: its events and actions are ignored from now on */
  dead = false;
  /** the core knows this connection's session (peerUp was called for it) */
  inRib = false;
  /** SendHold timer believed running (we reported pending bytes) */
  sendPending = false;
  /** writes are paused until 'drain' */
  blocked = false;
  /** reading is paused: the last read slice ended with input still buffered (read-slices.ts) */
  readPaused = false;
  /** a later read slice will handle this connection's buffered input */
  readWaiting = false;
  session: NegotiatedSession | null = null;
  constructor(
    readonly fsm: SessionFsm,
    readonly inbound: boolean,
  ) {}
}

export class Peer {
  readonly counters = emptyCounters();
  readonly conns: Connection[] = [];
  primary: Connection;
  timer: NodeJS.Timeout | null = null;
  timerAt = Infinity;
  since = new Date();
  info = '';
  state: State = 'Idle';
  pumpScheduled = false;
  removed = false;
  /** families whose maximum-prefix warning has been logged; cleared when the count falls below the threshold (RFC 4486) */
  readonly prefixWarned = new Set<number>();
  /** maximum prefixes exceeded: refuse the peer until this time (Date.now() ms; Infinity for good) */
  heldUntil = 0;
  /** families of the current session whose End-of-RIB the peer has not sent yet */
  readonly eorPending = new Set<number>();
  constructor(
    public opts: PeerOptions,
    readonly address: string,
    public coreId: number,
    fsm: SessionFsm,
    /** RFC 4724 / RFC 9494 helper side for this peer's routes */
    readonly gr: GracefulRestart,
  ) {
    this.primary = new Connection(fsm, false);
    this.conns.push(this.primary);
  }
}

/** The connection whose session the RIB core knows (peerUp was called for it), if any. */
export function ribConn(p: Peer): Connection | null {
  return p.conns.find((c) => c.inRib && !c.dead) ?? null;
}
