// RFC 4271 §4.1 message header: 16-octet marker of all ones, 2-octet length
// (header included), 1-octet type. Encoding only here; the framer validates.
import { HEADER_LEN, MARKER_LEN } from './constants.js';

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
