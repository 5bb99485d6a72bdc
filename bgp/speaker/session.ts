// What we offer a peer in our OPEN, the session machine built for each connection, and which of two colliding
// connections survives (RFC 4271 §6.8). Capabilities (RFC 5492) come from the peer's options and the speaker's;
// they are built when each OPEN goes out, so the graceful-restart R bit clears once the speaker's restart is over
// (RFC 4724 §4.1).
import { buildCapabilities, collisionWinner } from '../session/negotiate.js';
import { SessionFsm, type Clock } from '../session/fsm.js';
import type { Capability } from '../wire/types.js';
import { FAMILY_KEYS, type PeerOptions, type SpeakerOptions } from './config.js';
import type { Connection, Peer } from './peer.js';

/** RFC 4724 §3 suggests the restart time; BIRD and FRR use 120 s, as does Calico. */
export const DEFAULT_RESTART_TIME_S = 120;

/** The families configured for a peer, as familyKey values in ascending order. */
export function peerFamilies(o: PeerOptions): number[] {
  return (o.families ?? ['ipv4-unicast', 'ipv6-unicast']).map((f) => FAMILY_KEYS[f]).sort((a, b) => a - b);
}

export interface SessionContext {
  opts: SpeakerOptions;
  localAsn: number;
  routerId: number;
  /** our own restart is not over yet: the R bit (read when each OPEN is built) */
  restarting: () => boolean;
  clock: Clock;
}

export function newSessionFsm(o: PeerOptions, x: SessionContext): SessionFsm {
  const opts = x.opts;
  const families = peerFamilies(o);
  const localAs = o.localAsn ?? x.localAsn;
  const caps = (): Capability[] => buildCapabilities({
    localAs,
    families,
    // RFC 7911 §4: Send/Receive 1 receive, 2 send, 3 both, per family
    ...(o.addPathReceive || o.addPathSend
      ? { addPath: new Map(families.map((f) => [f, ((o.addPathReceive ? 1 : 0) | (o.addPathSend ? 2 : 0)) as 1 | 2 | 3])) }
      : {}),
    extendedMessage: o.extendedMessage ?? true,
    ...(opts.gracefulRestart ?? true
      ? {
          gracefulRestart: {
            restartTime: o.restartTime ?? DEFAULT_RESTART_TIME_S,
            restarting: x.restarting(),
            forwardingState: opts.forwardingState ?? false,
            notification: true, // RFC 8538 §2
          },
          ...((o.longLivedStaleTime ?? 0) > 0
            ? { longLivedGracefulRestart: { staleTime: o.longLivedStaleTime as number, forwardingState: opts.forwardingState ?? false } }
            : {}),
        }
      : {}),
  });
  const holdTime = o.holdTime ?? opts.holdTime;
  const keepaliveTime = o.keepaliveTime ?? opts.keepaliveTime;
  const connectRetryTime = o.connectRetryTime ?? opts.connectRetryTime;
  return new SessionFsm(
    {
      localAs,
      routerId: x.routerId,
      peerAs: o.asn,
      get capabilities() {
        return caps();
      },
      ...(o.passive !== undefined ? { passive: o.passive } : {}),
      ...(holdTime !== undefined ? { holdTime } : {}),
      ...(keepaliveTime !== undefined ? { keepaliveTime } : {}),
      ...(connectRetryTime !== undefined ? { connectRetryTime } : {}),
      ...(opts.idleHold !== undefined ? { idleHold: opts.idleHold } : {}),
    },
    x.clock,
  );
}

/**
 * RFC 4271 §6.8: an OPEN on one connection while the other is in OpenConfirm (or Established) decides which
 * survives (c: the connection whose OPEN just came). Null when there is no collision.
 */
export function collision(p: Peer, c: Connection, remoteId: number, routerId: number, localAsn: number): { loser: Connection; winner: Connection } | null {
  const other = p.conns.find((x) => x !== c && !x.dead && (x.fsm.state === 'OpenConfirm' || x.fsm.state === 'Established'));
  if (!other) return null;
  let loser: Connection;
  if (other.fsm.state === 'Established') {
    loser = c; // §6.8: a connection colliding with an Established one is closed
  } else {
    const localAs = p.opts.localAsn ?? localAsn;
    const keep = collisionWinner(routerId, remoteId, localAs, p.opts.asn || other.session?.peerAs || 0);
    const keepInbound = keep === 'remote';
    loser = c.inbound === keepInbound ? other : c;
  }
  return { loser, winner: loser === c ? other : c };
}
