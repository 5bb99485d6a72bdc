// ROUTE-REFRESH message (RFC 2918 §3) with the RFC 7313 §3 subtype in the
// former reserved octet: 0 normal request, 1 Beginning of Route Refresh, 2
// End of Route Refresh. Other subtypes decode as they are: RFC 7313 §5 says
// to ignore them, which is the session layer's call.
//
//   +--------------------+-------------+----------+
//   | AFI (2)            | Subtype (1) | SAFI (1) |
//   +--------------------+-------------+----------+
import { HEADER_LEN, MessageType } from './constants.js';
import { checkRouteRefreshLength, writeHeader } from './header.js';
import type { RouteRefreshMessage } from './types.js';

/** Decode a whole ROUTE-REFRESH message (header included: RFC 7313 §5 needs it as error data). */
export function decodeRouteRefresh(message: Buffer): RouteRefreshMessage {
  checkRouteRefreshLength(message);
  return {
    type: 'ROUTE-REFRESH',
    afi: message.readUInt16BE(HEADER_LEN),
    subtype: message[HEADER_LEN + 2] as number,
    safi: message[HEADER_LEN + 3] as number,
  };
}

export function encodeRouteRefresh(msg: Omit<RouteRefreshMessage, 'type'>): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_LEN + 4);
  writeHeader(buf, 0, buf.length, MessageType.ROUTE_REFRESH);
  buf.writeUInt16BE(msg.afi, HEADER_LEN);
  buf[HEADER_LEN + 2] = msg.subtype;
  buf[HEADER_LEN + 3] = msg.safi;
  return buf;
}
