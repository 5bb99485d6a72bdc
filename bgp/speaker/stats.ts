// A peer's counters (PeerCounters: messages, NOTIFICATIONs, prefixes, UPDATE errors) and the one-line reason a
// session went down (`skeinctl status` INFO column). The speaker calls these as messages arrive and sessions end.
import type { FsmAction } from '../session/fsm.js';
import type { Message } from '../wire/types.js';
import type { Connection, Peer } from './peer.js';
import type { LogRateLimit } from './rate-limit.js';
import { notificationText } from './text.js';

/** Count a received message; an UPDATE with a handled error (RFC 7606) gets a rate-limited log line. */
export function countReceived(p: Peer, msg: Message, remoteLog: LogRateLimit, warn: (msg: string) => void): void {
  p.counters.messagesIn[msg.type]++;
  if (msg.type === 'UPDATE') {
    p.counters.prefixesReceived += msg.nlri.prefixes.length + (msg.mpReach?.nlri.prefixes.length ?? 0);
    if (msg.mpReach?.nlri.afi === 2) p.counters.prefixesReceived6 += msg.mpReach.nlri.prefixes.length; // IPv6 NLRI (RFC 4760)
    if (msg.errorAction !== undefined) {
      p.counters.updateErrors++;
      const suppressed = remoteLog.take(p.address, 'update-error');
      if (suppressed !== null) {
        warn(`UPDATE error handled by ${msg.errorAction}: ${(msg.errors ?? []).map((x) => x.reason).join('; ')}${suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : ''}`);
      }
    }
  } else if (msg.type === 'NOTIFICATION') {
    const k = `${msg.code}/${msg.subcode}`;
    p.counters.notificationsIn[k] = (p.counters.notificationsIn[k] ?? 0) + 1;
  }
}

/** A connection went down: count a NOTIFICATION we sent, and say why in the peer's info. */
export function noteDown(p: Peer, c: Connection, a: Extract<FsmAction, { type: 'down' }>): void {
  if (a.notification) {
    const k = `${a.notification.message.code}/${a.notification.message.subcode}`;
    const n = a.notification.sent ? p.counters.notificationsOut : p.counters.notificationsIn;
    if (a.notification.sent) n[k] = (n[k] ?? 0) + 1; // received ones were counted on arrival
    p.info = `${a.notification.sent ? 'sent' : 'received'} NOTIFICATION ${notificationText(a.notification.message)}`;
  } else if (c === p.primary || c.inRib) {
    p.info = a.reason;
  }
}
