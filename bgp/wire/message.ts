// Whole messages: dispatch on the header type (RFC 4271 §4.1, RFC 2918 §3)
// to the per-message codecs. decodeMessage() runs the same header checks as
// the stream framer, so a message decoded from hex (skeinctl decode) and one
// read from a socket fail in the same way with the same NOTIFICATION.
import { ErrorCode, HEADER_LEN, HeaderSubcode, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, MessageType } from './constants.js';
import { BgpError } from './errors.js';
import { checkHeader } from './header.js';
import { encodeKeepalive, KEEPALIVE } from './keepalive.js';
import { decodeNotification, encodeNotification } from './notification.js';
import { decodeOpen, encodeOpen } from './open.js';
import { decodeRouteRefresh, encodeRouteRefresh } from './route-refresh.js';
import { DEFAULT_CONTEXT, type CodecContext, type Message } from './types.js';
import { decodeUpdate, encodeUpdate } from './update.js';

/**
 * Decode exactly one message, header included. Throws a BgpError carrying the
 * NOTIFICATION to send when the message must reset the session; an UPDATE
 * with RFC 7606 errors that do not reset it comes back with errorAction set.
 */
export function decodeMessage(buf: Buffer, ctx: CodecContext = DEFAULT_CONTEXT): Message {
  if (buf.length < HEADER_LEN) {
    throw new BgpError(ErrorCode.MessageHeader, HeaderSubcode.BadMessageLength, `${buf.length} octets, a header alone is ${HEADER_LEN}`);
  }
  const length = checkHeader(buf, 0, ctx.extendedMessage ? MAX_EXTENDED_MESSAGE_LEN : MAX_MESSAGE_LEN);
  // The length field must describe this buffer: a stream would have cut it there (RFC 4271 §4.1).
  if (length !== buf.length) {
    throw new BgpError(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageLength,
      `length field says ${length} octets, ${buf.length} given`,
      buf.subarray(16, 18),
    );
  }
  const body = buf.subarray(HEADER_LEN);
  switch (buf[18]) {
    case MessageType.OPEN:
      return decodeOpen(body);
    case MessageType.UPDATE:
      return decodeUpdate(body, ctx);
    case MessageType.NOTIFICATION:
      return decodeNotification(body);
    case MessageType.KEEPALIVE:
      return KEEPALIVE;
    default:
      // checkHeader admits types 1..5 only, so this is ROUTE-REFRESH.
      return decodeRouteRefresh(buf);
  }
}

/** Encode a message, header included. */
export function encodeMessage(msg: Message, ctx: CodecContext = DEFAULT_CONTEXT): Buffer {
  switch (msg.type) {
    case 'OPEN':
      return encodeOpen(msg);
    case 'UPDATE':
      return encodeUpdate(msg, ctx);
    case 'NOTIFICATION':
      return encodeNotification(msg);
    case 'KEEPALIVE':
      return encodeKeepalive();
    case 'ROUTE-REFRESH':
      return encodeRouteRefresh(msg);
  }
}
