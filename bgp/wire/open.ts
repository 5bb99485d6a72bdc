// OPEN message (RFC 4271 §4.2) with optional parameters in the classic form
// or the RFC 9072 extended form, capabilities inside parameter type 2 (RFC
// 5492). Decoding is syntax only; validateOpen() holds the checks on field
// values that need no session state. Peer AS, collisions and capability
// negotiation belong to the session layer.
//
//   +---------+-------------+-------------+---------------------------+
//   | Version | My AS (2)   | Hold Time(2)| BGP Identifier (4)        |
//   +---------+-------------+-------------+---------------------------+
//   | Opt Parm Len (1) | Optional Parameters: Type (1) Len (1) Value  |
//   +------------------+----------------------------------------------+
// RFC 9072 §2: Opt Parm Len 255 followed by Non-Ext OP Type 255 means a
// 2-octet Extended Opt Parm Len follows, and every parameter length is 2 octets.
import { CapabilityCode, ErrorCode, HEADER_LEN, MessageType, OpenSubcode } from './constants.js';
import { BgpError } from './errors.js';
import { decodeCapabilities, encodeCapability } from './capabilities.js';
import { writeHeader } from './header.js';
import type { Capability, OpenMessage } from './types.js';

/** RFC 5492 §4: the optional parameter that carries capabilities. */
export const PARAM_CAPABILITIES = 2;
/** RFC 9072 §2: Non-Ext OP Type value that announces the extended form. */
const PARAM_EXTENDED = 255;

const openError = (reason: string, data: Buffer = Buffer.alloc(0), subcode = 0): BgpError =>
  new BgpError(ErrorCode.OpenMessage, subcode, reason, data);

/** Decode an OPEN body (the octets after the 19-octet header). */
export function decodeOpen(body: Buffer): OpenMessage {
  // RFC 4271 §6.1 guarantees 10 octets through the framer; checked again for direct callers.
  if (body.length < 10) throw openError(`OPEN body is ${body.length} octets, needs at least 10`);
  const version = body[0] as number;
  const myAs = body.readUInt16BE(1);
  const holdTime = body.readUInt16BE(3);
  const bgpId = body.readUInt32BE(5);
  let optLen = body[9] as number;
  let at = 10;
  let wide = false;
  // RFC 9072 §2: the extended form is signalled by a first parameter type of 255.
  if (optLen > 0 && body[10] === PARAM_EXTENDED) {
    if (body.length < 13) throw openError('extended optional parameters length truncated');
    wide = true;
    optLen = body.readUInt16BE(11);
    at = 13;
  }
  // The parameters must fill the rest of the message exactly (RFC 4271 §4.2, RFC 9072 §2).
  if (at + optLen !== body.length) {
    throw openError(`optional parameters length ${optLen} does not match the ${body.length - at} octets that follow`);
  }
  const capabilities: Capability[] = [];
  const otherParameters: { type: number; value: Buffer }[] = [];
  const hl = wide ? 3 : 2;
  while (at < body.length) {
    if (at + hl > body.length) throw openError('truncated optional parameter header', body.subarray(at));
    const type = body[at] as number;
    const len = wide ? body.readUInt16BE(at + 1) : (body[at + 1] as number);
    if (at + hl + len > body.length) throw openError(`optional parameter ${type} length ${len} overruns`, body.subarray(at));
    const value = body.subarray(at + hl, at + hl + len);
    if (type === PARAM_CAPABILITIES) decodeCapabilities(value, capabilities);
    // RFC 4271 §6.2: other parameter types are Unsupported Optional Parameter; kept here, judged by validateOpen().
    else otherParameters.push({ type, value: Buffer.from(value) });
    at += hl + len;
  }
  const open: OpenMessage = { type: 'OPEN', version, myAs, holdTime, bgpId, capabilities };
  return otherParameters.length ? { ...open, otherParameters } : open;
}

/**
 * Encode a whole OPEN message. All capabilities go into one parameter of type
 * 2, followed by any other parameters. The RFC 9072 extended form is used only
 * when the parameters do not fit the classic one (a value or the total above
 * 255 octets), as RFC 9072 §2 recommends.
 */
export function encodeOpen(msg: Omit<OpenMessage, 'type'>): Buffer {
  // A 4-octet AS goes in the capability with AS_TRANS here (RFC 6793 §4.1): a silent truncation would announce a wrong AS.
  if (!Number.isInteger(msg.myAs) || msg.myAs < 0 || msg.myAs > 0xffff) throw new RangeError(`My AS ${msg.myAs} does not fit 2 octets: use AS_TRANS and the 4-octet AS capability`);
  if (!Number.isInteger(msg.holdTime) || msg.holdTime < 0 || msg.holdTime > 0xffff) throw new RangeError(`hold time ${msg.holdTime} does not fit 2 octets`);
  const params: { type: number; value: Buffer }[] = [];
  if (msg.capabilities.length) params.push({ type: PARAM_CAPABILITIES, value: Buffer.concat(msg.capabilities.map(encodeCapability)) });
  for (const p of msg.otherParameters ?? []) {
    // RFC 9072 §2 reserves type 255 as the extended-form marker; as a first parameter it would be misread.
    if (p.type === PARAM_EXTENDED || p.type === PARAM_CAPABILITIES) throw new RangeError(`optional parameter type ${p.type} cannot be sent as an other parameter`);
    params.push(p);
  }
  const classic = params.reduce((n, p) => n + 2 + p.value.length, 0);
  const wide = classic > 255 || params.some((p) => p.value.length > 255);
  const paramLen = wide ? params.reduce((n, p) => n + 3 + p.value.length, 0) : classic;
  const bodyLen = 10 + (wide ? 3 : 0) + paramLen;
  const buf = Buffer.alloc(HEADER_LEN + bodyLen);
  writeHeader(buf, 0, buf.length, MessageType.OPEN);
  let o = HEADER_LEN;
  buf[o] = msg.version;
  buf.writeUInt16BE(msg.myAs, o + 1);
  buf.writeUInt16BE(msg.holdTime, o + 3);
  buf.writeUInt32BE(msg.bgpId >>> 0, o + 5);
  o += 9;
  if (wide) {
    // RFC 9072 §2: Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length.
    buf[o] = 255;
    buf[o + 1] = PARAM_EXTENDED;
    buf.writeUInt16BE(paramLen, o + 2);
    o += 4;
  } else {
    buf[o++] = paramLen;
  }
  for (const p of params) {
    buf[o++] = p.type;
    if (wide) {
      buf.writeUInt16BE(p.value.length, o);
      o += 2;
    } else buf[o++] = p.value.length;
    p.value.copy(buf, o);
    o += p.value.length;
  }
  return buf;
}

/** The speaker's real AS: the RFC 6793 §3 capability's value when present, else My AS. */
export function openAsn(open: Pick<OpenMessage, 'myAs' | 'capabilities'>): number {
  for (const c of open.capabilities) if (c.name === '4-octet-as') return c.asn;
  return open.myAs;
}

/** The first capability of a given code, typed. */
export function findCapability<N extends Capability['name']>(
  open: Pick<OpenMessage, 'capabilities'>,
  name: N,
): Extract<Capability, { name: N }> | undefined {
  return open.capabilities.find((c) => c.name === name) as Extract<Capability, { name: N }> | undefined;
}

/**
 * The checks of RFC 4271 §6.2 that need no session state. Returns the
 * NOTIFICATION to send, or undefined. Bad Peer AS, collision detection and
 * capability negotiation are left to the session layer.
 */
export function validateOpen(open: OpenMessage): BgpError | undefined {
  // RFC 4271 §6.2: version other than 4; the data is the largest version we support, 2 octets.
  if (open.version !== 4) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.UnsupportedVersionNumber, `BGP version ${open.version}, only 4 is supported`, Buffer.from([0, 4]));
  }
  // RFC 4271 §6.2 (and §4.2): hold time 0 or at least 3 seconds.
  if (open.holdTime === 1 || open.holdTime === 2) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.UnacceptableHoldTime, `hold time ${open.holdTime} s, must be 0 or at least 3`);
  }
  // RFC 6286 §2.2: the identifier is any non-zero 32-bit number (no longer a host address).
  if (open.bgpId === 0) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.BadBgpIdentifier, 'BGP identifier is 0');
  }
  // RFC 4271 §6.2: an optional parameter we do not recognise.
  const other = open.otherParameters?.[0];
  if (other) {
    return new BgpError(
      ErrorCode.OpenMessage,
      OpenSubcode.UnsupportedOptionalParameter,
      `unsupported optional parameter type ${other.type}`,
      Buffer.from([other.type]),
    );
  }
  // RFC 7607 §3: AS 0 as the peer AS (My AS or the RFC 6793 capability) is Bad Peer AS.
  const as4 = open.capabilities.find((c) => c.code === CapabilityCode.FOUR_OCTET_AS);
  if (open.myAs === 0 || (as4 && as4.name === '4-octet-as' && as4.asn === 0)) {
    return new BgpError(ErrorCode.OpenMessage, OpenSubcode.BadPeerAs, 'peer AS is 0 (RFC 7607)');
  }
  return undefined;
}
