// The BFD Control packet (RFC 5880 §4.1): decode and encode, syntax only.
// The reception checks of RFC 5880 §6.8.6 that need only the packet itself are
// made here and thrown as a BfdError; the checks that need a session (the
// discriminators, authentication in use) are the manager's (manager.ts).
//
// Authentication (§4.2–4.4, §6.7) is not implemented: a packet with the A bit
// set has its section's framing checked (type, length within the packet) and
// kept as raw bytes so it round-trips, and the manager then discards it
// (§6.8.6: "If the A bit is set and no authentication is in use ... MUST be
// discarded"). We never send the A bit. This is the behaviour of BIRD and FRR
// peers configured without a password; a peer configured with one never
// reaches Up with skein, and its packets are counted as AUTH_NOT_IN_USE.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-----+---------+---+-+-+-+-+-+-+---------------+---------------+
//  | Ver |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//  +-----+---------+---+-+-+-+-+-+-+---------------+---------------+
//  |                       My Discriminator                        |
//  |                      Your Discriminator                       |
//  |                 Desired Min TX Interval (µs)                  |
//  |                 Required Min RX Interval (µs)                 |
//  |              Required Min Echo RX Interval (µs)               |
//  +---------------+---------------+-------------------------------+
//  |   Auth Type   |   Auth Len    |  Authentication Data...  (A=1)|
//  +---------------+---------------+-------------------------------+

/** RFC 5880 §4.1: the protocol version this implements. */
export const BFD_VERSION = 1;
/** §4.1 / §6.8.6: the mandatory section is 24 bytes; with the A bit at least 26. */
export const BFD_HEADER_LEN = 24;
export const BFD_MIN_AUTH_LEN = 26;

/** §4.1 State (Sta) field values, indexed by their wire value. */
export const BFD_STATES = ['AdminDown', 'Down', 'Init', 'Up'] as const;
export type BfdState = (typeof BFD_STATES)[number];
export const BFD_STATE_CODE: { readonly [S in BfdState]: number } = { AdminDown: 0, Down: 1, Init: 2, Up: 3 };

/** §4.1 Diagnostic (Diag) codes (IANA "BFD Diagnostic Codes"). */
export const BFD_DIAG = {
  None: 0,
  ControlDetectionTimeExpired: 1,
  EchoFunctionFailed: 2,
  NeighborSignaledSessionDown: 3,
  ForwardingPlaneReset: 4,
  PathDown: 5,
  ConcatenatedPathDown: 6,
  AdministrativelyDown: 7,
  ReverseConcatenatedPathDown: 8,
} as const;
export type BfdDiag = number;

const DIAG_NAMES: readonly string[] = [
  'No Diagnostic', 'Control Detection Time Expired', 'Echo Function Failed', 'Neighbor Signaled Session Down',
  'Forwarding Plane Reset', 'Path Down', 'Concatenated Path Down', 'Administratively Down',
  'Reverse Concatenated Path Down',
];

/** The RFC 5880 §4.1 name of a diagnostic code ("Reserved (n)" for 9–31). */
export function diagName(diag: number): string {
  return DIAG_NAMES[diag] ?? `Reserved (${diag})`;
}

/** §4.1 Auth Type values (IANA "BFD Authentication Types"), for reporting only. */
export const BFD_AUTH_TYPE = {
  SimplePassword: 1,
  KeyedMd5: 2,
  MeticulousKeyedMd5: 3,
  KeyedSha1: 4,
  MeticulousKeyedSha1: 5,
} as const;

export interface BfdAuthSection {
  /** Auth Type */
  readonly type: number;
  /** the whole section as received (type and length bytes included), so a packet round-trips */
  readonly raw: Buffer;
}

/** A BFD Control packet, fields as §4.1 names them, intervals in microseconds as on the wire. */
export interface ControlPacket {
  readonly diag: number;
  readonly state: BfdState;
  /** P: Poll */
  readonly poll: boolean;
  /** F: Final */
  readonly final: boolean;
  /** C: Control Plane Independent */
  readonly controlPlaneIndependent: boolean;
  /** D: Demand */
  readonly demand: boolean;
  /** M: Multipoint (must be zero; decode rejects it) */
  readonly multipoint: boolean;
  readonly detectMult: number;
  readonly myDiscriminator: number;
  readonly yourDiscriminator: number;
  readonly desiredMinTxUs: number;
  readonly requiredMinRxUs: number;
  readonly requiredMinEchoRxUs: number;
  /** present exactly when the A bit is set */
  readonly auth?: BfdAuthSection;
}

/**
 * Why a packet was discarded. The §6.8.6 rule each code stands for:
 * SHORT_PACKET / BAD_LENGTH / LENGTH_EXCEEDS_PAYLOAD — the Length rules; BAD_VERSION — version ≠ 1;
 * ZERO_DETECT_MULT; MULTIPOINT — M bit set; ZERO_MY_DISCRIMINATOR; BAD_AUTH_SECTION — the Auth Len
 * does not fit the packet; NO_SESSION — a nonzero Your Discriminator that no session owns;
 * ZERO_YOUR_DISCRIMINATOR — Your Discriminator zero while State is Init or Up; AUTH_NOT_IN_USE —
 * A bit set, and skein uses no authentication; BAD_TTL — RFC 5881 §5 (TTL ≠ 255 on a single hop).
 */
export const BFD_ERROR_CODES = [
  'SHORT_PACKET', 'BAD_VERSION', 'BAD_LENGTH', 'LENGTH_EXCEEDS_PAYLOAD', 'ZERO_DETECT_MULT', 'MULTIPOINT',
  'ZERO_MY_DISCRIMINATOR', 'BAD_AUTH_SECTION', 'NO_SESSION', 'ZERO_YOUR_DISCRIMINATOR', 'AUTH_NOT_IN_USE', 'BAD_TTL',
] as const;
export type BfdErrorCode = (typeof BFD_ERROR_CODES)[number];

/** A discarded packet: never a reason to touch any session, only to count and log. */
export class BfdError extends Error {
  override readonly name = 'BfdError';
  constructor(
    readonly code: BfdErrorCode,
    readonly reason: string,
  ) {
    super(`${code}: ${reason}`);
  }
}

const FLAG = { P: 0x20, F: 0x10, C: 0x08, A: 0x04, D: 0x02, M: 0x01 } as const;

/**
 * Decodes one Control packet from a UDP payload. Throws only BfdError.
 * Bytes after Length (padding in the datagram) are ignored, as §6.8.6 allows.
 */
export function decodeControl(bytes: Uint8Array): ControlPacket {
  if (bytes.length < BFD_HEADER_LEN) throw new BfdError('SHORT_PACKET', `${bytes.length} bytes, a Control packet has at least 24`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const b0 = b[0]!;
  const b1 = b[1]!;
  const version = b0 >>> 5;
  if (version !== BFD_VERSION) throw new BfdError('BAD_VERSION', `version ${version}, expected 1`); // §6.8.6
  const hasAuth = (b1 & FLAG.A) !== 0;
  const length = b[3]!;
  const minLen = hasAuth ? BFD_MIN_AUTH_LEN : BFD_HEADER_LEN;
  if (length < minLen) throw new BfdError('BAD_LENGTH', `Length ${length} below ${minLen}${hasAuth ? ' (A bit set)' : ''}`); // §6.8.6
  if (length > b.length) throw new BfdError('LENGTH_EXCEEDS_PAYLOAD', `Length ${length} beyond the ${b.length}-byte payload`); // §6.8.6
  const detectMult = b[2]!;
  if (detectMult === 0) throw new BfdError('ZERO_DETECT_MULT', 'Detect Mult is zero'); // §6.8.6
  if ((b1 & FLAG.M) !== 0) throw new BfdError('MULTIPOINT', 'the Multipoint bit is set'); // §6.8.6
  const myDiscriminator = b.readUInt32BE(4);
  if (myDiscriminator === 0) throw new BfdError('ZERO_MY_DISCRIMINATOR', 'My Discriminator is zero'); // §6.8.6
  let auth: BfdAuthSection | undefined;
  if (hasAuth) {
    // §4.2: Auth Type, Auth Len (the section's length, type and length bytes included).
    const authLen = b[BFD_HEADER_LEN + 1]!;
    if (authLen < 2 || BFD_HEADER_LEN + authLen !== length) {
      throw new BfdError('BAD_AUTH_SECTION', `Auth Len ${authLen} does not fill the packet's Length ${length}`);
    }
    auth = { type: b[BFD_HEADER_LEN]!, raw: Buffer.from(b.subarray(BFD_HEADER_LEN, length)) };
  }
  const packet: ControlPacket = {
    diag: b0 & 0x1f,
    state: BFD_STATES[b1 >>> 6]!,
    poll: (b1 & FLAG.P) !== 0,
    final: (b1 & FLAG.F) !== 0,
    controlPlaneIndependent: (b1 & FLAG.C) !== 0,
    demand: (b1 & FLAG.D) !== 0,
    multipoint: false,
    detectMult,
    myDiscriminator,
    yourDiscriminator: b.readUInt32BE(8),
    desiredMinTxUs: b.readUInt32BE(12),
    requiredMinRxUs: b.readUInt32BE(16),
    requiredMinEchoRxUs: b.readUInt32BE(20),
  };
  return auth ? { ...packet, auth } : packet;
}

const u32 = (what: string, v: number): number => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} ${v}: not a 32-bit unsigned integer`);
  return v;
};

/** Encodes a Control packet. Throws RangeError for a field out of its wire range (a caller's bug). */
export function encodeControl(p: ControlPacket): Buffer {
  const authLen = p.auth ? p.auth.raw.length : 0;
  const length = BFD_HEADER_LEN + authLen;
  if (length > 255) throw new RangeError(`packet length ${length} beyond 255`);
  if (!Number.isInteger(p.diag) || p.diag < 0 || p.diag > 31) throw new RangeError(`diag ${p.diag}: not in 0..31`);
  if (!Number.isInteger(p.detectMult) || p.detectMult < 0 || p.detectMult > 255) throw new RangeError(`detectMult ${p.detectMult}`);
  const b = Buffer.alloc(length);
  b[0] = (BFD_VERSION << 5) | p.diag;
  b[1] =
    (BFD_STATE_CODE[p.state] << 6) |
    (p.poll ? FLAG.P : 0) |
    (p.final ? FLAG.F : 0) |
    (p.controlPlaneIndependent ? FLAG.C : 0) |
    (p.auth ? FLAG.A : 0) |
    (p.demand ? FLAG.D : 0) |
    (p.multipoint ? FLAG.M : 0);
  b[2] = p.detectMult;
  b[3] = length;
  b.writeUInt32BE(u32('myDiscriminator', p.myDiscriminator), 4);
  b.writeUInt32BE(u32('yourDiscriminator', p.yourDiscriminator), 8);
  b.writeUInt32BE(u32('desiredMinTxUs', p.desiredMinTxUs), 12);
  b.writeUInt32BE(u32('requiredMinRxUs', p.requiredMinRxUs), 16);
  b.writeUInt32BE(u32('requiredMinEchoRxUs', p.requiredMinEchoRxUs), 20);
  if (p.auth) p.auth.raw.copy(b, BFD_HEADER_LEN);
  return b;
}
