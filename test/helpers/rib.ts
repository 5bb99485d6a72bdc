// Builders shared by the route-processing core's tests (engine-rib, engine-addpath): prefixes in the core's
// number form, UPDATE messages, negotiated session terms, and draining a peer's outbound work.
import { IPV4_UNICAST, IPV6_UNICAST, type RibCore } from '../../bgp/index.js';
import type { OutBatch, PathAttributes, PrefixKey, SessionTerms, UpdateMessage } from '../../bgp/index.js';

/** "10.1.0.0/24" → Prefix4 (address * 64 + length). */
export function p4(text: string): number {
  const [addr = '', len = '32'] = text.split('/');
  const o = addr.split('.').map(Number);
  return ((((o[0] ?? 0) << 24) | ((o[1] ?? 0) << 16) | ((o[2] ?? 0) << 8) | (o[3] ?? 0)) >>> 0) * 64 + Number(len);
}

/** A prefix key back to text. */
export const show = (p: PrefixKey): string => {
  if (typeof p === 'string') return p;
  const a = Math.floor(p / 64);
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${p % 64}`;
};

export const v4 = (prefixes: number[], pathIds: number[] | null = null) => ({ afi: 1 as const, safi: 1, prefixes, pathIds });
export const v6 = (prefixes: string[], pathIds: number[] | null = null) => ({ afi: 2 as const, safi: 1, prefixes, pathIds });

export function announce(prefixes: string[], attributes: PathAttributes, pathIds: number[] | null = null): UpdateMessage {
  return { type: 'UPDATE', withdrawn: v4([]), attributes, nlri: v4(prefixes.map(p4), pathIds) };
}
export function withdraw(prefixes: string[], pathIds: number[] | null = null): UpdateMessage {
  return { type: 'UPDATE', withdrawn: v4(prefixes.map(p4), pathIds), attributes: {}, nlri: v4([]) };
}
export function announce6(prefixes: string[], attributes: PathAttributes, nextHops: string[]): UpdateMessage {
  return { type: 'UPDATE', withdrawn: v4([]), attributes, nlri: v4([]), mpReach: { afi: 2, safi: 1, nextHops, nlri: v6(prefixes) } };
}

/** What a session negotiated: both unicast families, no ADD-PATH, unless overridden. */
export function terms(peerId: number, ibgp: boolean, over: Partial<SessionTerms> = {}): SessionTerms {
  return { peerId, ibgp, families: [IPV4_UNICAST, IPV6_UNICAST], addPathRx: new Set(), addPathTx: new Set(), enhancedRouteRefresh: false, ...over };
}

/** Everything queued for a peer, in batches of at most max prefixes. */
export function drain(core: RibCore, id: number, max = 1000): OutBatch[] {
  const out: OutBatch[] = [];
  for (let b = core.nextBatch(id, max); b; b = core.nextBatch(id, max)) out.push(b);
  return out;
}
