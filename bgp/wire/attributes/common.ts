// Shared machinery of the path attribute decoders and encoders.
//
// Decoding: one DecodeState per UPDATE. The attribute loop (index.ts) sets the
// "current attribute" fields, then calls the decoder for its type code, which
// stores the value or reports an error with the RFC 7606 action it calls for.
// A session-reset error is thrown at once (nothing else can be trusted); the
// milder ones are collected and the strongest wins (RFC 7606 §3.h).
//
// Encoding: writers write a whole attribute (header and value) at an offset and
// return the offset after it. They reserve the 4-octet extended header, write
// the value, then shrink to the 3-octet header when the value fits in 255
// octets (RFC 4271 §4.3: Extended Length is only needed past 255).
import { AttrFlag, ErrorCode } from '../constants.js';
import { BgpError, strongerAction } from '../errors.js';
import type { ErrorAction } from '../errors.js';
import type { Aggregator, AsPathSegment, CodecContext, MpReach, MpUnreach, PathAttributes, UnknownAttribute } from '../types.js';

export type MutableAttributes = { -readonly [K in keyof PathAttributes]: PathAttributes[K] };

export class DecodeState {
  readonly attrs: MutableAttributes = {};
  /** RFC 6793 attributes, kept apart until the AS path is reconstructed (as4.ts) */
  as4Path: AsPathSegment[] | undefined;
  as4Aggregator: Aggregator | undefined;
  mpReach: MpReach | undefined;
  mpUnreach: MpUnreach | undefined;
  unknown: UnknownAttribute[] | undefined;
  errors: BgpError[] | undefined;
  action: Exclude<ErrorAction, 'session-reset'> | undefined;
  /** type codes seen so far, for RFC 7606 §3.g duplicates and RFC 7606 §3.d missing attributes */
  readonly seen = new Uint8Array(256);

  // the attribute being decoded
  flags = 0;
  type = 0;
  /** offset of its flags octet */
  start = 0;
  valueStart = 0;
  valueLen = 0;

  constructor(
    readonly buf: Buffer,
    readonly ctx: CodecContext,
  ) {}

  /** The whole current attribute (flags, type, length, value), copied: the NOTIFICATION data of RFC 4271 §6.3. */
  raw(): Buffer {
    return Buffer.from(this.buf.subarray(this.start, this.valueStart + this.valueLen));
  }

  /** The current value, copied (so a kept Buffer does not pin the whole message). */
  value(): Buffer {
    return Buffer.from(this.buf.subarray(this.valueStart, this.valueStart + this.valueLen));
  }

  /** Report an UPDATE Message Error (code 3). Throws for session-reset. */
  fail(subcode: number, action: ErrorAction, reason: string, data: Buffer = this.raw()): void {
    const err = new BgpError(ErrorCode.UpdateMessage, subcode, reason, data, action);
    if (action === 'session-reset') throw err;
    (this.errors ??= []).push(err);
    this.action = this.action === undefined ? action : (strongerAction(this.action, action) as Exclude<ErrorAction, 'session-reset'>);
  }
}

export type AttributeDecoder = (st: DecodeState) => void;

/** Room for the largest attribute section (65535 minus the fixed UPDATE fields) plus slack. */
export const SCRATCH_SIZE = 1 << 17;

/** Begin an attribute at `off`: returns where its value starts (after a 4-octet header). */
export function beginAttr(off: number): number {
  return off + 4;
}

/**
 * Finish the attribute begun at `off` whose value ends at `end`: write the
 * header, using the 3-octet form when the value fits in one length octet.
 * Returns the offset after the attribute. Throws when a value exceeds the
 * 2-octet length limit (RFC 4271 §4.3).
 */
export function endAttr(buf: Buffer, off: number, flags: number, type: number, end: number): number {
  const len = end - off - 4;
  if (len > 0xffff) throw new RangeError(`path attribute ${type} value is ${len} octets, over the 65535 limit`);
  if (len <= 255) {
    buf.copyWithin(off + 3, off + 4, end);
    buf[off] = flags & ~AttrFlag.ExtendedLength & 0xf0;
    buf[off + 1] = type;
    buf[off + 2] = len;
    return end - 1;
  }
  buf[off] = (flags | AttrFlag.ExtendedLength) & 0xf0;
  buf[off + 1] = type;
  buf[off + 2] = len >> 8;
  buf[off + 3] = len & 255;
  return end;
}

/** Write a whole attribute with the extended length form always (MP_* attributes, see mp.ts). */
export function writeExtendedHeader(buf: Buffer, off: number, flags: number, type: number, len: number): number {
  buf[off] = (flags | AttrFlag.ExtendedLength) & 0xf0;
  buf[off + 1] = type;
  buf[off + 2] = len >> 8;
  buf[off + 3] = len & 255;
  return off + 4;
}

export function writeU32(buf: Buffer, off: number, v: number): number {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 255;
  buf[off + 2] = (v >>> 8) & 255;
  buf[off + 3] = v & 255;
  return off + 4;
}

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

export function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} ${v} is not a uint32`);
}

export const WELL_KNOWN = AttrFlag.Transitive; // O=0 T=1 (RFC 4271 §5)
export const OPTIONAL_TRANSITIVE = AttrFlag.Optional | AttrFlag.Transitive;
export const OPTIONAL_NON_TRANSITIVE = AttrFlag.Optional;
