// The ownership rules: fib/ changes only routes of its own protocol in the tables it manages, and the kernel
// enforces most of that for it. This file is the one place where the operation for an entry is chosen and where
// the netlink flags that carry the rules are set:
//  - add = NLM_F_CREATE|NLM_F_EXCL: never clobbers another protocol's route at the same prefix and metric
//    (the kernel answers EEXIST);
//  - change = NLM_F_CREATE|NLM_F_REPLACE, only for a prefix whose kernel route is known to be skein's (atomic:
//    no moment without a route);
//  - delete = RTM_DELROUTE carrying skein's protocol number, which the kernel matches (fib_table_delete /
//    ip6_route_del compare rtm_protocol), so another protocol's route can never be removed;
//  - dumps and events of other protocols, and of tables fib/ does not manage, are ignored: never adopted, never
//    swept (see resync.ts and kernel-events.ts, which call isOurs / RouteTable.managed).
// An adopted route (seen at start, not set again) is deleted only after markSynced(): a restart keeps forwarding.
import {
  NLMSG_HDRLEN, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, RTM_DELROUTE, RTM_NEWROUTE, RTMSG_LEN,
  RTN_BLACKHOLE, RTN_UNICAST, RTN_UNSPEC, RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE,
} from './constants.js';
import { rtmProtocol, writeRouteMessage } from './codec.js';
import { WITHDRAWN, isSpec, type Entry } from './entries.js';
import type { Links } from './links.js';
import type { Nexthops } from './nexthops.js';
import { encodeSpec, specMatches, type Spec } from './targets.js';

export const OP_NONE = 0;
export const OP_ADD = 1;
export const OP_REPLACE = 2;
export const OP_DELETE = 3;

/** Does the kernel hold what the entry wants (both null counts as a match)? */
export function matches(e: Entry, links: Links, nh: Nexthops): boolean {
  const w = e.want, h = e.have;
  if (w === null || h === null) return w === h;
  // With nexthop objects the route must point at the wanted set's object; when it does, the object holds the set
  // (a group that lost a dead member is re-keyed to the remaining set, so its routes match without a rewrite).
  const id = nh.idFor(w, links);
  if (id !== e.nhid) return false;
  if (id !== 0) return true;
  if (isSpec(h)) return (h === w || h.key === w.key) && (w.blackhole || encodeSpec(w, links.gen, links.byName) !== undefined);
  return specMatches(w, h, links.byName);
}

/** The write an entry needs now. `synced`: the desired state is complete, so adopted routes not wanted go. */
export function opFor(e: Entry, links: Links, nh: Nexthops, synced: boolean): number {
  if (e.want) {
    if (matches(e, links, nh)) return OP_NONE;
    return e.have ? OP_REPLACE : OP_ADD;
  }
  if (e.have && (synced || e.flags & WITHDRAWN)) return OP_DELETE;
  return OP_NONE;
}

/**
 * Is the route message at `o` one of skein's routes written by someone else (a dump, or an event not caused by one
 * of our own write sockets — the request socket and the `direct` one — whose port the kernel copies into nlmsg_pid)?
 */
export function isOthersWriteOfOurs(b: Buffer, o: number, len: number, protocol: number, ownPort: number, directPort: number): boolean {
  if (len < NLMSG_HDRLEN + RTMSG_LEN || rtmProtocol(b, o) !== protocol) return false;
  const pid = b.readUInt32LE(o + 12);
  return pid !== ownPort && pid !== directPort;
}

/** Write the route message of `op` for `e` at `off` (the spec must be encoded already for add/replace). */
export function writeOp(
  b: Buffer, off: number, op: number, e: Entry, spec: Spec | null, seq: number, protocol: number, nhTail: Buffer | undefined,
): number {
  const t = e.tbl;
  if (op === OP_DELETE) {
    // rtm_protocol is matched by the kernel on delete: only a route tagged as skein's can go
    return writeRouteMessage(b, off, RTM_DELROUTE, NLM_F_REQUEST, seq, t.family, e.v4, e.v6, e.len,
      t.table, protocol, RT_SCOPE_NOWHERE, RTN_UNSPEC, 0, t.metric, undefined);
  }
  const s = spec!;
  const flags = NLM_F_REQUEST | NLM_F_CREATE | (op === OP_ADD ? NLM_F_EXCL : NLM_F_REPLACE);
  if (nhTail !== undefined) {
    // through a nexthop object: the object carries gateway, device and on-link
    return writeRouteMessage(b, off, RTM_NEWROUTE, flags, seq, t.family, e.v4, e.v6, e.len,
      t.table, protocol, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0, t.metric, nhTail);
  }
  const enc = s.enc;
  return writeRouteMessage(b, off, RTM_NEWROUTE, flags, seq, t.family, e.v4, e.v6, e.len,
    t.table, protocol, s.blackhole ? RT_SCOPE_UNIVERSE : (t.family === 4 ? enc!.scope : RT_SCOPE_UNIVERSE),
    s.blackhole ? RTN_BLACKHOLE : RTN_UNICAST, enc ? enc.rtmFlags : 0, t.metric, enc?.tail);
}
