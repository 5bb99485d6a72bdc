// Sessions: the RFC 4271 §8 state machine and what two OPENs negotiate.
//
// Driving one peer (what the TCP driver does; nothing here does I/O):
//   fsm = new SessionFsm({ ..., capabilities: buildCapabilities({...}) }, clock)
//   events in:  ManualStart; TcpConnected / TcpFails from the socket; each decoded
//               message as Open / Keepalive / Update / Notification / RouteRefresh;
//               codec errors as HeaderError / OpenError / UpdateError (session-reset
//               only; RFC 7606 lesser errors arrive as an UPDATE with errorAction);
//               SendProgress{pending} after writes and on 'drain'; fsm.tick() when
//               the clock reaches fsm.nextDeadline().
//   actions out, in order: connect, send (encode + write), close, setTimer/clearTimer
//               (or just re-read nextDeadline()), established → rib.peerUp(id, session),
//               update → rib.applyUpdate(id, the decoded UPDATE) — but an End-of-RIB
//               (isEndOfRib(), RFC 4724 §2) is not for the RIB: it ends a graceful
//               restart's wait (sweepStale for its family), routeRefresh →
//               subtype 0 rib.routeRefresh, 1 rib.markStale, 2 rib.sweepStale,
//               down → rib.peerDown(id, { retainStale: peer did graceful restart }) (the
//               speaker decides which ends are graceful: RFC 4724 §4.2, RFC 8538 §3).
//   SendHold contract (RFC 9687): the machine arms SendHold itself when it sends our
//               OPEN. After that the driver owns the signal: after every write (and on
//               'drain') it feeds SendProgress{pending: socket.writableLength > 0}.
//               pending=true restarts the timer (bytes moved, more wait); pending=false
//               stops it (nothing waits, so a slow peer is not "stuck"). Report pending=
//               true only when bytes actually moved since the last report: repeating it
//               while the socket is stuck would keep restarting the timer and hide a
//               peer that stopped reading. Expiry closes with NOTIFICATION 8/0 (best
//               effort). Add updates: true when the write carried UPDATEs: that
//               restarts the KeepaliveTimer (RFC 4271 §4.4).
//   Two connections to one peer: both run a SessionFsm; when the second reaches an
//   OPEN, collisionWinner() picks the survivor and the other gets OpenCollisionDump.
export { SessionFsm, TABLE, STATES, TIMERS, EVENT_TYPES, OPEN_HOLD_MS, MIN_SEND_HOLD_MS, fsmSubcode, notificationOf } from './fsm.js';
export type { State, TimerName, FsmEvent, FsmEventType, FsmAction, FsmConfig, Clock } from './fsm.js';
export { negotiate, buildCapabilities, validateOpen, openAs, announcedFamilies, collisionWinner, COLLISION_CEASE, myAsField } from './negotiate.js';
export type { CapabilityOptions, NegotiatedSession, PeerGracefulRestart, OpenExpectations, Initiator } from './negotiate.js';
