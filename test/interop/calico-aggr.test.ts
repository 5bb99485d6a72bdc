// calico_aggr's elevated-priority escape (issue 12/13). confd's bird_aggr.cfg.template, per block affine to this
// node: accept the block; accept a route beneath it when `krt_metric < NormalRoutePriority`; reject everything else
// beneath it. buildExportFilter (confd/pkg/backends/calico/bgp_processor.go) sets krt_metric = 2^31-1 - LOCAL_PREF for
// a learned route and LOCAL_PREF = 2^31-1 - krt_metric for a local one, so the escape is "LOCAL_PREF above 2^31-1
// minus the normal priority": a live migration's target announcing a VM inside its own block, or a reflector passing
// such a route on. Expected outcomes come from the template, not from skein's output; what must NOT go out (an
// ordinary /32 under the own block, an eBGP route with BIRD's LOCAL_PREF 100) is asserted beside what must.
import t from 'tap';
import { RibCore, evaluate } from '../../bgp/index.js';
import { compileNodePolicy, peerRules, BIRD_INT_MAX } from '../../src/controller/policy.js';
import { announce, drain, p4, show, terms } from '../helpers/rib.js';
import { loadModel as load } from '../helpers/model.js';

const NORMAL_LP = BIRD_INT_MAX - 1024;
const ELEVATED_LP = BIRD_INT_MAX - 512;

const doc = (kind: string, name: string, spec: string): string =>
  `apiVersion: projectcalico.org/v3\nkind: ${kind}\nmetadata: { name: ${name} }\nspec: ${spec}\n---\n`;
const base = (bgpExtra = ''): string => doc('BGPConfiguration', 'default', `{ asNumber: 64512${bgpExtra} }`)
  + doc('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64" } }')
  + doc('IPPool', 'pool4', '{ cidr: 10.65.0.0/16, blockSize: 26 }')
  + doc('IPPool', 'pool6', '{ cidr: "fd00:65::/48", blockSize: 122 }')
  + doc('BlockAffinity', 'n1-10-65-1-0-26', '{ node: n1, cidr: 10.65.1.0/26, state: confirmed }')
  + doc('BlockAffinity', 'n1-fd00-65--40-122', '{ node: n1, cidr: "fd00:65::40/122", state: confirmed }');

t.test('the rule: beneath an own block only a route above the normal priority goes out', (t) => {
  const r = peerRules(compileNodePolicy(load(base()), 'n1'), []);
  const out = (prefix: string, localPref: number | undefined, local: boolean, ibgp = true): [boolean, string] => {
    const d = evaluate(prefix.includes(':') ? r.export6 : r.export4, {
      prefix: prefix.includes(':') ? prefix : p4(prefix), attrs: localPref === undefined ? {} : { localPref }, local, ibgp,
    });
    return [d.accept, d.rule];
  };
  const escape = 'calico_aggr: inside own block 10.65.1.0/26 at elevated priority, krt_metric < 1024 (accept)';
  const inside = 'calico_aggr: inside own block 10.65.1.0/26 (reject)';
  t.same(out('10.65.1.5/32', ELEVATED_LP, true), [true, escape], 'our own /32 at the elevated priority (krt_metric 512) escapes');
  t.same(out('10.65.1.5/32', ELEVATED_LP, true, false), [true, escape], 'towards an eBGP peer too (the filter runs before LOCAL_PREF is dropped)');
  t.same(out('10.65.1.5/32', NORMAL_LP, true), [false, inside], 'NOT our own /32 at the normal priority (krt_metric 1024: not < 1024)');
  t.same(out('10.65.1.5/32', NORMAL_LP + 1, true), [true, escape], 'krt_metric 1023 is below the normal priority');
  t.same(out('10.65.1.5/32', undefined, true), [false, inside], 'NOT a route without LOCAL_PREF');
  t.same(out('10.65.1.8/29', ELEVATED_LP, false), [true, escape], 'a learned route at the elevated priority is passed on (a reflector)');
  t.same(out('10.65.1.8/29', NORMAL_LP, false), [false, inside], 'NOT a learned one at the normal priority');
  t.same(out('10.65.1.8/29', 100, false), [false, inside], 'NOT an eBGP route (BIRD attaches LOCAL_PREF 100: krt_metric 2^31-1-100)');
  t.same(out('10.65.1.0/26', NORMAL_LP, true), [true, 'calico_aggr: own block 10.65.1.0/26 (accept)'], 'the block itself as before');
  t.same(out('10.65.2.5/32', NORMAL_LP, true), [true, 'IPPool/pool4 10.65.0.0/16 (accept)'], 'outside the own block the pool rule decides, whatever the priority');
  t.same(out('fd00:65::45/128', ELEVATED_LP, true), [true, 'calico_aggr: inside own block fd00:65::40/122 at elevated priority, krt_metric < 1024 (accept)'], 'IPv6 (bird6_aggr) alike');
  t.same(out('fd00:65::45/128', NORMAL_LP, true), [false, 'calico_aggr: inside own block fd00:65::40/122 (reject)'], 'NOT an ordinary /128');

  // The normal priority is the BGPConfiguration's (getNormalRoutePriority), per family.
  const tuned = peerRules(compileNodePolicy(load(base(', ipv4NormalRoutePriority: 600')), 'n1'), []);
  const d = (lp: number): boolean => evaluate(tuned.export4, { prefix: p4('10.65.1.5/32'), attrs: { localPref: lp }, local: true, ibgp: true }).accept;
  t.equal(d(ELEVATED_LP), true, 'normal 600: krt_metric 512 escapes');
  t.equal(d(BIRD_INT_MAX - 600), false, 'NOT krt_metric 600');
  t.equal(d(BIRD_INT_MAX - 1000), false, 'NOT krt_metric 1000 (below the default 1024, not below this normal priority)');
  t.equal(evaluate(tuned.export6, { prefix: 'fd00:65::45/128', attrs: { localPref: BIRD_INT_MAX - 1000 }, local: true, ibgp: true }).accept, true, 'IPv6 keeps its own normal priority (1024)');
  t.end();
});

t.test('in the core: a mesh peer and a reflector client receive the elevated /32, never the ordinary one', (t) => {
  const rules = peerRules(compileNodePolicy(load(base()), 'n1'), []);
  const core = new RibCore({ localAs: 64512, routerId: 0x0a000001 });
  const mesh = core.addPeer({ address: '10.0.0.2', asn: 64512, localAddress: '10.0.0.1', rules });
  const client = core.addPeer({ address: '10.0.0.3', asn: 64512, localAddress: '10.0.0.1', rules, routeReflectorClient: true });
  const tor = core.addPeer({ address: '192.0.2.1', asn: 65000, localAddress: '10.0.0.1', rules });
  core.peerUp(mesh, terms(1, true));
  core.peerUp(client, terms(2, true));
  core.peerUp(tor, terms(3, false));
  for (const p of [mesh, client, tor]) drain(core, p);
  const sent = (id: number): string[] => drain(core, id).flatMap((x) => (x.kind === 'announce' ? x.prefixes.map(show) : [])).sort();
  const gone = (id: number): string[] => drain(core, id).flatMap((x) => (x.kind === 'withdraw' ? x.prefixes.map(show) : [])).sort();

  core.originate(p4('10.65.1.0/26'), { origin: 0, localPref: NORMAL_LP });
  core.originate(p4('10.65.1.5/32'), { origin: 0, localPref: NORMAL_LP });
  core.originate(p4('10.65.1.9/32'), { origin: 0, localPref: ELEVATED_LP });
  for (const p of [mesh, client, tor]) t.same(sent(p), ['10.65.1.0/26', '10.65.1.9/32'], `peer ${p}: the block and the elevated /32; NOT the ordinary /32`);

  // A route beneath our block learned from the mesh peer (reflected only to the client): elevated passes, normal not.
  core.applyUpdate(mesh, announce(['10.65.1.16/28'], { origin: 0, nextHop: '10.0.0.2', localPref: ELEVATED_LP }));
  core.applyUpdate(mesh, announce(['10.65.1.32/28'], { origin: 0, nextHop: '10.0.0.2', localPref: NORMAL_LP }));
  t.same(sent(client), ['10.65.1.16/28'], 'the reflector passes on the elevated learned route, NOT the normal one');
  t.same(sent(mesh), [], 'nothing back to where it came from');

  // The migration settles: the /32 drops to the normal priority, and calico_aggr takes it back.
  core.originate(p4('10.65.1.9/32'), { origin: 0, localPref: NORMAL_LP });
  for (const p of [mesh, client, tor]) t.same(gone(p), ['10.65.1.9/32'], `peer ${p}: withdrawn once it is an ordinary /32 again`);
  t.end();
});
