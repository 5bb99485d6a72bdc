// NOTIFICATION message (RFC 4271 §4.5): error code, subcode, data. Names for
// every code and subcode skein knows, RFC 9003 shutdown communication for
// Cease / Administrative Shutdown and Reset, and the inner error of an RFC
// 8538 Hard Reset. A NOTIFICATION is never itself an error: odd data is kept
// as bytes and simply yields no text.
//
//   +-----------+-----------+----------------------------------+
//   | Code (1)  | Subcode(1)| Data (variable)                  |
//   +-----------+-----------+----------------------------------+
// RFC 9003 §2 data, for Cease subcodes 2 and 4:
//   +-----------+------------------------------------------+
//   | Length (1)| Shutdown Communication (UTF-8, 0..255)   |
//   +-----------+------------------------------------------+
import { CeaseSubcode, ErrorCode, HEADER_LEN, MessageType } from './constants.js';
import { BgpError } from './errors.js';
import { writeHeader } from './header.js';
import type { NotificationMessage } from './types.js';

export const ERROR_CODE_NAMES: Readonly<Record<number, string>> = {
  1: 'Message Header Error', // RFC 4271 §4.5
  2: 'OPEN Message Error',
  3: 'UPDATE Message Error',
  4: 'Hold Timer Expired',
  5: 'Finite State Machine Error',
  6: 'Cease',
  7: 'ROUTE-REFRESH Message Error', // RFC 7313 §5
  8: 'Send Hold Timer Expired', // RFC 9687
};

export const ERROR_SUBCODE_NAMES: Readonly<Record<number, Readonly<Record<number, string>>>> = {
  1: { 1: 'Connection Not Synchronized', 2: 'Bad Message Length', 3: 'Bad Message Type' }, // RFC 4271 §6.1
  2: {
    1: 'Unsupported Version Number', // RFC 4271 §6.2
    2: 'Bad Peer AS',
    3: 'Bad BGP Identifier',
    4: 'Unsupported Optional Parameter',
    5: 'Authentication Failure (deprecated)', // RFC 4271 Appendix A
    6: 'Unacceptable Hold Time',
    7: 'Unsupported Capability', // RFC 5492 §5
    11: 'Role Mismatch', // RFC 9234 §4.2
  },
  3: {
    1: 'Malformed Attribute List', // RFC 4271 §6.3
    2: 'Unrecognized Well-known Attribute',
    3: 'Missing Well-known Attribute',
    4: 'Attribute Flags Error',
    5: 'Attribute Length Error',
    6: 'Invalid ORIGIN Attribute',
    7: 'AS Routing Loop (deprecated)', // RFC 4271 Appendix A
    8: 'Invalid NEXT_HOP Attribute',
    9: 'Optional Attribute Error',
    10: 'Invalid Network Field',
    11: 'Malformed AS_PATH',
  },
  5: {
    0: 'Unspecified Error', // RFC 6608 §4
    1: 'Receive Unexpected Message in OpenSent State',
    2: 'Receive Unexpected Message in OpenConfirm State',
    3: 'Receive Unexpected Message in Established State',
  },
  6: {
    1: 'Maximum Number of Prefixes Reached', // RFC 4486 §4
    2: 'Administrative Shutdown',
    3: 'Peer De-configured',
    4: 'Administrative Reset',
    5: 'Connection Rejected',
    6: 'Other Configuration Change',
    7: 'Connection Collision Resolution',
    8: 'Out of Resources',
    9: 'Hard Reset', // RFC 8538 §5
    10: 'BFD Down', // RFC 9384
  },
  7: { 1: 'Invalid Message Length' }, // RFC 7313 §5
};

export function errorCodeName(code: number): string {
  return ERROR_CODE_NAMES[code] ?? `Unknown error code ${code}`;
}

/** Subcode 0 is "Unspecific" for every code (RFC 4271 §4.5) except FSM, where RFC 6608 names it. */
export function errorSubcodeName(code: number, subcode: number): string {
  const name = ERROR_SUBCODE_NAMES[code]?.[subcode];
  if (name !== undefined) return name;
  return subcode === 0 ? 'Unspecific' : `Unknown subcode ${subcode}`;
}

/** RFC 9003 §2: shutdown communications go with these two Cease subcodes. */
const carriesShutdownText = (code: number, subcode: number): boolean =>
  code === ErrorCode.Cease && (subcode === CeaseSubcode.AdministrativeShutdown || subcode === CeaseSubcode.AdministrativeReset);

/**
 * RFC 9003 §2 shutdown communication in `data`, or undefined when absent,
 * empty, longer than the data, or not valid UTF-8 (RFC 9003 §4: then the data
 * is kept and only the text is dropped). Octets after the communication are
 * allowed and ignored.
 */
export function shutdownCommunication(data: Buffer): string | undefined {
  if (data.length < 1) return undefined;
  const len = data[0] as number;
  if (len === 0 || 1 + len > data.length) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(1, 1 + len));
  } catch {
    return undefined;
  }
}

/** The error a Hard Reset stands for (RFC 8538 §3): its data starts with the inner code and subcode. */
export interface HardResetCause {
  readonly code: number;
  readonly subcode: number;
  readonly data: Buffer;
}

export function hardResetCause(n: Pick<NotificationMessage, 'code' | 'subcode' | 'data'>): HardResetCause | undefined {
  if (n.code !== ErrorCode.Cease || n.subcode !== CeaseSubcode.HardReset || n.data.length < 2) return undefined;
  return { code: n.data[0] as number, subcode: n.data[1] as number, data: n.data.subarray(2) };
}

/** Decode a NOTIFICATION body (after the header). Never throws for content: every byte string of 2+ octets is a NOTIFICATION. */
export function decodeNotification(body: Buffer): NotificationMessage {
  if (body.length < 2) {
    // Only reachable by a direct caller; the framer enforces 21 octets (RFC 4271 §6.1).
    throw new BgpError(ErrorCode.MessageHeader, 2, `NOTIFICATION body is ${body.length} octets, needs 2`);
  }
  const code = body[0] as number;
  const subcode = body[1] as number;
  const data = Buffer.from(body.subarray(2));
  let message: string | undefined;
  if (carriesShutdownText(code, subcode)) message = shutdownCommunication(data);
  else {
    // RFC 8538 §3: a Hard Reset wrapping an Administrative Shutdown/Reset carries the text after the inner code/subcode.
    const inner = hardResetCause({ code, subcode, data });
    if (inner && carriesShutdownText(inner.code, inner.subcode)) message = shutdownCommunication(inner.data);
  }
  return message === undefined ? { type: 'NOTIFICATION', code, subcode, data } : { type: 'NOTIFICATION', code, subcode, data, message };
}

/** Cut a string to at most `max` UTF-8 octets without splitting a character. */
function utf8Prefix(s: string, max: number): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  // Back off over continuation octets (10xxxxxx) so the cut lands on a character start.
  while (end > 0 && ((b[end] as number) & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/** RFC 9003 §2 data for a shutdown communication: a length octet and up to 255 octets of UTF-8. */
export function shutdownData(message: string): Buffer {
  const text = utf8Prefix(message, 255);
  return Buffer.concat([Buffer.from([text.length]), text]);
}

/**
 * Encode a whole NOTIFICATION. `data` is sent as given; when it is empty and a
 * `message` is set on Cease 2/4, the data is built from the message (RFC 9003 §2,
 * cut to 255 octets on a character boundary).
 */
export function encodeNotification(msg: Omit<NotificationMessage, 'type'>): Buffer {
  let data = msg.data;
  if (data.length === 0 && msg.message !== undefined && carriesShutdownText(msg.code, msg.subcode)) data = shutdownData(msg.message);
  const buf = Buffer.allocUnsafe(HEADER_LEN + 2 + data.length);
  writeHeader(buf, 0, buf.length, MessageType.NOTIFICATION);
  buf[HEADER_LEN] = msg.code;
  buf[HEADER_LEN + 1] = msg.subcode;
  data.copy(buf, HEADER_LEN + 2);
  return buf;
}

/** The NOTIFICATION a BgpError asks for (RFC 4271 §6). */
export function notificationFor(err: BgpError): NotificationMessage {
  return { type: 'NOTIFICATION', code: err.code, subcode: err.subcode, data: err.data };
}
