// BFD says the path to a peer is up again (RFC 5882 §4.3 leaves what a client does with an Up to it): a host that
// comes back from a power loss should get its sessions at once, not after our peer oscillation damping
// (RFC 4271 §8.1.1 DampPeerOscillations: an IdleHoldTimer that doubled with every failed attempt while the host
// was gone, up to idleHold.max, 60 s by default) nor after a TCP connect still backing off its SYN retries to an
// address that did not answer. The damping is there against a peer that flaps by itself; a BFD Up is fresh
// evidence from a second protocol that the peer answers, so the back-off has done its job.
//
// Only connections waiting on their own: Idle with the IdleHoldTimer armed (a damped restart), or Connect (an
// attempt not yet connected). A session an operator stopped (ManualStop: no IdleHoldTimer) or one told to stay down
// (AutomaticStop with idleHold null, as graceful restart does) is left as it is.
import type { FsmEvent } from '../session/fsm.js';
import type { Connection, Peer } from './peer.js';

/** Feeds the event that lifts the damping of the peer's own connection; returns whether it was started again. */
export function liftDamping(p: Peer, feed: (c: Connection, e: FsmEvent) => void): boolean {
  // Only the peer's own connection (the one that dials, or listens when passive): an accepted connection that
  // is still around is not ours to start, and telling it to connect would open a second one to the same peer.
  const c = p.primary;
  if (c.dead) return false;
  const fsm = c.fsm;
  if (fsm.state === 'Idle' && fsm.timerRunning('IdleHold')) {
    fsm.resetBackoff(); // the next failure starts the damping from its initial wait again
    feed(c, { type: 'IdleHoldTimerExpires' }); // §8.2.2 Idle, event 13: start as the timer would have
    return true;
  }
  if (fsm.state === 'Connect' && !fsm.timerRunning('DelayOpen')) {
    // §8.2.2 Connect, event 9: drop the attempt and connect again now, not when the SYN back-off retries (with
    // DelayOpen running the TCP connection is up already: left alone)
    feed(c, { type: 'ConnectRetryTimerExpires' });
    return true;
  }
  return false;
}
