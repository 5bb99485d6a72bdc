// rtnetlink route and link messages, written and read by hand: the layout is
// fixed by the kernel ABI (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h)
// and a hand-written path lets many route messages share one buffer and one
// send, which the netlink package's request API (one message per send) cannot.
//
// A route request on the wire:
//   struct nlmsghdr   16 bytes  len, type, flags, seq, pid           (linux/netlink.h)
//   struct rtmsg      12 bytes  family, dst_len, src_len, tos,
//                               table, protocol, scope, type, flags   (linux/rtnetlink.h)
//   struct rtattr     4 bytes + payload, each padded to 4 (RTA_ALIGN):
//     RTA_DST      address bytes
//     RTA_TABLE    u32, only for tables > 255 (rtm_table then says RT_TABLE_COMPAT)
//     RTA_PRIORITY u32 metric
//     RTA_GATEWAY  address bytes, RTA_OIF u32       (single next hop)
//     RTA_MULTIPATH  struct rtnexthop {u16 len, u8 flags, u8 hops, s32 ifindex} + its rtattrs, repeated
//     RTA_VIA      a gateway of the other family (RFC 5549): never written by skein, only noted when read (the
//                  host's own routes, src/daemon/reachability.ts)
// All integers are host order (little-endian here).
import {
  AF_INET, AF_INET6, IFINFOMSG_LEN, IFLA_IFNAME, NLMSG_HDRLEN, RTA_DST, RTA_GATEWAY, RTA_MULTIPATH, RTA_OIF,
  RTA_NH_ID, RTA_PRIORITY, RTA_TABLE, RTA_VIA, RTMSG_LEN, RTNH_F_DEAD, RTNH_F_LINKDOWN, RTNH_F_ONLINK, RTNH_LEN, RT_TABLE_COMPAT,
} from './constants.js';
import type { Family, KernelHop, KernelRoute } from './types.js';

export const align4 = (n: number): number => (n + 3) & ~3;

/** A next hop resolved to what the kernel wants: gateway bytes and an interface index (0 = let the kernel pick). */
export interface WireHop {
  readonly gateway: Uint8Array | undefined;
  readonly ifindex: number;
  readonly onlink: boolean;
  readonly weight: number;
}

/**
 * The part of a route message after RTA_DST/RTA_TABLE/RTA_PRIORITY that depends only on the next hops:
 * computed once per next-hop set and copied into every message that uses it.
 */
export interface EncodedHops {
  /** rtattrs (RTA_GATEWAY + RTA_OIF, or RTA_MULTIPATH) */
  readonly tail: Buffer;
  /** rtm_flags: RTNH_F_ONLINK for a single on-link hop */
  readonly rtmFlags: number;
  /** rtm_scope: link for device-only routes, universe otherwise */
  readonly scope: number;
}

export function encodeHops(hops: readonly WireHop[]): EncodedHops {
  const allDevice = hops.every((h) => h.gateway === undefined);
  const scope = allDevice ? 253 /* RT_SCOPE_LINK */ : 0 /* RT_SCOPE_UNIVERSE */;
  if (hops.length === 1) {
    const h = hops[0]!;
    const size = (h.gateway ? align4(4 + h.gateway.length) : 0) + (h.ifindex ? 8 : 0);
    const tail = Buffer.alloc(size);
    let o = 0;
    if (h.gateway) o = putAttr(tail, o, RTA_GATEWAY, h.gateway);
    if (h.ifindex) putU32Attr(tail, o, RTA_OIF, h.ifindex);
    return { tail, rtmFlags: h.onlink ? RTNH_F_ONLINK : 0, scope };
  }
  let size = 4;
  for (const h of hops) size += RTNH_LEN + (h.gateway ? align4(4 + h.gateway.length) : 0);
  const tail = Buffer.alloc(size);
  tail.writeUInt16LE(size, 0);
  tail.writeUInt16LE(RTA_MULTIPATH, 2);
  let o = 4;
  for (const h of hops) {
    const len = RTNH_LEN + (h.gateway ? align4(4 + h.gateway.length) : 0);
    tail.writeUInt16LE(len, o); // rtnh_len covers the rtnexthop and its attributes
    tail.writeUInt8(h.onlink ? RTNH_F_ONLINK : 0, o + 2);
    tail.writeUInt8(h.weight - 1, o + 3); // rtnh_hops is weight - 1
    tail.writeInt32LE(h.ifindex, o + 4);
    o += RTNH_LEN;
    if (h.gateway) o = putAttr(tail, o, RTA_GATEWAY, h.gateway);
  }
  return { tail, rtmFlags: 0, scope };
}

function putAttr(b: Buffer, o: number, type: number, data: Uint8Array): number {
  b.writeUInt16LE(4 + data.length, o);
  b.writeUInt16LE(type, o + 2);
  b.set(data, o + 4);
  return o + align4(4 + data.length);
}

function putU32Attr(b: Buffer, o: number, type: number, v: number): number {
  b.writeUInt16LE(8, o);
  b.writeUInt16LE(type, o + 2);
  b.writeUInt32LE(v >>> 0, o + 4);
  return o + 8;
}

// Plain byte stores for the per-route hot path (writeRouteMessage runs once per route written): Buffer's
// writeUInt16LE/writeUInt32LE check their arguments in a call of their own each time, which was most of the
// encoder's ~350 ms of the main thread for a million routes. The caller sized the buffer for the message.
const u16 = (b: Buffer, o: number, v: number): void => {
  b[o] = v & 255;
  b[o + 1] = (v >>> 8) & 255;
};
const u32 = (b: Buffer, o: number, v: number): void => {
  b[o] = v & 255;
  b[o + 1] = (v >>> 8) & 255;
  b[o + 2] = (v >>> 16) & 255;
  b[o + 3] = v >>> 24;
};
const u32Attr = (b: Buffer, o: number, type: number, v: number): number => {
  u16(b, o, 8);
  u16(b, o + 2, type);
  u32(b, o + 4, v);
  return o + 8;
};

/** Size of one route message with this tail. */
export function routeMessageSize(family: Family, table: number, metric: number, tailLen: number): number {
  return NLMSG_HDRLEN + RTMSG_LEN + (family === 4 ? 8 : 20) + (table > 255 ? 8 : 0) + (metric ? 8 : 0) + tailLen;
}

/**
 * Write one route message at `o` and return the offset after it. `v4` carries an IPv4 destination as a number
 * (no per-route allocation); `v6` the 16 bytes of an IPv6 one.
 */
export function writeRouteMessage(
  b: Buffer, o: number,
  nlType: number, nlFlags: number, seq: number,
  family: Family, v4: number, v6: Uint8Array | undefined, dstLen: number,
  table: number, protocol: number, scope: number, rtype: number, rtmFlags: number, metric: number,
  tail: Buffer | undefined,
): number {
  const start = o;
  // struct nlmsghdr; nlmsg_len is filled in at the end
  u16(b, o + 4, nlType);
  u16(b, o + 6, nlFlags);
  u32(b, o + 8, seq);
  u32(b, o + 12, 0); // nlmsg_pid 0: the kernel fills in the sender's port
  o += NLMSG_HDRLEN;
  // struct rtmsg
  b[o] = family === 4 ? AF_INET : AF_INET6;
  b[o + 1] = dstLen;
  b[o + 2] = 0; // src_len
  b[o + 3] = 0; // tos
  b[o + 4] = table > 255 ? RT_TABLE_COMPAT : table;
  b[o + 5] = protocol;
  b[o + 6] = scope;
  b[o + 7] = rtype;
  u32(b, o + 8, rtmFlags);
  o += RTMSG_LEN;
  // RTA_DST
  if (family === 4) {
    u32(b, o, 0x00010008); // len 8, type RTA_DST (1) in the high half
    // the address itself is in network order
    b[o + 4] = v4 >>> 24;
    b[o + 5] = (v4 >>> 16) & 255;
    b[o + 6] = (v4 >>> 8) & 255;
    b[o + 7] = v4 & 255;
    o += 8;
  } else {
    u32(b, o, 0x00010014); // len 20, type RTA_DST
    b.set(v6!, o + 4);
    o += 20;
  }
  if (table > 255) o = u32Attr(b, o, RTA_TABLE, table);
  if (metric) o = u32Attr(b, o, RTA_PRIORITY, metric);
  if (tail !== undefined) {
    const n = tail.length;
    // a nexthop id (8 bytes) or a gateway and device (16): a loop beats a native copy call at this size
    if (n <= 64) for (let i = 0; i < n; i++) b[o + i] = tail[i]!;
    else tail.copy(b, o);
    o += n;
  }
  u32(b, start, o - start);
  return o;
}

/** The fields of an rtmsg, read without parsing attributes: lets a 1M-route dump skip foreign routes cheaply. */
export const rtmFamily = (b: Buffer, msg: number): number => b[msg + NLMSG_HDRLEN]!;
export const rtmProtocol = (b: Buffer, msg: number): number => b[msg + NLMSG_HDRLEN + 5]!;

/** Parse one RTM_NEWROUTE/RTM_DELROUTE message at `msg` (start of its nlmsghdr) whose length is `len`. */
export function parseRoute(b: Buffer, msg: number, len: number): KernelRoute | undefined {
  const r = msg + NLMSG_HDRLEN;
  if (len < NLMSG_HDRLEN + RTMSG_LEN || r + RTMSG_LEN > b.length) return undefined;
  const af = b[r]!;
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  const family: Family = af === AF_INET ? 4 : 6;
  const alen = family === 4 ? 4 : 16;
  const dstLen = b[r + 1]!;
  let table = b[r + 4]!;
  const protocol = b[r + 5]!;
  const scope = b[r + 6]!;
  const type = b[r + 7]!;
  const rtmFlags = b.readUInt32LE(r + 8);
  let addr: Uint8Array | undefined;
  let metric = 0;
  let gateway: Uint8Array | undefined;
  let oif = 0;
  let hops: KernelHop[] | undefined;
  let nhid = 0;
  let via = false;
  const end = Math.min(msg + len, b.length);
  for (let a = r + RTMSG_LEN; a + 4 <= end;) {
    const alenA = b.readUInt16LE(a);
    const atype = b.readUInt16LE(a + 2) & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (alenA < 4 || a + alenA > end) break; // malformed: stop rather than read past the message
    const p = a + 4;
    const plen = alenA - 4;
    switch (atype) {
      case RTA_DST:
        if (plen === alen) addr = bytes(b, p, alen);
        break;
      case RTA_TABLE:
        if (plen >= 4) table = b.readUInt32LE(p);
        break;
      case RTA_PRIORITY:
        if (plen >= 4) metric = b.readUInt32LE(p);
        break;
      case RTA_GATEWAY:
        if (plen === alen) gateway = bytes(b, p, alen);
        break;
      case RTA_OIF:
        if (plen >= 4) oif = b.readUInt32LE(p);
        break;
      case RTA_MULTIPATH:
        hops = parseMultipath(b, p, p + plen, alen);
        break;
      case RTA_NH_ID:
        if (plen >= 4) nhid = b.readUInt32LE(p);
        break;
      case RTA_VIA:
        via = true;
        break;
    }
    a += align4(alenA);
  }
  if (hops === undefined) {
    hops = type === 1 /* RTN_UNICAST */ && (gateway !== undefined || oif !== 0 || via)
      ? [hopOf(gateway, oif, rtmFlags, 1, via)]
      : [];
  }
  const route = { family, addr: addr ?? new Uint8Array(alen), len: dstLen, table, metric, protocol, type, scope, hops };
  return nhid !== 0 ? { ...route, nhid } : route;
}

function hopOf(gateway: Uint8Array | undefined, ifindex: number, flags: number, weight: number, via: boolean): KernelHop {
  const hop = {
    gateway,
    ifindex,
    onlink: (flags & RTNH_F_ONLINK) !== 0,
    dead: (flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN)) !== 0,
    weight,
  };
  // rare (RFC 5549 routes of another daemon): only those hops carry the field
  return via ? { ...hop, otherFamily: true } : hop;
}

/** Copy `n` bytes out of a datagram (a plain Uint8Array: a Buffer slice would pin the whole datagram). */
function bytes(b: Buffer, p: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = b[p + i]!;
  return out;
}

function parseMultipath(b: Buffer, start: number, end: number, alen: number): KernelHop[] {
  const hops: KernelHop[] = [];
  for (let o = start; o + RTNH_LEN <= end;) {
    const len = b.readUInt16LE(o);
    if (len < RTNH_LEN || o + len > end) break;
    const flags = b[o + 2]!;
    const weight = b[o + 3]! + 1;
    const ifindex = b.readInt32LE(o + 4);
    let gateway: Uint8Array | undefined;
    let via = false;
    for (let a = o + RTNH_LEN; a + 4 <= o + len;) {
      const l = b.readUInt16LE(a);
      if (l < 4 || a + l > o + len) break;
      const t = b.readUInt16LE(a + 2) & 0x3fff;
      if (t === RTA_GATEWAY && l - 4 === alen) gateway = bytes(b, a + 4, alen);
      else if (t === RTA_VIA) via = true;
      a += align4(l);
    }
    hops.push(hopOf(gateway, ifindex, flags, weight, via));
    o += align4(len);
  }
  return hops;
}

/** A link as RTM_NEWLINK/RTM_DELLINK reports it. */
export interface LinkInfo {
  readonly index: number;
  readonly name: string | undefined;
  readonly flags: number;
}

export function parseLink(b: Buffer, msg: number, len: number): LinkInfo | undefined {
  const h = msg + NLMSG_HDRLEN;
  if (len < NLMSG_HDRLEN + IFINFOMSG_LEN) return undefined;
  const index = b.readInt32LE(h + 4);
  const flags = b.readUInt32LE(h + 8);
  let name: string | undefined;
  const end = Math.min(msg + len, b.length);
  for (let a = h + IFINFOMSG_LEN; a + 4 <= end;) {
    const l = b.readUInt16LE(a);
    if (l < 4 || a + l > end) break;
    if ((b.readUInt16LE(a + 2) & 0x3fff) === IFLA_IFNAME) {
      let z = a + 4;
      while (z < a + l && b[z] !== 0) z++;
      name = b.toString('latin1', a + 4, z);
    }
    a += align4(l);
  }
  return { index, name, flags };
}

/** A dump request: struct nlmsghdr + a zeroed rtmsg or ifinfomsg with the family set. */
export function dumpRequest(type: number, family: number, seq: number, headerLen: number): Buffer {
  const b = Buffer.alloc(NLMSG_HDRLEN + headerLen);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(0x1 | 0x300, 6); // NLM_F_REQUEST | NLM_F_DUMP
  b.writeUInt32LE(seq >>> 0, 8);
  b[NLMSG_HDRLEN] = family;
  return b;
}

/** Where the interesting parts of a route message are, found without allocating (see scanRoute). */
export interface RouteScan {
  family: number;
  dstLen: number;
  table: number;
  metric: number;
  type: number;
  rtmFlags: number;
  /** byte offsets of the RTA_DST / RTA_GATEWAY payloads, 0 when absent */
  dstOff: number;
  gwOff: number;
  oif: number;
  multipath: boolean;
  /** RTA_NH_ID, 0 when absent */
  nhid: number;
}

export const newRouteScan = (): RouteScan => ({ family: 0, dstLen: 0, table: 0, metric: 0, type: 0, rtmFlags: 0, dstOff: 0, gwOff: 0, oif: 0, multipath: false, nhid: 0 });

/**
 * Fill `s` from the route message at `msg` without allocating: a dump of a million routes that already match the
 * desired state is checked in place, and only the others are parsed (parseRoute). False on a malformed message.
 */
export function scanRoute(b: Buffer, msg: number, len: number, s: RouteScan): boolean {
  const r = msg + NLMSG_HDRLEN;
  if (len < NLMSG_HDRLEN + RTMSG_LEN || msg + len > b.length) return false;
  s.family = b[r]!;
  const alen = s.family === AF_INET ? 4 : s.family === AF_INET6 ? 16 : 0;
  if (alen === 0) return false;
  s.dstLen = b[r + 1]!;
  s.table = b[r + 4]!;
  s.type = b[r + 7]!;
  s.rtmFlags = b.readUInt32LE(r + 8);
  s.metric = 0;
  s.dstOff = 0;
  s.gwOff = 0;
  s.oif = 0;
  s.multipath = false;
  s.nhid = 0;
  const end = msg + len;
  for (let a = r + RTMSG_LEN; a + 4 <= end;) {
    const l = b.readUInt16LE(a);
    if (l < 4 || a + l > end) return false;
    const t = b.readUInt16LE(a + 2) & 0x3fff;
    if (t === RTA_DST) {
      if (l - 4 !== alen) return false;
      s.dstOff = a + 4;
    } else if (t === RTA_GATEWAY) {
      if (l - 4 !== alen) return false;
      s.gwOff = a + 4;
    } else if (t === RTA_OIF && l >= 8) s.oif = b.readUInt32LE(a + 4);
    else if (t === RTA_TABLE && l >= 8) s.table = b.readUInt32LE(a + 4);
    else if (t === RTA_PRIORITY && l >= 8) s.metric = b.readUInt32LE(a + 4);
    else if (t === RTA_MULTIPATH) s.multipath = true;
    else if (t === RTA_NH_ID && l >= 8) s.nhid = b.readUInt32LE(a + 4);
    a += align4(l);
  }
  return true;
}
