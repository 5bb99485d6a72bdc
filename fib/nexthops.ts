// Kernel nexthop objects (Linux >= 5.3, net/ipv4/nexthop.c; `ip nexthop`). A gateway route is written as
// RTA_NH_ID: a route with one next hop points at that next hop's own object (gateway + device), a route with
// several points at a group object whose members are those objects. `ip route show` then still prints
// `nhid N via GW dev DEV` (the kernel adds the object's gateway and device to route dumps while
// net.ipv4.nexthop_compat_mode is 1, its default); a one-member group would print as a multipath route, and IPv6 as
// `nexthop via ...` lines without a `via` of its own, which is why single next hops are not wrapped in a group.
//
// When a next hop dies, deleting its ONE object makes the kernel drop it from every group at once and remove the
// routes that pointed at it directly: one message instead of one per route (issue 18). A group that lost a member
// holds the remaining set, so it becomes that set's object (re-keyed; for a single survivor it is preferred over the
// survivor's own object) and the routes that move to the remaining next hops already point at the right object: no
// rewrite follows.
//
// The kernel also deletes objects by itself, silently (no RTM_DELNEXTHOP, and no RTM_DELROUTE for the IPv4 routes
// that used them): when their device goes down or loses its carrier (nexthop_flush_dev, called for NETDEV_DOWN,
// NETDEV_UNREGISTER, and NETDEV_CHANGE without IFF_RUNNING/IFF_LOWER_UP), and it refuses to create one on such a
// device ("Carrier for nexthop device is down"). kernel-events.ts follows the link state: the objects on the device
// are forgotten, the routes that used them are known gone, and they wait (NH_WAIT, failure ENETDOWN) until the
// carrier returns, when objects and routes are created again. Objects deleted or replaced by someone else are seen
// through RTNLGRP_NEXTHOP and re-asserted, as fib/ does for routes (FRR met routes left failed when a group was
// deleted behind zebra's back).
//
// Ownership: objects carry skein's protocol (nh_protocol); ids are allocated from a range away from 1.. (where
// `ip nexthop` and zebra start), an id held by anyone else is never reused (creation uses NLM_F_EXCL, EEXIST moves
// on), and only ids fib/ created or adopted (dumped with skein's protocol) are ever deleted. At start the objects
// a previous skeind left are adopted by content, so its routes keep their nhid; those not needed again are
// deleted after markSynced()'s sweep (never leaked across restarts).
//
// Objects that fall out of use while running are deleted by collect() once the writer is idle (core.ts).
// Not covered yet (fib/README.md): resilient groups are not used.
import type { RawNetlinkSocket } from 'netlink/dist/raw.js';
import type { RequestSocket } from './request-socket.js';
import {
  AF_INET, AF_INET6, NHA_GATEWAY, NHA_GROUP, NHA_ID, NHA_OIF, NHMSG_LEN, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_CREATE,
  NLM_F_EXCL, NLM_F_REQUEST, RTA_NH_ID, RTM_DELNEXTHOP, RTM_GETNEXTHOP, RTM_NEWNEXTHOP, RTNH_F_ONLINK, RT_SCOPE_LINK,
} from './constants.js';
import { align4, parseRoute } from './codec.js';
import { DumpError, dump } from './kernel.js';
import type { Links } from './links.js';
import { IFF_LOWER_UP, IFF_RUNNING, IFF_UP } from './constants.js';
import { hopIfindex, type Spec } from './targets.js';
import type { Family } from './types.js';

/** First id fib/ allocates: RTPROT_SKEIN in the high bits, far from the small ids people and zebra use. */
export const NH_ID_BASE = 171 << 20;
/** idFor(): the route cannot be written now (its next hop's device has no carrier; the kernel refuses the object) */
export const NH_WAIT = -1;

/** Does the kernel keep nexthop objects on a device with these flags (see nexthop_flush_dev)? */
export const carrierOk = (flags: number): boolean => (flags & IFF_UP) !== 0 && (flags & (IFF_RUNNING | IFF_LOWER_UP)) !== 0;

const NEW = 0, SENT = 1, OK = 2, GONE = 3;

export interface NhObj {
  readonly id: number;
  key: string;
  readonly family: Family;
  /** a group (of `members`) or a single next hop */
  readonly group: boolean;
  readonly gateway: Uint8Array | undefined;
  readonly ifindex: number;
  readonly onlink: boolean;
  members: { obj: NhObj; weight: number }[];
  state: number;
  /** RTA_NH_ID attribute for route messages */
  readonly tail: Buffer;
}

interface Connected {
  readonly family: Family;
  readonly addr: Uint8Array;
  readonly len: number;
  readonly oif: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const hopKey = (family: Family, gw: Uint8Array, ifindex: number, onlink: boolean): string =>
  `${family}|${hex(gw)}|${ifindex}|${onlink ? 1 : 0}`;
const groupKey = (family: Family, members: readonly { id: number; weight: number }[]): string =>
  `${family}g|${members.map((m) => `${m.id}:${members.length === 1 ? 1 : m.weight}`).sort().join(',')}`;

function covers(c: Connected, a: Uint8Array): boolean {
  let bits = c.len;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i]! & mask) !== (c.addr[i]! & mask)) return false;
  }
  return true;
}

function nhAttrU32(type: number, v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(8, 0);
  b.writeUInt16LE(type, 2);
  b.writeUInt32LE(v >>> 0, 4);
  return b;
}

/** One nexthop object of a dump or notification: its id, protocol, and content (a hop's key, or a group's members). */
export interface DumpedNexthop {
  readonly id: number;
  readonly protocol: number;
  /** hopKey() of a single next hop (undefined for a group or a shape fib/ does not write) */
  readonly hopKey: string | undefined;
  readonly members: { id: number; weight: number }[] | undefined;
}

export function parseNexthop(b: Buffer, o: number, l: number): DumpedNexthop | undefined {
  const h = o + NLMSG_HDRLEN;
  if (l < NLMSG_HDRLEN + NHMSG_LEN) return undefined;
  const family = b[h]!, protocol = b[h + 2]!, flags = b.readUInt32LE(h + 4);
  let id = 0, oif = 0;
  let gw: Uint8Array | undefined;
  let members: { id: number; weight: number }[] | undefined;
  for (let a = h + NHMSG_LEN; a + 4 <= o + l;) {
    const al = b.readUInt16LE(a), at = b.readUInt16LE(a + 2) & 0x3fff;
    if (al < 4 || a + al > o + l) break;
    if (at === NHA_ID && al >= 8) id = b.readUInt32LE(a + 4);
    else if (at === NHA_OIF && al >= 8) oif = b.readUInt32LE(a + 4);
    else if (at === NHA_GATEWAY) gw = Uint8Array.from(b.subarray(a + 4, a + al));
    else if (at === NHA_GROUP) {
      members = [];
      for (let g = a + 4; g + 8 <= a + al; g += 8) members.push({ id: b.readUInt32LE(g), weight: b[g + 4]! + 1 });
    }
    a += align4(al);
  }
  if (id === 0) return undefined;
  const hk = members === undefined && gw !== undefined && (family === AF_INET || family === AF_INET6)
    ? hopKey(family === AF_INET ? 4 : 6, gw, oif, (flags & RTNH_F_ONLINK) !== 0) : undefined;
  return { id, protocol, hopKey: hk, members };
}

export class Nexthops {
  /** objects are in use (the option is on and the kernel has them) */
  enabled = false;
  /** moves whenever a cached object of a Spec may be wrong (hop down, failure, connected subnets changed) */
  gen = 0;
  /** objects may have fallen out of use (a group re-keyed or replaced, routes moved): collect() should look */
  dirty = false;
  /** our ids that routes of other protocols point at (last dump): never collected or swept, whatever we think */
  #foreignUse = new Set<number>();
  /** groups that lost a member since the last takeShrunk(): their routes may want the old set back */
  #shrunk = new Set<number>();
  readonly #byKey = new Map<string, NhObj>();
  readonly #byId = new Map<number, NhObj>();
  /** ids any protocol holds (from the start-up dump) or that answered EEXIST */
  readonly #taken = new Set<number>();
  /** objects a previous run left: content key -> id, and which of them were taken over */
  readonly #adopted = new Map<string, number>();
  readonly #adoptedUsed = new Set<number>();
  #fresh: NhObj[] = [];
  readonly #pending = new Map<number, NhObj | null>();
  /** keys whose creation failed, and how often (three times: plain routes for that set) */
  readonly #bad = new Map<string, number>();
  #connected: Connected[] = [];
  #nextId = NH_ID_BASE;
  readonly #protocol: number;
  readonly #warn: (e: Error) => void;

  constructor(protocol: number, warn: (e: Error) => void) {
    this.#protocol = protocol;
    this.#warn = warn;
  }

  /** nexthop messages sent and not yet answered (flush('writes') waits for them too) */
  get pending(): number {
    return this.#pending.size;
  }

  get count(): number {
    let n = 0;
    for (const o of this.#byId.values()) if (o.state === OK) n++;
    return n;
  }

  // ---------------------------------------------------------------- start: detect and adopt

  /** Dump the kernel's nexthop objects: none at all (old kernel) switches to plain routes; skein's are adopted. */
  async start(sock: RawNetlinkSocket, seq: number, timeoutMs: number): Promise<void> {
    const hops: { id: number; key: string }[] = [];
    const groups: { id: number; members: { id: number; weight: number }[] }[] = [];
    try {
      await dump(sock, RTM_GETNEXTHOP, 0, NHMSG_LEN, seq, timeoutMs, (b, o, l) => {
        const d = parseNexthop(b, o, l);
        if (d === undefined) return;
        this.#taken.add(d.id);
        if (d.protocol !== this.#protocol) return; // another protocol's object: never adopted, never touched
        if (d.members) groups.push({ id: d.id, members: d.members });
        else if (d.hopKey !== undefined) hops.push({ id: d.id, key: d.hopKey });
        else this.#adopted.set(`?${d.id}`, d.id); // not a shape fib/ writes: deleted by the sweep
      });
    } catch (err) {
      if (err instanceof DumpError && (err.code === 'EOPNOTSUPP' || err.code === 'EINVAL' || err.code === 'ENOTSUP')) {
        this.enabled = false;
        return;
      }
      throw err;
    }
    const famOf = new Map<number, Family>();
    for (const h of hops) {
      this.#adopted.set(h.key, h.id);
      famOf.set(h.id, h.key.startsWith('4') ? 4 : 6);
    }
    for (const g of groups) {
      const fam = famOf.get(g.members[0]?.id ?? 0);
      if (fam === undefined) this.#adopted.set(`?${g.id}`, g.id);
      else this.#adopted.set(groupKey(fam, g.members), g.id);
    }
    this.enabled = true;
  }

  /** The nexthop ids routes of other protocols use, from a full dump (resync.ts). */
  setForeignUse(ids: Set<number>): void {
    this.#foreignUse = ids;
  }

  /** Adopted objects nothing took over: delete them (after the sweep removed the routes that used them). */
  sweep(cmd: RequestSocket, nextSeq: () => number): number {
    // an object another protocol's route points at stays: deleting it would delete that route
    const ids = [...this.#adopted.values()].filter((id) => !this.#adoptedUsed.has(id) && !this.#foreignUse.has(id));
    // groups before their members would be kinder, but deleting a member first only shrinks the group
    ids.sort((a, b) => b - a);
    for (const id of ids) this.#send(cmd, this.#delMessage(id, nextSeq()), null);
    this.#adopted.clear();
    return ids.length;
  }

  // ---------------------------------------------------------------- connected subnets (device of a gateway)

  /** Connected routes seen in a dump: the kernel wants a device on every gateway object, found through them. */
  connectedFromDump(b: Buffer, o: number, l: number, into: Connected[]): void {
    const k = parseRoute(b, o, l);
    // IPv4 connected routes are scope link; IPv6 ones are reported with scope universe
    if (!k || k.table !== 254 || (k.family === 4 && k.scope !== RT_SCOPE_LINK) || k.type !== 1 || k.hops.length !== 1) return;
    const h = k.hops[0]!;
    if (h.gateway !== undefined || h.ifindex === 0) return;
    into.push({ family: k.family, addr: k.addr, len: k.len, oif: h.ifindex });
  }

  setConnected(list: Connected[]): void {
    const key = (c: Connected): string => `${c.family}|${hex(c.addr)}/${c.len}@${c.oif}`;
    const a = list.map(key).sort().join(' '), b = this.#connected.map(key).sort().join(' ');
    this.#connected = list;
    if (a !== b) this.gen++;
  }

  #deviceOf(family: Family, gw: Uint8Array): number {
    let best: Connected | undefined;
    for (const c of this.#connected) {
      if (c.family === family && (best === undefined || c.len > best.len) && covers(c, gw)) best = c;
    }
    return best?.oif ?? 0;
  }

  // ---------------------------------------------------------------- objects of a Spec

  /** The group object id a route wanting `spec` is written with; 0: a plain route (not a gateway set, unresolved). */
  idFor(spec: Spec, links: Links): number {
    if (!this.enabled || spec.blackhole) return 0;
    if (spec.nhGen === this.gen && spec.nhLinkGen === links.gen) return spec.nhId;
    spec.nhGen = this.gen;
    spec.nhLinkGen = links.gen;
    spec.nhId = this.#resolve(spec, links);
    return spec.nhId;
  }

  #resolve(spec: Spec, links: Links): number {
    const members: { obj: NhObj; id: number; weight: number }[] = [];
    let waiting = 0;
    for (const h of spec.hops) {
      if (h.gateway === undefined) return 0; // device routes (workloads) stay plain
      let ifindex = hopIfindex(h, links.byName);
      if (h.dev !== undefined && ifindex === 0) return 0;
      if (ifindex === 0) ifindex = this.#deviceOf(spec.family, h.gateway);
      if (ifindex === 0) return 0; // not on a connected subnet: the kernel resolves it for a plain route
      const link = links.byIndex.get(ifindex);
      const key = hopKey(spec.family, h.gateway, ifindex, h.onlink);
      if ((this.#bad.get(key) ?? 0) >= 3) return 0;
      if (link !== undefined && !carrierOk(link.flags)) {
        // no object can exist on that device now: an ECMP set uses its live members (the kernel shrank the group
        // to them already, so the re-keyed group matches and nothing is written); a set with none waits
        waiting++;
        continue;
      }
      const obj = this.#byKey.get(key) ?? this.#create(key, spec.family, false, h.gateway, ifindex, h.onlink, []);
      members.push({ obj, id: obj.id, weight: h.weight });
    }
    if (members.length === 0) return waiting > 0 ? NH_WAIT : 0;
    if (waiting > 0 && members.length === 1) members[0]!.weight = 1;
    const key = groupKey(spec.family, members);
    if ((this.#bad.get(key) ?? 0) >= 3) return 0;
    if (members.length === 1) {
      // a single next hop is its own object, unless a group shrank to exactly it (its routes need no rewrite)
      const ad = this.#adopted.get(key);
      const g = this.#byKey.get(key) ?? (ad !== undefined && !this.#adoptedUsed.has(ad) ? this.#create(key, spec.family, true, undefined, 0, false, [{ obj: members[0]!.obj, weight: 1 }]) : undefined);
      return g !== undefined && g.state !== GONE ? g.id : members[0]!.obj.id;
    }
    const g = this.#byKey.get(key) ?? this.#create(key, spec.family, true, undefined, 0, false, members.map((m) => ({ obj: m.obj, weight: m.weight })));
    return g.id;
  }

  #create(key: string, family: Family, group: boolean, gateway: Uint8Array | undefined, ifindex: number, onlink: boolean,
    members: { obj: NhObj; weight: number }[]): NhObj {
    const adopted = this.#adopted.get(key);
    let id: number;
    if (adopted !== undefined && !this.#adoptedUsed.has(adopted)) {
      id = adopted;
      this.#adoptedUsed.add(id);
    } else {
      while (this.#taken.has(this.#nextId) || this.#byId.has(this.#nextId)) this.#nextId = (this.#nextId + 1) >>> 0 || NH_ID_BASE;
      id = this.#nextId++;
    }
    const obj: NhObj = {
      id, key, family, group, gateway, ifindex, onlink, members, state: adopted === id ? OK : NEW, tail: nhAttrU32(RTA_NH_ID, id),
    };
    this.#byKey.set(key, obj);
    this.#byId.set(id, obj);
    this.dirty = true; // what it replaces may be unused now
    if (obj.state === NEW) this.#fresh.push(obj);
    return obj;
  }

  /** Groups that shrank since the last call (their routes are looked at again: still wanting the old set?). */
  takeShrunk(): Set<number> {
    const s = this.#shrunk;
    this.#shrunk = new Set();
    return s;
  }

  /** RTA_NH_ID for a route message. */
  tail(id: number): Buffer | undefined {
    return this.#byId.get(id)?.tail;
  }

  // ---------------------------------------------------------------- writing objects

  /** Send the objects created since the last call, before the route batch that uses them (same socket: in order). */
  sendFresh(cmd: RequestSocket, nextSeq: () => number): void {
    for (const msg of this.takeFresh(nextSeq)) cmd.send(msg, undefined, (err) => { if (err) this.unsent([msg], err); });
  }

  /**
   * The messages of the objects created since the last call, marked sent and awaiting answers, for a caller that
   * sends them ahead of its route batch in the same sendmsg() (writer.ts, the direct socket). If that send fails,
   * unsent() must be told.
   */
  takeFresh(nextSeq: () => number): Buffer[] {
    if (this.#fresh.length === 0) return [];
    const fresh = this.#fresh;
    this.#fresh = [];
    const out: Buffer[] = [];
    for (const o of fresh) {
      if (o.state !== NEW) continue;
      o.state = SENT;
      const msg = this.#newMessage(o, nextSeq());
      this.#pending.set(msg.readUInt32LE(8), o);
      out.push(msg);
    }
    return out;
  }

  /** takeFresh()'s messages were not sent: no answer will come (the batch's failure makes the writer dump). */
  unsent(msgs: readonly Buffer[], err: Error): void {
    for (const m of msgs) this.#pending.delete(m.readUInt32LE(8));
    if (msgs.length > 0) this.#warn(new Error(`nexthop message not sent: ${err.message}`));
  }

  #send(cmd: RequestSocket, msg: Buffer, o: NhObj | null): void {
    this.#pending.set(msg.readUInt32LE(8), o);
    const seq = msg.readUInt32LE(8);
    cmd.send(msg, undefined, (err) => {
      if (!err) return;
      this.#pending.delete(seq);
      this.#warn(new Error(`nexthop message not sent: ${err.message}`));
    });
  }

  #newMessage(o: NhObj, seq: number): Buffer {
    const alen = o.family === 4 ? 4 : 16;
    const size = NLMSG_HDRLEN + NHMSG_LEN + 8 + (o.group ? 4 + 8 * o.members.length : align4(4 + alen) + 8);
    const b = Buffer.alloc(size);
    b.writeUInt32LE(size, 0);
    b.writeUInt16LE(RTM_NEWNEXTHOP, 4);
    // EXCL: an id someone else holds is never overwritten
    b.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 6);
    b.writeUInt32LE(seq >>> 0, 8);
    let p = NLMSG_HDRLEN;
    b[p] = o.group ? 0 : (o.family === 4 ? AF_INET : AF_INET6);
    b[p + 1] = 0; // scope: the kernel derives it
    b[p + 2] = this.#protocol;
    b.writeUInt32LE(o.onlink ? RTNH_F_ONLINK : 0, p + 4);
    p += NHMSG_LEN;
    nhAttrU32(NHA_ID, o.id).copy(b, p);
    p += 8;
    if (o.group) {
      b.writeUInt16LE(4 + 8 * o.members.length, p);
      b.writeUInt16LE(NHA_GROUP, p + 2);
      p += 4;
      for (const m of o.members) {
        b.writeUInt32LE(m.obj.id, p);
        b[p + 4] = m.weight - 1;
        p += 8;
      }
    } else {
      b.writeUInt16LE(4 + alen, p);
      b.writeUInt16LE(NHA_GATEWAY, p + 2);
      b.set(o.gateway!, p + 4);
      p += align4(4 + alen);
      nhAttrU32(NHA_OIF, o.ifindex).copy(b, p);
    }
    return b;
  }

  #delMessage(id: number, seq: number): Buffer {
    const size = NLMSG_HDRLEN + NHMSG_LEN + 8;
    const b = Buffer.alloc(size);
    b.writeUInt32LE(size, 0);
    b.writeUInt16LE(RTM_DELNEXTHOP, 4);
    b.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
    b.writeUInt32LE(seq >>> 0, 8);
    nhAttrU32(NHA_ID, id).copy(b, NLMSG_HDRLEN + NHMSG_LEN);
    return b;
  }

  /** The request socket overran: the answers still due are lost (a resync follows and settles the routes). */
  abandonPending(): void {
    this.#pending.clear();
  }

  /** An acknowledgement of one of ours; false when `seq` is not a nexthop message. */
  reply(seq: number, errno: number): boolean {
    const o = this.#pending.get(seq);
    if (o === undefined) return false;
    this.#pending.delete(seq);
    if (o === null) return true; // a delete: gone either way (ENOENT: already gone)
    if (errno === 0) {
      if (o.state === SENT) o.state = OK;
      return true;
    }
    // refused (EEXIST: the id is someone else's): forget it; the routes that used it fail and their retry makes a
    // new object with another id, or a plain route after three failures of the same set
    if (errno === 17) this.#taken.add(o.id);
    this.#bad.set(o.key, (this.#bad.get(o.key) ?? 0) + 1);
    this.#forget(o);
    this.gen++;
    this.#warn(new Error(`nexthop object ${o.id} refused (errno ${errno})`));
    return true;
  }

  #forget(o: NhObj): void {
    o.state = GONE;
    if (this.#byKey.get(o.key) === o) this.#byKey.delete(o.key);
    if (this.#byId.get(o.id) === o) this.#byId.delete(o.id);
  }

  // ---------------------------------------------------------------- objects nothing uses any more

  /**
   * Delete our objects that no route uses, wants, or holds as a group member (`used`: the ids routes point at in the
   * kernel and the ids their desired sets resolve to). Without this, every group that shrank and was later replaced
   * (a next hop that died and came back) would stay in the kernel until the next start. Only objects fib/ created or
   * took over this run are candidates. Returns the delete messages sent.
   */
  collect(used: Set<number>, cmd: RequestSocket, nextSeq: () => number): number {
    this.dirty = false;
    for (const id of this.#foreignUse) used.add(id); // deleting it would delete another protocol's route
    for (const o of this.#byId.values()) if (o.group && used.has(o.id)) for (const m of o.members) used.add(m.obj.id);
    const unused = [...this.#byId.values()].filter((o) => !used.has(o.id) && (o.state === OK || o.state === SENT));
    // groups first: a hop still in a group cannot be deleted without shrinking it
    unused.sort((a, b) => Number(b.group) - Number(a.group));
    for (const o of unused) {
      this.#send(cmd, this.#delMessage(o.id, nextSeq()), null);
      this.#forget(o);
    }
    if (unused.length > 0) this.gen++;
    return unused.length;
  }

  // ---------------------------------------------------------------- a next hop died

  /**
   * Delete the object(s) of next hop `gateway` now: the kernel stops using it in every group and removes the
   * routes that pointed at it directly. Returns the ids whose routes vanished with it (its own, and emptied groups).
   */
  hopDown(family: Family, gateway: Uint8Array, cmd: RequestSocket, nextSeq: () => number): Set<number> {
    const g = hex(gateway);
    const dead = [...this.#byId.values()].filter((o) => !o.group && o.family === family && o.gateway && hex(o.gateway) === g);
    for (const o of dead) {
      if (o.state === OK || o.state === SENT) this.#send(cmd, this.#delMessage(o.id, nextSeq()), null);
    }
    // the groups that shrank are not looked at again: the caller hands over the desired state that follows (the
    // withdrawals), and a route it leaves wanting the dead hop should not bring it back at once
    return this.#removed(dead, false);
  }

  /**
   * Interface `ifindex` went down, away or lost its carrier: the kernel deleted the objects on it by itself, without
   * a notification (nexthop_flush_dev), and shrank the groups they were in. Returns the ids whose routes vanished.
   */
  linkGone(ifindex: number): Set<number> {
    this.#bad.clear(); // creation failures on a downed link are not the set's fault
    return this.#removed([...this.#byId.values()].filter((o) => !o.group && o.ifindex === ifindex));
  }

  /** An interface came (back) up: sets that failed or waited for it may be created now. */
  linkUp(): void {
    this.#bad.clear();
    this.gen++;
  }

  /**
   * A nexthop notification written by someone else (never our own socket's: the reader drops those). An object of
   * ours deleted behind our back: forget it; its routes are gone (`gone`) and are written again with a new object.
   * One replaced behind our back (another content, maybe another protocol): it is no longer what we think, so it
   * is forgotten too (and its id left to whoever wrote it), and its routes (`changed`) are pointed at a new object.
   * Another protocol's new id is remembered as taken.
   */
  event(b: Buffer, o: number, l: number, added: boolean): { gone: Set<number>; changed: Set<number> } {
    const none = { gone: new Set<number>(), changed: new Set<number>() };
    let id = 0;
    let members: number[] | undefined;
    for (let a = o + NLMSG_HDRLEN + NHMSG_LEN; a + 4 <= o + l;) {
      const al = b.readUInt16LE(a), at = b.readUInt16LE(a + 2) & 0x3fff;
      if (al < 4 || a + al > o + l) break;
      if (at === NHA_ID && al >= 8) id = b.readUInt32LE(a + 4);
      else if (at === NHA_GROUP) {
        members = [];
        for (let g = a + 4; g + 8 <= a + al; g += 8) members.push(b.readUInt32LE(g));
      }
      a += align4(al);
    }
    if (id === 0) return none;
    const obj = this.#byId.get(id);
    if (added) this.#taken.add(id);
    if (obj === undefined || obj.state === GONE) return none;
    if (!added) return { gone: obj.group ? this.#groupGone(obj) : this.#removed([obj]), changed: new Set() };
    // a group of ours announced with its members or some of them: the kernel telling that it shrank the group
    // because a member was deleted (remove_nh_grp_entry; the member's RTM_DELNEXTHOP is handled on its own)
    if (obj.group && members !== undefined && members.every((m) => obj.members.some((x) => x.obj.id === m))) return none;
    // replaced: the routes still point at the id, now someone else's object
    const changed = obj.group ? this.#groupGone(obj) : this.#removed([obj]);
    return { gone: new Set(), changed };
  }

  // ---------------------------------------------------------------- verification against a dump

  /** Our objects the kernel has acknowledged: what a verification dump started after this call must show. */
  acknowledged(): readonly NhObj[] {
    return [...this.#byId.values()].filter((o) => o.state === OK);
  }

  /**
   * Compare `before` (acknowledged() taken before the dump was asked for) with the kernel's objects. Each of them
   * must be in the dump with the content we wrote, unless we deleted or replaced it since (then it is no longer
   * the object `byId` holds). One missing was deleted without our hearing of it: a notification lost in an
   * overrun of the event socket, or the kernel's silent flush on a carrier loss whose link event was lost. Without
   * this, fib/ would go on writing routes with an nhid the kernel no longer has, each refused (EINVAL) and retried
   * with the same id for ever. Missing: forgotten, its routes known gone (`gone`) and written again with a new
   * object; different content: treated as replaced behind our back (`changed`), as event() does.
   */
  verify(before: readonly NhObj[], dumped: ReadonlyMap<number, DumpedNexthop>): { gone: Set<number>; changed: Set<number> } {
    const gone = new Set<number>(), changed = new Set<number>();
    const still = before.filter((o) => o.state === OK && this.#byId.get(o.id) === o);
    // hops first: a member the kernel lost also left its groups (the kernel shrank them), which #removed follows
    const lostHops = still.filter((o) => !o.group && dumped.get(o.id) === undefined);
    for (const id of this.#removed(lostHops)) gone.add(id);
    for (const o of still) {
      if (o.state !== OK || this.#byId.get(o.id) !== o) continue; // lost above, or emptied with its members
      const d = dumped.get(o.id);
      if (d === undefined) {
        for (const id of this.#groupGone(o)) gone.add(id);
        continue;
      }
      const same = d.protocol === this.#protocol && (o.group
        ? d.members !== undefined && groupKey(o.family, d.members) === o.key
        : d.members === undefined && d.hopKey === o.key);
      if (same) continue;
      for (const id of o.group ? this.#groupGone(o) : this.#removed([o])) changed.add(id);
    }
    if (gone.size > 0 || changed.size > 0) {
      this.#warn(new Error(`nexthop objects not as written, re-asserted: ${[...gone].length} missing or emptied, ${[...changed].length} changed`));
    }
    return { gone, changed };
  }

  #groupGone(grp: NhObj): Set<number> {
    this.#forget(grp);
    this.gen++;
    return new Set([grp.id]);
  }

  /** Forget hop objects the kernel no longer has, and follow what the kernel did to the groups that held them. */
  #removed(dead: NhObj[], recheck = true): Set<number> {
    const gone = new Set<number>();
    if (dead.length === 0) return gone;
    for (const o of dead) {
      this.#forget(o);
      gone.add(o.id); // the routes that pointed at the hop itself went with it
    }
    for (const grp of [...this.#byId.values()]) {
      if (!grp.group || !grp.members.some((m) => dead.includes(m.obj))) continue;
      grp.members = grp.members.filter((m) => !dead.includes(m.obj));
      if (grp.members.length === 0) {
        gone.add(grp.id); // the kernel removed the empty group and its routes
        this.#forget(grp);
        continue;
      }
      // the group now holds the remaining set: it becomes that set's group, unless the set has one already
      if (recheck) this.#shrunk.add(grp.id);
      if (this.#byKey.get(grp.key) === grp) this.#byKey.delete(grp.key);
      grp.key = groupKey(grp.family, grp.members.map((m) => ({ id: m.obj.id, weight: m.weight })));
      if (!this.#byKey.has(grp.key)) this.#byKey.set(grp.key, grp);
    }
    this.gen++;
    this.dirty = true;
    return gone;
  }
}
