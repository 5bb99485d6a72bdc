// The routing-policy rule engine (bgp/rib/policy.ts) and the compiler of Calico's resources into it
// (src/controller/policy.ts). Expected outcomes are written from Calico's confd templates (bird_ipam.cfg.template
// calico_export_to_bgp_peers, bird_aggr.cfg.template calico_aggr, template_funcs.go filterStatement), not from
// this implementation's output.
import t from 'tap';
import fc from 'fast-check';
import { RibCore, evaluate, globToRegExp, type PathAttributes, type PeerRules, type RuleSet } from '../../bgp/index.js';
import type { Model } from '../../config/index.js';
import { compileNodePolicy, peerRules, EXPORT_FALLBACK, IMPORT_FALLBACK, BIRD_INT_MAX } from '../../src/controller/policy.js';
import { announce, announce6, drain, p4, show, terms, withdraw } from '../helpers/rib.js';
import { loadModel as load } from '../helpers/model.js';

const comm = (a: number, b: number): number => ((a << 16) | b) >>> 0;
const doc = (kind: string, name: string, spec: string): string =>
  `apiVersion: projectcalico.org/v3\nkind: ${kind}\nmetadata: { name: ${name} }\nspec: ${spec}\n---\n`;

const BASE = doc('BGPConfiguration', 'default', '{ asNumber: 64512, serviceClusterIPs: [{ cidr: 10.96.0.0/12 }] }')
  + doc('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64" } }')
  + doc('IPPool', 'pool4', '{ cidr: 10.65.0.0/16, blockSize: 26 }')
  + doc('IPPool', 'noexp', '{ cidr: 10.66.0.0/16, disableBGPExport: true }')
  + doc('IPPool', 'pool6', '{ cidr: "fd00:65::/48", blockSize: 122 }');

const AFF = 'apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: { name: n1-10-65-1-0-26 }\nspec: { node: n1, cidr: 10.65.1.0/26, state: confirmed }\n---\n';

const facts = (prefix: string, over: Partial<Parameters<typeof evaluate>[1]> = {}): Parameters<typeof evaluate>[1] => ({
  prefix: prefix.includes(':') ? prefix : p4(prefix), attrs: {}, local: false, ibgp: false, ...over,
});

t.test('export allow-list without any BGPFilter: pools, own block, services; nothing else', (t) => {
  const np = compileNodePolicy(load(BASE + AFF), 'n1');
  const r = peerRules(np, []);
  const out = (p: string, o: Partial<Parameters<typeof evaluate>[1]> = {}): [boolean, string] => {
    const d = evaluate(p.includes(':') ? r.export6 : r.export4, facts(p, o));
    return [d.accept, d.rule];
  };
  t.same(out('10.65.7.0/26'), [true, 'IPPool/pool4 10.65.0.0/16 (accept)'], 'a learned pool route is reflected');
  t.same(out('10.65.0.0/16'), [true, 'IPPool/pool4 10.65.0.0/16 (accept)'], 'the pool itself is inside the pool');
  t.same(out('10.65.1.0/26'), [true, 'calico_aggr: own block 10.65.1.0/26 (accept)']);
  t.same(out('10.65.1.5/32'), [false, 'calico_aggr: inside own block 10.65.1.0/26 (reject)'], 'nothing beneath our own block');
  t.same(out('10.66.1.0/26'), [false, 'IPPool/noexp 10.66.0.0/16: disableBGPExport (reject)']);
  t.same(out('10.96.0.0/12'), [true, 'service range 10.96.0.0/12 (accept)']);
  t.same(out('0.0.0.0/0'), [false, EXPORT_FALLBACK], 'no default route through a host');
  t.same(out('192.0.2.0/24'), [false, EXPORT_FALLBACK]);
  t.same(out('10.0.0.0/8'), [false, EXPORT_FALLBACK], 'a pool\'s supernet is not inside the pool');
  t.same(out('fd00:65::40/122'), [true, 'IPPool/pool6 fd00:65::/48 (accept)']);
  t.same(out('::/0'), [false, EXPORT_FALLBACK]);
  t.same(out('fd00:99::/64'), [false, EXPORT_FALLBACK]);
  // Felix's tunnel routes never go to iBGP peers, and eBPF local routes to nobody.
  t.same(out('10.65.9.0/26', { ibgp: true, ifname: () => 'vxlan.calico' }), [false, 'iBGP: Felix tunnel route via *.calico (reject)']);
  t.same(out('10.65.9.0/26', { ibgp: false, ifname: () => 'vxlan.calico' }), [true, 'IPPool/pool4 10.65.0.0/16 (accept)']);
  t.same(out('10.65.9.0/26', { ibgp: true, ifname: () => 'tunl0' }), [false, 'iBGP: Felix tunnel route via tunl0 (reject)']);
  t.same(out('10.65.9.0/26', { ifname: () => 'bpfout.cali' }), [false, 'reject_local_routes: via bpf*.cali (reject)']);
  // several rules test the interface; the route's interface is asked once per evaluation (the daemon's answer costs
  // a subnet search), whichever rule decides
  let asked = 0;
  t.same(out('10.65.9.0/26', { ibgp: true, ifname: () => (asked++, 'eth0') }), [true, 'IPPool/pool4 10.65.0.0/16 (accept)']);
  t.equal(asked, 1, 'asked once though several rules test it');
  asked = 0;
  t.same(out('192.0.2.0/24', { ifname: () => (asked++, 'eth0') }), [false, EXPORT_FALLBACK]);
  t.ok(asked <= 1, 'at most once on the way to the fallback');
  // import: Calico imports everything
  t.same(evaluate(r.import4, facts('0.0.0.0/0')), { accept: true, rule: IMPORT_FALLBACK });
  t.end();
});

t.test('a disabled pool is still exported (the template never reads disabled)', (t) => {
  const np = compileNodePolicy(load(BASE + doc('IPPool', 'off', '{ cidr: 10.70.0.0/16, disabled: true }')), 'n1');
  t.equal(evaluate(peerRules(np, []).export4, facts('10.70.0.0/26')).accept, true);
  t.end();
});

t.test('prefixAdvertisements add communities and go on; a route reflector accepts LB/external ranges', (t) => {
  const m = load(doc('BGPConfiguration', 'default', '{ asNumber: 64512, serviceLoadBalancerIPs: [{ cidr: 10.200.0.0/24 }], prefixAdvertisements: [{ cidr: 10.65.0.0/16, communities: ["65000:1", "65000:2:3"] }] }')
    + doc('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24, routeReflectorClusterID: 1.1.1.1 } }')
    + doc('IPPool', 'pool4', '{ cidr: 10.65.0.0/16 }'));
  const r = peerRules(compileNodePolicy(m, 'n1'), []);
  const d = evaluate(r.export4, facts('10.65.3.0/26', { attrs: { communities: [1] } }));
  t.equal(d.accept, true);
  t.same(d.attrs?.communities, [1, comm(65000, 1)]);
  t.same(d.attrs?.largeCommunities, [[65000, 2, 3]]);
  t.same(evaluate(r.export4, facts('10.200.0.7/32')).rule, 'service range 10.200.0.0/24 (accept)');
  t.end();
});

const FILTERS = doc('BGPFilter', 'f1', `{
  exportV4: [
    { action: Reject, cidr: 10.65.5.0/24, matchOperator: In, prefixLength: { min: 26, max: 28 } },
    { action: Accept, cidr: 192.0.2.0/24, matchOperator: Equal, operations: [{ addCommunity: { value: "65000:7" } }, { prependASPath: { prefix: [65010, 65011] } }] },
    { action: Accept, source: RemotePeers, cidr: 198.51.100.0/24, matchOperator: In },
    { action: Accept, interface: "eth*", cidr: 203.0.113.0/24, matchOperator: In },
    { action: Reject, peerType: iBGP, cidr: 10.65.6.0/24, matchOperator: In },
    { action: Accept, communities: { values: ["65000:100"] } },
    { action: Accept, asPathPrefix: [65100, 65101] },
    { action: Accept, priority: 512, operations: [{ setPriority: { value: 256 } }] } ],
  importV4: [
    { action: Reject, cidr: 0.0.0.0/0, matchOperator: Equal },
    { action: Accept, cidr: 10.0.0.0/8, matchOperator: NotIn, prefixLength: { max: 24 } },
    { action: Reject, cidr: 10.66.0.0/16, matchOperator: NotEqual } ],
  importV6: [ { action: Reject, cidr: "::/0", matchOperator: Equal }, { action: Reject, communities: { values: ["1:2:3"] } } ] }`)
  + doc('BGPFilter', 'f2', '{ exportV4: [ { action: Reject, cidr: 192.0.2.0/24, matchOperator: In } ], importV4: [ { action: Accept } ] }');

t.test('BGPFilter: every field and operator, first match wins, filters in the peer\'s order, then the allow-list', (t) => {
  const np = compileNodePolicy(load(BASE + AFF + FILTERS), 'n1');
  const r = peerRules(np, ['f1', 'missing', 'f2']);
  const ex = (p: string, o: Partial<Parameters<typeof evaluate>[1]> = {}) => evaluate(r.export4, facts(p, o));
  // prefixLength bounds the In match: /26–/28 inside 10.65.5.0/24
  t.equal(ex('10.65.5.64/26').rule, 'BGPFilter/f1 exportV4[0]');
  t.equal(ex('10.65.5.64/26').accept, false);
  t.equal(ex('10.65.5.0/24').rule, 'IPPool/pool4 10.65.0.0/16 (accept)', '/24 is shorter than min 26');
  t.equal(ex('10.65.5.16/29').rule, 'IPPool/pool4 10.65.0.0/16 (accept)', '/29 is longer than max 28');
  // Equal, with operations; f2's reject of the same prefix comes later and never runs
  const eq = ex('192.0.2.0/24', { attrs: { asPath: [{ type: 2, asns: [65200] }] } });
  t.same([eq.accept, eq.rule], [true, 'BGPFilter/f1 exportV4[1]']);
  t.same(eq.attrs?.communities, [comm(65000, 7)]);
  t.same(eq.attrs?.asPath, [{ type: 2, asns: [65010, 65011, 65200] }], 'prepended in the order listed');
  t.same([ex('192.0.2.0/25').accept, ex('192.0.2.0/25').rule], [false, 'BGPFilter/f2 exportV4[0]'], 'Equal is exact; f2 (second) rejects');
  // source RemotePeers: learned routes only
  t.equal(ex('198.51.100.0/24', { local: false }).rule, 'BGPFilter/f1 exportV4[2]');
  t.equal(ex('198.51.100.0/24', { local: true }).rule, EXPORT_FALLBACK);
  // interface pattern
  t.equal(ex('203.0.113.0/24', { ifname: () => 'eth1' }).rule, 'BGPFilter/f1 exportV4[3]');
  t.equal(ex('203.0.113.0/24', { ifname: () => 'ens3' }).rule, EXPORT_FALLBACK);
  t.equal(ex('203.0.113.0/24').rule, EXPORT_FALLBACK, 'no interface known: no match');
  // peerType
  t.equal(ex('10.65.6.0/26', { ibgp: true }).accept, false);
  t.equal(ex('10.65.6.0/26', { ibgp: false }).accept, true);
  // communities, AS path prefix, priority (local_pref = 2^31-1 - priority) with setPriority
  t.equal(ex('172.16.0.0/16', { attrs: { communities: [comm(65000, 100)] } }).rule, 'BGPFilter/f1 exportV4[5]');
  t.equal(ex('172.16.0.0/16', { attrs: { asPath: [{ type: 2, asns: [65100, 65101, 1] }] } }).rule, 'BGPFilter/f1 exportV4[6]');
  t.equal(ex('172.16.0.0/16', { attrs: { asPath: [{ type: 2, asns: [65100, 1, 65101] }] } }).rule, EXPORT_FALLBACK);
  const pr = ex('172.16.0.0/16', { attrs: { localPref: BIRD_INT_MAX - 512 } });
  t.same([pr.rule, pr.attrs?.localPref], ['BGPFilter/f1 exportV4[7]', BIRD_INT_MAX - 256]);
  // import: Equal 0/0, NotIn with a length bound, NotEqual; f2's accept-all then ends it
  const im = (p: string) => evaluate(r.import4, facts(p));
  t.same([im('0.0.0.0/0').accept, im('0.0.0.0/0').rule], [false, 'BGPFilter/f1 importV4[0]']);
  t.equal(im('192.0.2.0/24').rule, 'BGPFilter/f1 importV4[1]', 'outside 10/8: NotIn');
  t.equal(im('10.9.0.0/25').rule, 'BGPFilter/f1 importV4[1]', 'inside 10/8 but longer than /24: NotIn');
  t.same([im('10.9.0.0/16').accept, im('10.9.0.0/16').rule], [false, 'BGPFilter/f1 importV4[2]'], 'NotEqual 10.66/16');
  t.same([im('10.66.0.0/16').accept, im('10.66.0.0/16').rule], [true, 'BGPFilter/f2 importV4[0]']);
  t.same(evaluate(r.import6, facts('::/0')).rule, 'BGPFilter/f1 importV6[0]');
  t.same(evaluate(r.import6, facts('fd00:1::/64', { attrs: { largeCommunities: [[1, 2, 3]] } })).rule, 'BGPFilter/f1 importV6[1]');
  t.same(evaluate(r.import6, facts('fd00:1::/64')).rule, IMPORT_FALLBACK);
  t.end();
});

t.test('glob patterns are BIRD\'s: * and ? only, the rest literal', (t) => {
  t.ok(globToRegExp('eth*').test('eth0'));
  t.notOk(globToRegExp('eth*').test('veth0'));
  t.ok(globToRegExp('cali?').test('cali1'));
  t.notOk(globToRegExp('a.b').test('axb'));
  t.ok(globToRegExp('*.cali').test('bpfout.cali'));
  t.end();
});

t.test('an interface rule answers for the interface asked each time, as names alternate (its remembered answer is per name)', (t) => {
  const set = {
    rules: [{ name: 'cali', action: 'reject' as const, interface: 'cali*' }, { name: 'eth', action: 'accept' as const, interface: 'eth?' }],
    fallback: { action: 'accept' as const, name: 'fallback' },
  };
  const names = ['cali1', 'eth0', 'eth0', 'cali2', undefined, 'veth0', 'cali1', 'eth10', 'eth1'];
  const want = ['cali', 'eth', 'eth', 'cali', 'fallback', 'fallback', 'cali', 'fallback', 'eth'];
  t.same(names.map((n) => evaluate(set, facts('10.0.0.0/24', { ifname: () => n })).rule), want);
  t.end();
});

// ---------------------------------------------------------------- properties

const octet = fc.integer({ min: 0, max: 255 });
const prefix4 = fc.tuple(octet, octet, octet, octet, fc.integer({ min: 0, max: 32 })).map(([a, b, c, d, l]) => {
  const addr = (((a << 24) | (b << 16) | (c << 8) | d) >>> 0) & (l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0);
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}/${l}`;
});
const inside = (p: string, pool: string): boolean => {
  const [pa, pl] = [p4(p), Number(p.split('/')[1])];
  const [qa, ql] = [p4(pool), Number(pool.split('/')[1])];
  if (pl < ql) return false;
  const m = ql === 0 ? 0 : (0xffffffff << (32 - ql)) >>> 0;
  return ((Math.floor(pa / 64) & m) >>> 0) === ((Math.floor(qa / 64) & m) >>> 0);
};

t.test('property: without a BGPFilter, nothing outside an exportable pool (or service range) is ever exported', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(prefix4.filter((p) => Number(p.split('/')[1]) >= 8), fc.boolean()), { minLength: 0, maxLength: 4 }),
      fc.array(prefix4, { minLength: 1, maxLength: 30 }),
      fc.boolean(),
      (pools, routes, ibgp) => {
        const text = doc('BGPConfiguration', 'default', '{ asNumber: 64512 }') + doc('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24 } }')
          + pools.map(([c, noexp], i) => doc('IPPool', `p${i}`, `{ cidr: ${c}, blockSize: ${Math.max(Number(c.split('/')[1]), 26)}${noexp ? ', disableBGPExport: true' : ''} }`)).join('');
        const r = peerRules(compileNodePolicy(load(text), 'n1'), []);
        for (const route of routes) {
          const d = evaluate(r.export4, facts(route, { ibgp }));
          const allowed = pools.some(([c]) => inside(route, c)) && !pools.some(([c, noexp]) => noexp && inside(route, c));
          if (d.accept !== allowed) return false;
        }
        return true;
      },
    ),
    { numRuns: 200 },
  );
  t.pass('held');
  t.end();
});

t.test('property: the first matching rule decides; a rule list never accepts what its only rules reject', (t) => {
  fc.assert(
    fc.property(prefix4, prefix4, fc.constantFrom('Equal', 'NotEqual', 'In', 'NotIn') as fc.Arbitrary<'Equal' | 'NotEqual' | 'In' | 'NotIn'>, (route, cidr, op) => {
      const set: RuleSet = {
        rules: [{ name: 'r0', action: 'reject', cidr, operator: op }, { name: 'r1', action: 'accept' }],
        fallback: { action: 'reject', name: 'end' },
      };
      const d = evaluate(set, facts(route));
      const within = inside(route, cidr);
      const eq = within && route.split('/')[1] === cidr.split('/')[1];
      const m = op === 'Equal' ? eq : op === 'NotEqual' ? !eq : op === 'In' ? within : !within;
      return d.rule === (m ? 'r0' : 'r1') && d.accept === !m;
    }),
    { numRuns: 500 },
  );
  t.pass('held');
  t.end();
});

// ---------------------------------------------------------------- in the core

t.test('core: no transit between peers; pool routes reflected; filters run on import; trace names the rule', (t) => {
  const np = compileNodePolicy(load(BASE + AFF + doc('BGPFilter', 'nodefault', '{ importV4: [{ action: Reject, cidr: 0.0.0.0/0, matchOperator: Equal }] }')), 'n1');
  const rules: PeerRules = peerRules(np, ['nodefault']);
  const core = new RibCore({ localAs: 64512, routerId: 0x0a000001 });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '10.0.0.1', localAddress6: 'fd00::1', rules });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '10.0.0.1', localAddress6: 'fd00::1', rules });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  drain(core, a);
  drain(core, b);
  const res = core.applyUpdate(a, announce(['0.0.0.0/0', '192.0.2.128/25', '10.65.9.0/26', '10.65.1.4/30'], { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1' }));
  t.equal(res.rejected, 1, 'the default route is refused on import');
  core.applyUpdate(a, announce6(['::/0', 'fd00:65::/122', 'fd00:99::/64'], { origin: 0, asPath: [{ type: 2, asns: [65001] }] }, ['fd00::a']));
  const sent = drain(core, b).flatMap((x) => (x.kind === 'announce' ? x.prefixes.map(show) : [])).sort();
  t.same(sent, ['10.65.9.0/26', 'fd00:65::/122'], 'only pool routes go on; nothing beneath our own block');
  t.same(core.policyRejections(a), { import: 1, export: 0 });
  t.ok(core.policyRejections(b).export >= 3, 'rejected exports are counted');
  const tr = core.policyTrace(p4('0.0.0.0/0'));
  t.same(tr.imported, [{ peer: '192.0.2.1', accept: false, rule: 'BGPFilter/nodefault importV4[0]' }]);
  const tr2 = core.policyTrace(p4('192.0.2.128/25'));
  t.same(tr2.exported, [
    { peer: '192.0.2.1', accept: false, rule: 'learned from this peer' },
    { peer: '192.0.2.2', accept: false, rule: EXPORT_FALLBACK },
  ]);
  // an announcement that is accepted again forgets the refusal; a withdrawal too
  core.applyUpdate(a, announce(['0.0.0.0/0'], { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1' }));
  core.updatePeer(a, { address: '192.0.2.1', asn: 65001, localAddress: '10.0.0.1', rules: peerRules(np, []) });
  core.applyUpdate(a, announce(['0.0.0.0/0'], { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1' }));
  t.same(core.policyTrace(p4('0.0.0.0/0')).imported, [{ peer: '192.0.2.1', accept: true, rule: IMPORT_FALLBACK }]);
  t.same(drain(core, b).filter((x) => x.kind === 'announce'), [], 'accepted now, still not exported to the other peer');
  t.end();
});

t.test('core: export operations apply before our AS is prepended (BIRD runs the filter first)', (t) => {
  const np = compileNodePolicy(load(BASE + doc('BGPFilter', 'pre', '{ exportV4: [{ action: Accept, cidr: 10.65.0.0/16, matchOperator: In, operations: [{ prependASPath: { prefix: [65099] } }, { addCommunity: { value: "65000:9" } }] }] }')), 'n1');
  const core = new RibCore({ localAs: 64512, routerId: 0x0a000001 });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '10.0.0.1', rules: peerRules(np, ['pre']) });
  core.peerUp(b, terms(2, false));
  drain(core, b);
  core.originate(p4('10.65.2.0/26'), {});
  core.originate(p4('172.16.0.0/16'), {});
  const out = drain(core, b).filter((x) => x.kind === 'announce');
  t.equal(out.length, 1);
  const o = out[0] as Extract<typeof out[number], { kind: 'announce' }>;
  t.same(o.prefixes.map(show), ['10.65.2.0/26']);
  t.same(o.attrs.attrs.asPath, [{ type: 2, asns: [64512, 65099] }]);
  t.same(o.attrs.attrs.communities, [comm(65000, 9)]);
  t.end();
});

// ---------------------------------------------------------------- the shipped examples

t.test('config/examples: as-per-rack rejects the ToR\'s default route; no example lets a non-pool route through', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { derivePeers } = await import('../../src/controller/index.js');
  const ex = (name: string): Model => load(readFileSync(join(`${import.meta.dirname}/..`, '..', 'config', 'examples', name, 'resources.yaml'), 'utf8'));

  const rack = ex('as-per-rack');
  const peers = derivePeers(rack, 'r1-host-1');
  const tor = peers.find((p) => p.address === '192.0.2.126');
  t.same(tor?.filters, ['no-default'], 'the ToR peering names the filter');
  const r = peerRules(compileNodePolicy(rack, 'r1-host-1'), tor?.filters ?? []);
  t.same(evaluate(r.import4, facts('0.0.0.0/0')), { accept: false, rule: 'BGPFilter/no-default importV4[0]' }, 'the default route is rejected');
  t.equal(evaluate(r.import4, facts('10.65.16.0/26')).accept, true, 'the other rack\'s pool routes come in');
  t.equal(evaluate(r.export4, facts('10.65.16.0/26')).accept, true, 'pool routes go out (the other rack\'s pool is a pool too)');
  t.equal(evaluate(r.export4, facts('0.0.0.0/0')).accept, false, 'a default learned elsewhere would not be passed on');
  const adv = evaluate(r.export4, facts('10.65.0.0/26', { local: true }));
  t.same(adv.attrs?.communities, [comm(65101, 1)], 'prefixAdvertisements: the rack community is added');

  for (const name of ['k8s-openstack-mesh', 'route-reflectors']) {
    const m = ex(name);
    for (const node of m.ids('Node')) {
      for (const p of derivePeers(m, node)) {
        const rr = peerRules(compileNodePolicy(m, node), p.filters);
        for (const route of ['0.0.0.0/0', '192.0.2.0/24', '172.16.0.0/12']) {
          t.equal(evaluate(rr.export4, facts(route, { ibgp: true })).accept, false, `${name}: ${node} does not pass ${route} to ${p.address}`);
        }
      }
    }
  }
});

t.test('skeinctl renders the deciding rules and a peer\'s filters', async (t) => {
  const { renderRoutes, renderPeers } = await import('../../src/ctl/render.js');
  const out = renderRoutes({ routes: [], policy: { imported: [{ peer: '10.1.1.1', accept: false, rule: 'BGPFilter/edge importV4[0]' }], exported: [] } }, '0.0.0.0/0');
  t.match(out, /No route for 0\.0\.0\.0\/0/);
  t.match(out, /from\s+10\.1\.1\.1\s+refused\s+BGPFilter\/edge importV4\[0\]/);
  const peers = renderPeers({ peers: [{ address: '10.1.1.1', port: 179, asn: 65101, localAsn: 64512, type: 'node specific', state: 'Established', since: new Date().toISOString(), info: '', families: ['ipv4-unicast'], prefixes: { received: 7, accepted: 4, advertised: 2 }, filters: ['edge', 'other'], policyRejected: { import: 3, export: 5 } }] }, new Date());
  t.match(peers, /Filters:\s+edge, other/);
  t.match(peers, /Policy refused:\s+import 3, export 5/);
});

t.test('daemon wiring: rules per peer, change detection, a route\'s interface, a missing filter reported once', async (t) => {
  const { PolicyWiring } = await import('../../src/daemon/policy.js');
  const warnings: string[] = [];
  const w = new PolicyWiring((msg, f) => warnings.push(`${msg} ${JSON.stringify(f)}`));
  t.equal(w.rulesFor('192.0.2.1', []), undefined, 'nothing before the first model');
  w.update(load(BASE + FILTERS), 'n1');
  const r1 = w.rulesFor('192.0.2.1', ['f1', 'nope']);
  w.rulesFor('192.0.2.1', ['f1', 'nope']);
  t.equal(warnings.filter((x) => x.includes('nope')).length, 1, 'the missing filter is reported once');
  t.equal(w.changed('192.0.2.1', r1), true, 'first time: changed');
  t.equal(w.changed('192.0.2.1', w.rulesFor('192.0.2.1', ['f1', 'nope'])), false, 'same rules: unchanged');
  t.equal(w.changed('192.0.2.1', w.rulesFor('192.0.2.1', ['f2'])), true, 'other filters: changed');
  w.setLocalInterfaces([{ prefix: '10.65.1.5/32', interface: 'cali123' }]);
  t.equal(w.routeInterface(p4('10.65.1.5/32'), [], true), 'cali123', 'a local route: its workload device');
  t.equal(w.routeInterface(p4('10.65.1.0/26'), [], true), undefined, 'a block (blackhole): none');
  t.equal(w.routeInterface(p4('10.9.0.0/16'), ['127.0.0.1'], false), 'lo', 'a learned route: the interface whose subnet holds the next hop');
  t.equal(w.routeInterface(p4('10.9.0.0/16'), ['not-an-address'], false), undefined);
  // answers are kept per next hop: asking again (another prefix, same next hop) gives the same, a miss stays a miss
  t.equal(w.routeInterface(p4('10.8.0.0/16'), ['127.0.0.1'], false), 'lo', 'the same next hop again: the same interface');
  t.equal(w.routeInterface(p4('10.8.0.0/16'), ['not-an-address'], false), undefined, 'an unknown one again: none');
});

t.test('core: a peer without route refresh keeps what it sent; changed import rules apply from it (reimport)', (t) => {
  const m = load(BASE + FILTERS + doc('BGPFilter', 'tag', '{ importV4: [{ action: Accept, cidr: 10.65.0.0/16, matchOperator: In, operations: [{ addCommunity: { value: "65000:5" } }] }] }'));
  const np = compileNodePolicy(m, 'n1');
  const core = new RibCore({ localAs: 64512, routerId: 1 });
  const cfg = (filters: string[]) => ({ address: '192.0.2.1', asn: 65001, localAddress: '10.0.0.1', rules: peerRules(np, filters) });
  const a = core.addPeer(cfg(['f1']));
  core.peerUp(a, terms(1, false));
  core.keepReceived(a, true);
  t.equal(core.keepsReceived(a), true);
  const attrs = { origin: 0 as const, asPath: [{ type: 2 as const, asns: [65001] }], nextHop: '192.0.2.1' };
  core.applyUpdate(a, announce(['0.0.0.0/0', '10.65.7.0/26', '10.65.8.0/26'], attrs));
  core.applyUpdate(a, withdraw(['10.65.8.0/26']));
  const held = (): string[] => [...core.prefixes()].map(show).sort();
  t.same(held(), ['10.65.7.0/26'], 'f1 refuses the default; the withdrawn route is gone');
  core.updatePeer(a, cfg(['tag']));
  t.equal(core.reimport(a), 2, 'both kept routes accepted under the new rules');
  t.same(held(), ['0.0.0.0/0', '10.65.7.0/26'], 'the default is in now; the withdrawn route did not come back');
  t.same(core.explain(p4('10.65.7.0/26'))[0]?.path.attrs.attrs.communities, [comm(65000, 5)], 'operations ran on what was received');
  core.updatePeer(a, cfg(['f1']));
  core.reimport(a);
  t.same(held(), ['10.65.7.0/26'], 'and out again');
  t.same(core.explain(p4('10.65.7.0/26'))[0]?.path.attrs.attrs.communities, undefined, 'the community of the old rules is gone');
  core.peerDown(a);
  t.equal(core.keepsReceived(a), false, 'forgotten with the session');
  t.equal(core.attrs.size, 0, 'every attribute set released');
  t.end();
});

t.test('evaluate: lists run in turn, more than its cache holds, each keep their own decisions; an appended rule counts', async (t) => {
  const facts = (prefix: number) => ({ prefix, attrs: {}, local: false, ibgp: true });
  const inside = p4('10.0.0.0/24');
  const outside = p4('192.168.0.0/24');
  const lists: RuleSet[] = Array.from({ length: 6 }, (_, i) => ({
    rules: [{ name: `list${i} in`, action: i % 2 === 0 ? 'accept' : 'reject', cidr: '10.0.0.0/8', operator: 'In' }],
    fallback: { action: i % 2 === 0 ? 'reject' : 'accept', name: `list${i} fallback` },
  }));
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < lists.length; i++) {
      const l = lists[i]!;
      t.same(evaluate(l, facts(inside)), { accept: i % 2 === 0, rule: `list${i} in` });
      t.same(evaluate(l, facts(outside)), { accept: i % 2 !== 0, rule: `list${i} fallback` });
    }
  }
  const rules: RuleSet['rules'][number][] = [{ name: 'first', action: 'modify', cidr: '10.0.0.0/8', operator: 'In', operations: [{ addCommunity: [1, 2] }] }];
  const grown: RuleSet = { rules, fallback: { action: 'accept', name: 'fb' } };
  t.same(evaluate(grown, facts(inside)), { accept: true, rule: 'fb', attrs: { communities: [comm(1, 2)] } }, 'a modify rule, then the fallback');
  rules.push({ name: 'second', action: 'reject' });
  t.same(evaluate(grown, facts(inside)), { accept: false, rule: 'second' }, 'the rule appended after the first evaluation decides');
  const d1 = evaluate(lists[0]!, facts(inside));
  const d2 = evaluate(lists[0]!, facts(inside));
  t.ok(Object.isFrozen(d1) && d1 === d2, 'an attribute-less decision is one shared frozen object');
});

t.test('the route interface is asked once per UPDATE and next-hop set, and asked again in the next UPDATE', async (t) => {
  const ifOf = new Map<string, string>([['192.0.2.1', 'eth0'], ['192.0.2.2', 'tunl0']]);
  const asked: string[] = [];
  const core = new RibCore({
    localAs: 64512, routerId: 0x0a000001,
    routeInterface: (_p, hops, local) => {
      if (local) return undefined;
      asked.push(hops[0]!);
      return ifOf.get(hops[0]!);
    },
  });
  const rules = {
    import4: { rules: [], fallback: { action: 'accept' as const, name: 'in' } },
    import6: { rules: [], fallback: { action: 'accept' as const, name: 'in' } },
    export4: { rules: [{ name: 'no tunnel', action: 'reject' as const, interface: 'tunl0' }], fallback: { action: 'accept' as const, name: 'out' } },
    export6: { rules: [], fallback: { action: 'accept' as const, name: 'out' } },
  };
  const a = core.addPeer({ address: '192.0.2.10', asn: 65001, localAddress: '192.0.2.100' });
  const b = core.addPeer({ address: '192.0.2.20', asn: 65002, localAddress: '192.0.2.100', rules });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  drain(core, b);
  const attrs = (nh: string): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: nh });
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24'], attrs('192.0.2.1')));
  core.applyUpdate(a, announce(['10.2.0.0/24', '10.2.1.0/24'], attrs('192.0.2.2')));
  t.same(asked, ['192.0.2.1', '192.0.2.2'], 'one question per UPDATE, not per prefix');
  const out = (): string[] => drain(core, b).filter((x) => x.kind === 'announce').flatMap((x) => x.prefixes.map(show)).sort();
  t.same(out(), ['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24'], 'the tunnel routes are not exported');
  // the host's interfaces change: the next UPDATE with the very same attribute set sees it
  ifOf.set('192.0.2.2', 'eth1');
  core.applyUpdate(a, announce(['10.2.2.0/24'], attrs('192.0.2.2')));
  t.same(asked, ['192.0.2.1', '192.0.2.2', '192.0.2.2'], 'asked again in the next UPDATE');
  t.same(out(), ['10.2.2.0/24'], 'and decided by the new answer');
});
