// BGP capabilities (RFC 5492 §4): the TLVs inside OPEN optional parameter 2.
// Each known code is parsed into its fields with its length rule checked; a
// malformed TLV is an OPEN Message Error (RFC 5492 has no subcode for it, so
// the unspecific subcode 0 of RFC 4271 §4.5, with the reason in words).
// Unknown codes are kept whole so they can be reported (RFC 5492 §3).
//
//   +----------------+----------------+---------------------------+
//   | Code (1)       | Length (1)     | Value (Length octets)     |
//   +----------------+----------------+---------------------------+
import { CapabilityCode as C, ErrorCode } from './constants.js';
import { BgpError } from './errors.js';
import type { Capability } from './types.js';

const bad = (code: number, reason: string, tlv: Buffer): BgpError =>
  new BgpError(ErrorCode.OpenMessage, 0, `capability ${code}: ${reason}`, Buffer.from(tlv));

/** Parse one capability value. `tlv` is the whole TLV (for NOTIFICATION data). */
export function decodeCapability(code: number, v: Buffer, tlv: Buffer): Capability {
  const need = (ok: boolean, what: string): void => {
    if (!ok) throw bad(code, `${what}, length ${v.length}`, tlv);
  };
  switch (code) {
    case C.MULTIPROTOCOL:
      // RFC 4760 §8: AFI (2), reserved (1), SAFI (1).
      need(v.length === 4, 'multiprotocol needs 4 octets');
      return { code: 1, name: 'multiprotocol', afi: v.readUInt16BE(0), safi: v[3] as number };
    case C.ROUTE_REFRESH:
      // RFC 2918 §2: no value.
      need(v.length === 0, 'route refresh carries no value');
      return { code: 2, name: 'route-refresh' };
    case C.EXTENDED_NEXT_HOP: {
      // RFC 8950 §3: triples of NLRI AFI (2), NLRI SAFI (2), Nexthop AFI (2).
      need(v.length > 0 && v.length % 6 === 0, 'extended next hop needs a non-zero multiple of 6 octets');
      const entries = [];
      for (let i = 0; i < v.length; i += 6) {
        entries.push({ afi: v.readUInt16BE(i), safi: v.readUInt16BE(i + 2), nextHopAfi: v.readUInt16BE(i + 4) });
      }
      return { code: 5, name: 'extended-next-hop', entries };
    }
    case C.EXTENDED_MESSAGE:
      // RFC 8654 §3: no value.
      need(v.length === 0, 'extended message carries no value');
      return { code: 6, name: 'extended-message' };
    case C.BGP_ROLE:
      // RFC 9234 §4.1: one octet, the role. Unknown role values are the session layer's concern (§4.2).
      need(v.length === 1, 'BGP role needs 1 octet');
      return { code: 9, name: 'bgp-role', role: v[0] as number };
    case C.GRACEFUL_RESTART: {
      // RFC 4724 §3: R bit, N bit (RFC 8538 §2), 2 reserved bits, 12-bit restart time,
      // then per family AFI (2), SAFI (1), flags (1) whose top bit is F (forwarding state kept).
      need(v.length >= 2 && (v.length - 2) % 4 === 0, 'graceful restart needs 2 + 4n octets');
      const head = v.readUInt16BE(0);
      const families = [];
      for (let i = 2; i < v.length; i += 4) {
        families.push({ afi: v.readUInt16BE(i), safi: v[i + 2] as number, forwardingState: ((v[i + 3] as number) & 0x80) !== 0 });
      }
      return {
        code: 64,
        name: 'graceful-restart',
        restarting: (head & 0x8000) !== 0,
        notification: (head & 0x4000) !== 0,
        restartTime: head & 0x0fff,
        families,
      };
    }
    case C.FOUR_OCTET_AS:
      // RFC 6793 §3: the 4-octet AS number.
      need(v.length === 4, '4-octet AS needs 4 octets');
      return { code: 65, name: '4-octet-as', asn: v.readUInt32BE(0) };
    case C.ADD_PATH: {
      // RFC 7911 §4: AFI (2), SAFI (1), Send/Receive (1) per family; 1 receive, 2 send, 3 both.
      need(v.length > 0 && v.length % 4 === 0, 'ADD-PATH needs a non-zero multiple of 4 octets');
      const families = [];
      for (let i = 0; i < v.length; i += 4) {
        const sr = v[i + 3] as number;
        if (sr < 1 || sr > 3) throw bad(code, `ADD-PATH send/receive value ${sr} not 1..3`, tlv);
        families.push({ afi: v.readUInt16BE(i), safi: v[i + 2] as number, sendReceive: sr as 1 | 2 | 3 });
      }
      return { code: 69, name: 'add-path', families };
    }
    case C.ENHANCED_ROUTE_REFRESH:
      // RFC 7313 §3.1: no value.
      need(v.length === 0, 'enhanced route refresh carries no value');
      return { code: 70, name: 'enhanced-route-refresh' };
    case C.LONG_LIVED_GRACEFUL_RESTART: {
      // RFC 9494 §3: per family AFI (2), SAFI (1), flags (1, top bit F), long-lived stale time (3).
      need(v.length % 7 === 0, 'long-lived graceful restart needs a multiple of 7 octets');
      const families = [];
      for (let i = 0; i < v.length; i += 7) {
        families.push({
          afi: v.readUInt16BE(i),
          safi: v[i + 2] as number,
          forwardingState: ((v[i + 3] as number) & 0x80) !== 0,
          staleTime: v.readUIntBE(i + 4, 3),
        });
      }
      return { code: 71, name: 'long-lived-graceful-restart', families };
    }
    case C.FQDN: {
      // draft-walton-bgp-hostname-capability §3: hostname length (1), hostname, domain length (1), domain.
      need(v.length >= 2, 'FQDN needs at least 2 octets');
      const hl = v[0] as number;
      need(v.length >= 2 + hl, `FQDN hostname length ${hl} overruns`);
      const dl = v[1 + hl] as number;
      need(v.length === 2 + hl + dl, `FQDN domain length ${dl} does not fill the value`);
      return {
        code: 73,
        name: 'fqdn',
        hostname: v.toString('utf8', 1, 1 + hl),
        domainName: v.toString('utf8', 2 + hl, 2 + hl + dl),
      };
    }
    default:
      return { code, name: 'unknown', value: Buffer.from(v) };
  }
}

/** Parse the value of one optional parameter of type 2: a run of capability TLVs (RFC 5492 §4). */
export function decodeCapabilities(p: Buffer, out: Capability[]): void {
  let i = 0;
  while (i < p.length) {
    if (i + 2 > p.length) throw bad(p[i] as number, 'truncated capability header', p.subarray(i));
    const code = p[i] as number;
    const len = p[i + 1] as number;
    if (i + 2 + len > p.length) throw bad(code, `length ${len} overruns the parameter`, p.subarray(i));
    out.push(decodeCapability(code, p.subarray(i + 2, i + 2 + len), p.subarray(i, i + 2 + len)));
    i += 2 + len;
  }
}

/** The value octets of a capability (without code and length). */
export function encodeCapabilityValue(c: Capability): Buffer {
  switch (c.name) {
    case 'multiprotocol': {
      const b = Buffer.alloc(4);
      b.writeUInt16BE(c.afi, 0);
      b[3] = c.safi;
      return b;
    }
    case 'route-refresh':
    case 'extended-message':
    case 'enhanced-route-refresh':
      return Buffer.alloc(0);
    case 'extended-next-hop': {
      const b = Buffer.alloc(6 * c.entries.length);
      c.entries.forEach((e, k) => {
        b.writeUInt16BE(e.afi, 6 * k);
        b.writeUInt16BE(e.safi, 6 * k + 2);
        b.writeUInt16BE(e.nextHopAfi, 6 * k + 4);
      });
      return b;
    }
    case 'bgp-role':
      return Buffer.from([c.role]);
    case 'graceful-restart': {
      const b = Buffer.alloc(2 + 4 * c.families.length);
      b.writeUInt16BE((c.restarting ? 0x8000 : 0) | (c.notification ? 0x4000 : 0) | (c.restartTime & 0x0fff), 0);
      c.families.forEach((f, k) => {
        b.writeUInt16BE(f.afi, 2 + 4 * k);
        b[4 + 4 * k] = f.safi;
        b[5 + 4 * k] = f.forwardingState ? 0x80 : 0;
      });
      return b;
    }
    case '4-octet-as': {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(c.asn >>> 0);
      return b;
    }
    case 'add-path': {
      const b = Buffer.alloc(4 * c.families.length);
      c.families.forEach((f, k) => {
        b.writeUInt16BE(f.afi, 4 * k);
        b[4 * k + 2] = f.safi;
        b[4 * k + 3] = f.sendReceive;
      });
      return b;
    }
    case 'long-lived-graceful-restart': {
      const b = Buffer.alloc(7 * c.families.length);
      c.families.forEach((f, k) => {
        b.writeUInt16BE(f.afi, 7 * k);
        b[7 * k + 2] = f.safi;
        b[7 * k + 3] = f.forwardingState ? 0x80 : 0;
        b.writeUIntBE(f.staleTime & 0xffffff, 7 * k + 4, 3);
      });
      return b;
    }
    case 'fqdn': {
      const h = Buffer.from(c.hostname, 'utf8');
      const d = Buffer.from(c.domainName, 'utf8');
      if (h.length > 255 || d.length > 255) throw new RangeError('FQDN capability: hostname and domain name are at most 255 octets each');
      return Buffer.concat([Buffer.from([h.length]), h, Buffer.from([d.length]), d]);
    }
    case 'unknown':
      return c.value;
  }
}

/** One capability TLV: code, length, value (RFC 5492 §4). */
export function encodeCapability(c: Capability): Buffer {
  const v = encodeCapabilityValue(c);
  if (v.length > 255) throw new RangeError(`capability ${c.code} value is ${v.length} octets, at most 255 fit`);
  return Buffer.concat([Buffer.from([c.code, v.length]), v]);
}

/** Names for capability codes, for display (IANA "Capability Codes"). */
export const CAPABILITY_NAMES: Readonly<Record<number, string>> = {
  1: 'multiprotocol',
  2: 'route-refresh',
  5: 'extended-next-hop',
  6: 'extended-message',
  9: 'bgp-role',
  64: 'graceful-restart',
  65: '4-octet-as',
  69: 'add-path',
  70: 'enhanced-route-refresh',
  71: 'long-lived-graceful-restart',
  73: 'fqdn',
};
