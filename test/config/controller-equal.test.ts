// src/controller/equal.ts: the node controller's own field-by-field equality for its shapes, checked against a
// generic reference (util.isDeepStrictEqual over the values with absent optional fields dropped) on generated pairs
// that are equal, equal but not the same objects, or differ in chosen fields; and against real derivations: every
// field a derivation puts on an object is one the equality compares (none escapes the diff), and diffStates reports a
// change in a nested value (a community, a source, a password) and nothing for an equal re-derivation.
import t from 'tap';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { deriveState, diffStates, isEmptyDiff, type DesiredPeer, type Origination, type Blackhole, type DeviceRoute } from '../../src/controller/index.js';
import {
  BLACKHOLE_FIELDS, DEVICE_ROUTE_FIELDS, ORIGINATION_FIELDS, PEER_FIELDS, type ShapeEquality,
  blackholeEquality, deviceRouteEquality, originationEquality, peerEquality, type FieldEquality,
} from '../../src/controller/equal.js';
import { loadModel as load, resourceYaml as y } from '../helpers/model.js';

/** The reference: deep strict equality of the JSON-shaped values, an absent field and an undefined one alike. */
const plain = (x: unknown): unknown => (x === undefined ? undefined : JSON.parse(JSON.stringify(x)));
const refEqual = (a: unknown, b: unknown): boolean => isDeepStrictEqual(plain(a), plain(b));
function refDiffering(a: object, b: object): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !refEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])).sort();
}

// Small domains, so that generated pairs often agree by value in some fields and not in others.
const str = fc.constantFrom('a', 'b', '10.0.0.1', 'fd00::1');
const opt = <V>(arb: fc.Arbitrary<V>): fc.Arbitrary<V | undefined> => fc.option(arb, { nil: undefined });
const num = fc.constantFrom(0, 1, 64512, 65000, 2 ** 31 - 1);
const family = fc.constantFrom(4 as const, 6 as const);

const source = fc.oneof(
  fc.constant({ kind: 'mesh' as const }),
  fc.record({ kind: fc.constant('BGPPeer' as const), name: str, via: fc.constantFrom('peerIP' as const, 'peerSelector' as const, 'reverse' as const) }),
);
const peer: fc.Arbitrary<DesiredPeer> = fc.record({
  key: str, address: str, family, port: opt(num), name: str,
  type: fc.constantFrom('node-to-node mesh' as const, 'global' as const, 'node specific' as const),
  peerNode: opt(str), peerAS: num, localAS: num, passive: fc.boolean(), sourceAddress: opt(str),
  password: opt(fc.record({ secretKeyRef: fc.record({ name: str, key: str }) })),
  restartTimeMs: opt(num), keepaliveTimeMs: opt(num), ttlSecurity: opt(num),
  nextHop: fc.constantFrom('auto' as const, 'self' as const, 'keep' as const), numAllowedLocalASNumbers: opt(num),
  filters: fc.array(str, { maxLength: 3 }), rrClient: fc.boolean(), rrClusterId: opt(str),
  reflection: fc.constantFrom('none' as const, 'client' as const, 'reflector' as const), reachableBy: opt(str),
  sources: fc.array(source, { maxLength: 3 }),
}, {
  requiredKeys: ['key', 'address', 'family', 'name', 'type', 'peerAS', 'localAS', 'passive', 'nextHop', 'filters', 'rrClient', 'reflection', 'sources'],
}) as fc.Arbitrary<DesiredPeer>;
const origination: fc.Arbitrary<Origination> = fc.record({
  key: str, prefix: str, family, kind: fc.constantFrom('block', 'borrowed', 'service') as fc.Arbitrary<Origination['kind']>,
  communities: fc.array(fc.tuple(num, num), { maxLength: 3 }),
  largeCommunities: fc.array(fc.tuple(num, num, num), { maxLength: 2 }),
  localPref: num, sources: fc.array(str, { maxLength: 3 }),
});
const blackhole: fc.Arbitrary<Blackhole> = fc.record({ key: str, prefix: str, family });
const deviceRoute: fc.Arbitrary<DeviceRoute> = fc.record({
  key: str, prefix: str, family, interface: str, scope: fc.constant('link' as const), workload: str,
  elevated: opt(fc.constant(true as const)),
}, { requiredKeys: ['key', 'prefix', 'family', 'interface', 'scope', 'workload'] }) as fc.Arbitrary<DeviceRoute>;

/** a, and b: a deep copy of a with the chosen fields taken from another generated value (none chosen: equal). */
function pairs<T extends object>(arb: fc.Arbitrary<T>, table: FieldEquality<T>): fc.Arbitrary<[T, T]> {
  return fc.tuple(arb, arb, fc.subarray(Object.keys(table))).map(([a, other, keys]) => {
    const b = structuredClone(a) as Record<string, unknown>;
    for (const k of keys) {
      const v = (other as Record<string, unknown>)[k];
      if (v === undefined) delete b[k];
      else b[k] = structuredClone(v);
    }
    return [a, b as T];
  });
}

const SHAPES = [
  ['DesiredPeer', peer, PEER_FIELDS, peerEquality],
  ['Origination', origination, ORIGINATION_FIELDS, originationEquality],
  ['Blackhole', blackhole, BLACKHOLE_FIELDS, blackholeEquality],
  ['DeviceRoute', deviceRoute, DEVICE_ROUTE_FIELDS, deviceRouteEquality],
] as [string, fc.Arbitrary<object>, FieldEquality<object>, ShapeEquality<object>][];

for (const [name, arb, table, eq] of SHAPES) {
  t.test(`${name}: equal and differing fields agree with the reference equality`, (t) => {
    let same = 0;
    let differ = 0;
    fc.assert(fc.property(pairs(arb, table), ([a, b]) => {
      const want = refEqual(a, b);
      if (want) same++; else differ++;
      return eq.equal(a, b) === want && eq.equal(b, a) === want && eq.equalByTable(a, b) === want
        && isDeepStrictEqual(eq.differing(a, b), refDiffering(a, b));
    }), { numRuns: 2000 });
    // the generator must exercise both outcomes, or the property says little
    t.ok(same > 100 && differ > 100, `both outcomes generated (equal ${same}, different ${differ})`);
    t.end();
  });
}

t.test('an equal copy is equal; one nested change is seen and named', (t) => {
  const p: DesiredPeer = {
    key: '10.0.0.2', address: '10.0.0.2', family: 4, name: 'Mesh_10_0_0_2', type: 'node-to-node mesh', peerAS: 64512,
    localAS: 64512, passive: false, password: { secretKeyRef: { name: 'bgp', key: 'mesh' } }, nextHop: 'auto',
    filters: ['f1'], rrClient: false, reflection: 'none', sources: [{ kind: 'BGPPeer', name: 'x', via: 'peerIP' }],
  };
  t.ok(peerEquality.equal(p, structuredClone(p)), 'a deep copy is equal');
  const q = structuredClone(p);
  q.password!.secretKeyRef.key = 'other';
  t.notOk(peerEquality.equal(p, q), 'a password key change is a change');
  t.same(peerEquality.differing(p, q), ['password']);
  const r = structuredClone(p);
  (r.sources[0] as { via: string }).via = 'reverse';
  t.same(peerEquality.differing(p, r), ['sources'], 'a source\'s via is compared');
  const o: Origination = { key: 'k', prefix: '10.65.1.0/26', family: 4, kind: 'block', communities: [[65000, 100]], largeCommunities: [], localPref: 1, sources: ['s'] };
  const o2 = structuredClone(o);
  o2.communities[0]![1] = 101;
  t.same(originationEquality.differing(o, o2), ['communities'], 'one community value is compared');
  t.end();
});

const wep = (node: string, pod: string, ifname: string, nets: string[]): string =>
  y('WorkloadEndpoint', `${node}-k8s-${pod}-eth0`, `{ orchestrator: k8s, node: ${node}, pod: ${pod}, endpoint: eth0, interfaceName: ${ifname}, ipNetworks: [${nets.map((n) => `"${n}"`).join(', ')}] }`, ', namespace: default');
const CLUSTER = (community: string, password: string): string =>
  y('BGPConfiguration', 'default', `{ asNumber: 64512, nodeMeshMaxRestartTime: 90s, nodeMeshPassword: { secretKeyRef: { name: bgp, key: ${password} } },
    serviceClusterIPs: [{ cidr: 10.96.0.0/12 }], communities: [{ name: pods, value: "${community}" }],
    prefixAdvertisements: [{ cidr: 10.65.0.0/16, communities: [pods, "65000:1:2"] }] }`)
  + y('BGPPeer', 'tor', '{ peerIP: 192.0.2.200, asNumber: 65000, keepaliveTime: 20s, filters: [f1] }')
  + y('IPPool', 'pods-v4', '{ cidr: 10.65.0.0/16, blockSize: 26 }')
  + y('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64" } }')
  + y('Node', 'n2', '{ bgp: { ipv4Address: 10.0.0.2/24, ipv6Address: "fd00::2/64" } }')
  + y('BlockAffinity', 'n1-a', '{ node: n1, cidr: "10.65.1.0/26", state: confirmed, deleted: "false" }')
  + y('BlockAffinity', 'n2-a', '{ node: n2, cidr: "10.65.9.0/26", state: confirmed, deleted: "false" }')
  + wep('n1', 'web', 'cali1', ['10.65.1.5/32'])
  + wep('n1', 'borrow', 'cali2', ['10.65.9.7/32']);

t.test('real derivations: every field is compared; nested changes reach the diff; equal re-derivation is empty', (t) => {
  const a = deriveState(load(CLUSTER('65000:100', 'mesh')), 'n1');
  t.ok(a.peers.length >= 3 && a.announce.length >= 2 && a.blackholes.length >= 1 && a.deviceRoutes.length >= 2, 'the fixture derives every shape');
  const covered = (name: string, xs: object[], table: object): void => {
    const extra = new Set(xs.flatMap((x) => Object.keys(x)).filter((k) => !(k in table)));
    t.same([...extra], [], `${name}: no field outside the equality`);
  };
  covered('peers', a.peers, PEER_FIELDS);
  covered('announce', a.announce, ORIGINATION_FIELDS);
  covered('blackholes', a.blackholes, BLACKHOLE_FIELDS);
  covered('deviceRoutes', a.deviceRoutes, DEVICE_ROUTE_FIELDS);

  t.ok(isEmptyDiff(diffStates(a, deriveState(load(CLUSTER('65000:100', 'mesh')), 'n1'))), 'an equal state from a fresh Model: empty diff');

  const b = deriveState(load(CLUSTER('65000:101', 'mesh')), 'n1');
  const d = diffStates(a, b);
  t.ok(d.announce.changed.length > 0 && d.announce.changed.every((c) => c.fields.join() === 'communities'), 'a community value: announcements changed in communities only');
  t.equal(d.peers.changed.length, 0, '... and no peer changed');

  const c = deriveState(load(CLUSTER('65000:100', 'other')), 'n1');
  const dp = diffStates(a, c);
  const mesh = dp.peers.changed.filter((x) => x.after.type === 'node-to-node mesh');
  t.ok(mesh.length === 2 && mesh.every((x) => x.fields.join() === 'password'), 'the mesh password key: mesh peers changed in password only');
  t.ok(dp.peers.changed.every((x) => x.after.type === 'node-to-node mesh'), '... the ToR peer not');
  t.equal(dp.announce.changed.length + dp.announce.added.length + dp.announce.removed.length, 0, '... and no announcement');
  t.end();
});
