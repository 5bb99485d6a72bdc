// Maximum prefixes (RFC 4486 §4), per address family as BIRD's channel limits and FRR's per-AFI maximum-prefix
// count them: the peer's accepted prefixes of a family (Adj-RIB-In, after import policy: what costs us memory)
// against that family's limit. Crossing the warning threshold logs once per family (again only after falling back
// below it). An UPDATE that would exceed the limit is not applied — the speaker asks first (RibCore.countsAfterUpdate,
// bgp/rib/prefix-limit.ts), so no route beyond the limit ever reaches the Loc-RIB, the FIB or another peer — and
// closes the session with Cease / Maximum Number of Prefixes Reached, whose data is that family's AFI/SAFI and its
// limit, and keeps it down: until restartAfterSec passes, or for good (a
// configuration change or restart of the speaker brings it back). Connections from the peer are refused
// meanwhile (Peer.heldUntil), so it cannot come back in through the listener.
import { IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import { familyNameOf } from './config.js';
import type { Peer } from './peer.js';

/** The limit a peer crossed: close every connection with this (the speaker does). */
export interface PrefixLimitHit {
  family: number;
  count: number;
  limit: number;
  /** the NOTIFICATION's data: AFI, SAFI, limit */
  data: Buffer;
  /** seconds until the peer may come back; undefined: held down for good */
  restart: number | undefined;
}

/** The peer's limit per family (Infinity: none), for RibCore.countsAfterUpdate. */
export function prefixLimitsOf(p: Peer): { v4: number; v6: number } {
  const mp = p.opts.maxPrefixes;
  if (!mp) return { v4: Infinity, v6: Infinity };
  return { v4: mp.perFamily?.[familyNameOf(IPV4_UNICAST)] ?? mp.limit, v6: mp.perFamily?.[familyNameOf(IPV6_UNICAST)] ?? mp.limit };
}

/** Check a peer's accepted prefixes against its limits; logs warnings, and on a hit holds the peer down. */
export function checkPrefixLimits(
  p: Peer,
  stats: { received4: number; received6: number },
  log: (level: 'warn' | 'error', msg: string) => void,
): PrefixLimitHit | null {
  const mp = p.opts.maxPrefixes;
  if (!mp) return null;
  const pct = mp.warningThreshold ?? 75;
  let over: { family: number; count: number; limit: number } | null = null;
  for (const family of [IPV4_UNICAST, IPV6_UNICAST]) {
    const name = familyNameOf(family);
    const limit = mp.perFamily?.[name] ?? mp.limit;
    const count = family === IPV4_UNICAST ? stats.received4 : stats.received6;
    const warnAt = Math.ceil((limit * pct) / 100);
    if (count < warnAt) p.prefixWarned.delete(family);
    else if (!p.prefixWarned.has(family) && count <= limit) {
      p.prefixWarned.add(family);
      log('warn', `${count} ${name} prefixes accepted, ${pct}% of the limit of ${limit}`);
    }
    if (count > limit && over === null) over = { family, count, limit };
  }
  if (over === null) return null;
  const { family, count, limit } = over;
  const data = Buffer.alloc(7);
  data.writeUInt16BE(family >> 8, 0);
  data.writeUInt8(family & 0xff, 2);
  data.writeUInt32BE(limit >>> 0, 3);
  const restart = mp.restartAfterSec;
  p.heldUntil = restart === undefined ? Infinity : Date.now() + restart * 1000;
  p.prefixWarned.clear();
  log('error', `maximum ${familyNameOf(family)} prefixes exceeded: ${count} > ${limit}; session closed${restart === undefined ? ' and held down' : `, restart in ${restart} s`}`);
  return { family, count, limit, data, restart };
}
