// RFC 4271 §4.1 message header: 16-octet marker of all ones, 2-octet length
// (header included), 1-octet type. Writing a header, and the header checks of
// RFC 4271 §6.1 shared by the stream framer and decodeMessage so both reject
// exactly the same bytes with exactly the same NOTIFICATION.
//
//   0                   1                   2                   3
//   +-------------------------------------------------------------+
//   |                      Marker (16 octets, all 0xff)           |
//   +-------------------------------+---------------+-------------+
//   |          Length (2)           |   Type (1)    |
//   +-------------------------------+---------------+
import { ErrorCode, HEADER_LEN, HeaderSubcode, MARKER_LEN, MAX_MESSAGE_LEN, MessageType } from './constants.js';
import { BgpError } from './errors.js';

/** Write a header for a message of `length` octets (header included) at `offset`. */
export function writeHeader(buf: Buffer, offset: number, length: number, type: number): void {
  buf.fill(0xff, offset, offset + MARKER_LEN);
  buf.writeUInt16BE(length, offset + MARKER_LEN);
  buf[offset + MARKER_LEN + 2] = type;
}

/** A whole message: header plus body. */
export function frame(type: number, body: Buffer | Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_LEN + body.length);
  writeHeader(buf, 0, HEADER_LEN + body.length, type);
  buf.set(body, HEADER_LEN);
  return buf;
}

/** Smallest legal length of each message type, header included (RFC 4271 §4.2-§4.5, RFC 2918 §3). */
const MIN_LENGTH: Readonly<Record<number, number>> = {
  [MessageType.OPEN]: 29,
  [MessageType.UPDATE]: 23,
  [MessageType.NOTIFICATION]: 21,
  [MessageType.KEEPALIVE]: 19,
  [MessageType.ROUTE_REFRESH]: 23,
};

/** The 2-octet length field as the NOTIFICATION data of Bad Message Length (RFC 4271 §6.1). */
function lengthField(length: number): Buffer {
  const d = Buffer.alloc(2);
  d.writeUInt16BE(length);
  return d;
}

/**
 * Check the 19 header octets at `offset` (RFC 4271 §6.1) and return the
 * message length. `maxLength` is 4096, or 65535 once both ends sent the RFC
 * 8654 capability. Throws a Message Header Error BgpError.
 *
 * ROUTE-REFRESH with a length other than 23 passes here: RFC 7313 §5 wants the
 * whole message as NOTIFICATION data, so that check runs once the message is
 * complete (see checkRouteRefreshLength).
 */
export function checkHeader(buf: Buffer, offset: number, maxLength: number): number {
  // RFC 4271 §6.1: a marker that is not all ones is Connection Not Synchronized.
  if (
    buf.readUInt32BE(offset) !== 0xffffffff ||
    buf.readUInt32BE(offset + 4) !== 0xffffffff ||
    buf.readUInt32BE(offset + 8) !== 0xffffffff ||
    buf.readUInt32BE(offset + 12) !== 0xffffffff
  ) {
    throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.ConnectionNotSynchronized, 'marker is not all ones');
  }
  const length = buf.readUInt16BE(offset + MARKER_LEN);
  const type = buf[offset + MARKER_LEN + 2] ?? 0;
  // RFC 4271 §6.1: length below 19 or above the maximum; data is the length field.
  if (length < HEADER_LEN || length > maxLength) {
    throw new BgpError(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageLength,
      `message length ${length} outside ${HEADER_LEN}..${maxLength}`,
      lengthField(length),
    );
  }
  // RFC 4271 §6.1 Bad Message Type: data is the type octet. 5 is ROUTE-REFRESH (RFC 2918 §3).
  const min = MIN_LENGTH[type];
  if (min === undefined) {
    throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.BadMessageType, `unknown message type ${type}`, Buffer.from([type]));
  }
  // RFC 8654 §4: OPEN and KEEPALIVE never exceed 4096, even once extended messages are negotiated.
  if ((type === MessageType.OPEN || type === MessageType.KEEPALIVE) && length > MAX_MESSAGE_LEN) {
    throw new BgpError(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageLength,
      `${type === MessageType.OPEN ? 'OPEN' : 'KEEPALIVE'} length ${length} above ${MAX_MESSAGE_LEN} (RFC 8654 §4)`,
      lengthField(length),
    );
  }
  // RFC 4271 §6.1: per-type minimums; a KEEPALIVE is exactly 19 octets (§4.4).
  if (length < min || (type === MessageType.KEEPALIVE && length !== HEADER_LEN)) {
    throw new BgpError(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageLength,
      `${type === MessageType.KEEPALIVE ? 'KEEPALIVE must be 19 octets' : `message type ${type} needs at least ${min} octets`}, length is ${length}`,
      lengthField(length),
    );
  }
  return length;
}

/**
 * RFC 7313 §5: a ROUTE-REFRESH whose length is not 23 (4 octets of body) is a
 * ROUTE-REFRESH Message Error / Invalid Message Length, and the data is the
 * complete message. RFC 7313 words it for subtypes 1 and 2; we apply it to
 * every subtype, since RFC 2918 §3 fixes the body at 4 octets for all of them.
 */
export function checkRouteRefreshLength(message: Buffer): void {
  if (message.length !== HEADER_LEN + 4) {
    throw new BgpError(
      ErrorCode.RouteRefresh,
      1,
      `ROUTE-REFRESH length ${message.length}, must be 23`,
      Buffer.from(message),
    );
  }
}
