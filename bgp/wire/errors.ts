// Protocol errors as values (RFC 4271 §6, RFC 7606). A decoder never throws
// anything but a BgpError, and a BgpError carries everything the session layer
// needs: the NOTIFICATION code, subcode and data to send, and the RFC 7606
// action that decides between resetting the session and carrying on.

/**
 * RFC 7606 §2 approaches, strongest first:
 * - session-reset: send NOTIFICATION and close (RFC 4271 §6);
 * - afi-safi-disable: stop using the family on this session (RFC 4760 §7, RFC 7606 §2);
 * - treat-as-withdraw: keep the session, withdraw every prefix of the UPDATE (RFC 7606 §2);
 * - attribute-discard: drop the one attribute, keep the rest (RFC 7606 §2).
 */
export type ErrorAction = 'session-reset' | 'afi-safi-disable' | 'treat-as-withdraw' | 'attribute-discard';

const STRENGTH: Readonly<Record<ErrorAction, number>> = {
  'attribute-discard': 0,
  'treat-as-withdraw': 1,
  'afi-safi-disable': 2,
  'session-reset': 3,
};

/** RFC 7606 §3.h: when several errors apply, the strongest action wins. */
export function strongerAction(a: ErrorAction, b: ErrorAction): ErrorAction {
  return STRENGTH[a] >= STRENGTH[b] ? a : b;
}

export class BgpError extends Error {
  override readonly name = 'BgpError';
  constructor(
    /** NOTIFICATION error code (RFC 4271 §4.5) */
    readonly code: number,
    /** NOTIFICATION error subcode */
    readonly subcode: number,
    /** why, in words, for logs and `skeinctl decode` */
    readonly reason: string,
    /** NOTIFICATION data field: the offending bytes, as each RFC 4271 §6 rule says */
    readonly data: Buffer = Buffer.alloc(0),
    readonly action: ErrorAction = 'session-reset',
  ) {
    super(reason);
  }

  toJSON(): { code: number; subcode: number; action: ErrorAction; reason: string; data: string } {
    return { code: this.code, subcode: this.subcode, action: this.action, reason: this.reason, data: this.data.toString('hex') };
  }
}

export const isBgpError = (e: unknown): e is BgpError => e instanceof BgpError;
