// How the speaker writes prefixes and NOTIFICATIONs for people (logs, `info`, JSON views), and reads a prefix back.
// Must not: be used on the per-route path (the RIB keys prefixes as numbers and short strings, rib/).
import { errorCodeName, errorSubcodeName } from '../wire/notification.js';
import { parsePrefix4, parsePrefix6, prefix4ToString } from '../wire/prefix.js';
import type { NotificationMessage } from '../wire/types.js';
import type { PrefixKey } from '../rib/core.js';

/** NOTIFICATION as text for `info` and logs (RFC 9003 text included). */
export function notificationText(n: NotificationMessage): string {
  const base = `${errorCodeName(n.code)} / ${errorSubcodeName(n.code, n.subcode)} (${n.code}/${n.subcode})`;
  return n.message !== undefined ? `${base}: "${n.message}"` : base;
}

export function parsePrefixText(text: string): PrefixKey {
  return text.includes(':') ? parsePrefix6(text) : parsePrefix4(text);
}

export function prefixText(p: PrefixKey): string {
  return typeof p === 'number' ? prefix4ToString(p) : p;
}
