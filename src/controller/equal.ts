// Equality of the node controller's own shapes (DesiredPeer, Origination, Blackhole, DeviceRoute), field by field.
//
// Why not util.isDeepStrictEqual: the controller compares every entry of the old state with the new one on each
// recompute (diffStates), and the generic comparison checks prototypes, own-property descriptors, symbols and cycles
// for every object and array on the way; in the per-workload-event profile of `npm run bench -- convergence` it was a
// large share of a host's CPU. These shapes are plain data made by the derivation: strings, numbers, booleans, arrays
// of them and two small records, so each field is compared the way its type needs and nothing else is looked at.
//
// Each table is typed with every key of its interface (`-?` makes optional ones required here too), so a field added
// to a shape without a comparator here fails the type check instead of being silently ignored by the diff.
// test/config/controller-equal checks each table against a generic reference equality on generated values.
import type { BGPPassword } from '../../config/index.js';
import type { DesiredPeer, PeerSource } from './peers.js';
import type { Blackhole, DeviceRoute, Origination } from './originate.js';

/** One comparator per field of T. */
export type FieldEquality<T> = { readonly [K in keyof T]-?: (a: T[K], b: T[K]) => boolean };

/** Primitives, and an absent optional field against another. */
const same = <V>(a: V, b: V): boolean => a === b;

function sameList<V>(a: readonly V[], b: readonly V[], eq: (x: V, y: V) => boolean): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!eq(a[i]!, b[i]!)) return false;
  return true;
}

const sameStrings = (a: readonly string[], b: readonly string[]): boolean => sameList(a, b, same);
const sameTuple = (a: readonly number[], b: readonly number[]): boolean => sameList(a, b, same);

function samePassword(a: BGPPassword | undefined, b: BGPPassword | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return a.secretKeyRef.name === b.secretKeyRef.name && a.secretKeyRef.key === b.secretKeyRef.key;
}

function sameSource(a: PeerSource, b: PeerSource): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'mesh') return true;
  const y = b as Extract<PeerSource, { kind: 'BGPPeer' }>;
  return a.name === y.name && a.via === y.via;
}

export const PEER_FIELDS: FieldEquality<DesiredPeer> = {
  key: same, address: same, family: same, port: same, name: same, type: same, peerNode: same, peerAS: same,
  localAS: same, passive: same, sourceAddress: same, password: samePassword, restartTimeMs: same,
  keepaliveTimeMs: same, ttlSecurity: same, nextHop: same, numAllowedLocalASNumbers: same, filters: sameStrings,
  rrClient: same, rrClusterId: same, reflection: same, reachableBy: same,
  sources: (a, b) => sameList(a, b, sameSource),
};

export const ORIGINATION_FIELDS: FieldEquality<Origination> = {
  key: same, prefix: same, family: same, kind: same,
  communities: (a, b) => sameList(a, b, sameTuple),
  largeCommunities: (a, b) => sameList(a, b, sameTuple),
  localPref: same, sources: sameStrings,
};

export const BLACKHOLE_FIELDS: FieldEquality<Blackhole> = { key: same, prefix: same, family: same };

export const DEVICE_ROUTE_FIELDS: FieldEquality<DeviceRoute> = {
  key: same, prefix: same, family: same, interface: same, scope: same, workload: same, elevated: same,
};

/**
 * A shape's equality: `equal` is written out by hand for speed (the table walked by key is ~10x slower: keyed loads
 * on every field), `differing` walks the table (only for entries that did differ). test/config/controller-equal checks that
 * the two agree on generated values, so a field added to the table but not to `equal` is caught there.
 */
export class ShapeEquality<T> {
  readonly #fields: readonly [keyof T & string, (a: unknown, b: unknown) => boolean][];

  constructor(table: FieldEquality<T>, readonly equal: (a: T, b: T) => boolean) {
    this.#fields = (Object.keys(table) as (keyof T & string)[]).sort()
      .map((k) => [k, table[k] as (a: unknown, b: unknown) => boolean]);
  }

  /** The names of the fields that differ, sorted. */
  differing(a: T, b: T): string[] {
    const out: string[] = [];
    for (const [k, eq] of this.#fields) if (!eq(a[k], b[k])) out.push(k);
    return out;
  }

  /** `differing(a, b).length === 0`, the slow way (for the test). */
  equalByTable(a: T, b: T): boolean {
    for (const [k, eq] of this.#fields) if (!eq(a[k], b[k])) return false;
    return true;
  }
}

const sameSources = (a: readonly PeerSource[], b: readonly PeerSource[]): boolean => sameList(a, b, sameSource);
const sameCommunities = (a: readonly (readonly number[])[], b: readonly (readonly number[])[]): boolean => sameList(a, b, sameTuple);

export const peerEquality = new ShapeEquality(PEER_FIELDS, (a, b) => a === b || (
  a.key === b.key && a.address === b.address && a.family === b.family && a.port === b.port && a.name === b.name
  && a.type === b.type && a.peerNode === b.peerNode && a.peerAS === b.peerAS && a.localAS === b.localAS
  && a.passive === b.passive && a.sourceAddress === b.sourceAddress && a.restartTimeMs === b.restartTimeMs
  && a.keepaliveTimeMs === b.keepaliveTimeMs && a.ttlSecurity === b.ttlSecurity && a.nextHop === b.nextHop
  && a.numAllowedLocalASNumbers === b.numAllowedLocalASNumbers && a.rrClient === b.rrClient
  && a.rrClusterId === b.rrClusterId && a.reflection === b.reflection && a.reachableBy === b.reachableBy
  && samePassword(a.password, b.password) && sameStrings(a.filters, b.filters) && sameSources(a.sources, b.sources)));

export const originationEquality = new ShapeEquality(ORIGINATION_FIELDS, (a, b) => a === b || (
  a.key === b.key && a.prefix === b.prefix && a.family === b.family && a.kind === b.kind && a.localPref === b.localPref
  && sameCommunities(a.communities, b.communities) && sameCommunities(a.largeCommunities, b.largeCommunities)
  && sameStrings(a.sources, b.sources)));

export const blackholeEquality = new ShapeEquality(BLACKHOLE_FIELDS, (a, b) => a === b || (
  a.key === b.key && a.prefix === b.prefix && a.family === b.family));

export const deviceRouteEquality = new ShapeEquality(DEVICE_ROUTE_FIELDS, (a, b) => a === b || (
  a.key === b.key && a.prefix === b.prefix && a.family === b.family && a.interface === b.interface
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- scope is only 'link' today; compared so a second scope cannot be missed
  && a.scope === b.scope && a.workload === b.workload && a.elevated === b.elevated));
