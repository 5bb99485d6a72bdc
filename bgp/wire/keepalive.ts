// KEEPALIVE message (RFC 4271 §4.4): a header alone, 19 octets. Its length
// rule is checked with the header (RFC 4271 §6.1).
import { HEADER_LEN, MessageType } from './constants.js';
import { writeHeader } from './header.js';
import type { KeepaliveMessage } from './types.js';

const KEEPALIVE_BYTES: Buffer = (() => {
  const b = Buffer.alloc(HEADER_LEN);
  writeHeader(b, 0, HEADER_LEN, MessageType.KEEPALIVE);
  return b;
})();

export const KEEPALIVE: KeepaliveMessage = Object.freeze({ type: 'KEEPALIVE' });

/** A fresh copy of the 19 octets (callers may hand it to a socket that keeps it). */
export function encodeKeepalive(): Buffer {
  return Buffer.from(KEEPALIVE_BYTES);
}
