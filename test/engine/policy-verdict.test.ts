// The import verdict kept with each route: an accepted path carries the rule that accepted it (Path.rule, decided
// when it came in, not re-evaluated when asked), and a refused route is kept per peer with the rule that refused it
// (bounded by CoreConfig.keepRefused), never in the Loc-RIB nor exported.
import t from 'tap';
import { RibCore, type PeerRules, type RuleSet } from '../../bgp/index.js';
import { announce, drain, p4, show, terms, withdraw } from '../helpers/rib.js';

const set = (rules: RuleSet['rules'], fallback: 'accept' | 'reject' = 'accept'): RuleSet => ({ rules, fallback: { action: fallback, name: `fallback ${fallback}` } });
const ALL = set([]);
const rulesWith = (import4: RuleSet): PeerRules => ({ import4, import6: ALL, export4: ALL, export6: ALL });
const NO_DEFAULT = rulesWith(set([
  { name: 'no default', action: 'reject', cidr: '0.0.0.0/0', operator: 'Equal' },
  { name: 'pool', action: 'accept', cidr: '10.65.0.0/16', operator: 'In' },
]));
const ATTRS = { origin: 0 as const, asPath: [{ type: 2 as const, asns: [65001] }], nextHop: '192.0.2.1' };

function setup(keepRefused?: number): { core: RibCore; a: number; b: number } {
  const core = new RibCore({ localAs: 64512, routerId: 1, ...(keepRefused !== undefined ? { keepRefused } : {}) });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100', rules: NO_DEFAULT });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65002, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  drain(core, a);
  drain(core, b);
  return { core, a, b };
}

t.test('an accepted path carries the rule that accepted it, as decided on import', (t) => {
  const { core, a, b } = setup();
  core.applyUpdate(a, announce(['10.65.1.0/26', '192.0.2.128/25'], ATTRS));
  const pool = core.route(p4('10.65.1.0/26'));
  const other = core.route(p4('192.0.2.128/25'));
  t.equal(core.ruleName(pool!.best.rule), 'pool');
  t.equal(core.ruleName(other!.best.rule), 'fallback accept');
  t.same(core.policyTrace(p4('10.65.1.0/26')).imported, [{ peer: '192.0.2.1', accept: true, rule: 'pool' }]);
  // The rules change; until the routes are imported again the trace says what decided them, not the new rules.
  core.updatePeer(a, { address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100', rules: rulesWith(set([{ name: 'renamed pool', action: 'accept', cidr: '10.65.0.0/16', operator: 'In' }])) });
  t.same(core.policyTrace(p4('10.65.1.0/26')).imported, [{ peer: '192.0.2.1', accept: true, rule: 'pool' }], 'not re-evaluated under rules that did not decide it');
  drain(core, b);
  // The same route again (a route refresh): same attributes, new verdict recorded, nothing sent again.
  core.applyUpdate(a, announce(['10.65.1.0/26'], ATTRS));
  t.same(core.policyTrace(p4('10.65.1.0/26')).imported, [{ peer: '192.0.2.1', accept: true, rule: 'renamed pool' }]);
  t.same(drain(core, b), [], 'a new verdict with the same attributes is no change on the wire');
  // a peer without rule lists
  core.applyUpdate(b, announce(['10.65.2.0/26'], { ...ATTRS, asPath: [{ type: 2, asns: [65002] }], nextHop: '192.0.2.2' }));
  t.same(core.policyTrace(p4('10.65.2.0/26')).imported, [{ peer: '192.0.2.2', accept: true, rule: 'no policy' }]);
  t.end();
});

t.test('a refused route is kept with its rule, listed, and never in the Loc-RIB or exported', (t) => {
  const { core, a, b } = setup();
  const before = core.attrs.size;
  const res = core.applyUpdate(a, announce(['0.0.0.0/0', '10.65.1.0/26'], ATTRS));
  t.equal(res.rejected, 1);
  t.equal(core.route(p4('0.0.0.0/0')), null, 'not in the Loc-RIB');
  t.notOk(drain(core, b).some((x) => x.kind === 'announce' && x.prefixes.some((p) => show(p) === '0.0.0.0/0')), 'not exported');
  t.equal(core.drainBestChanges().filter((c) => show(c.prefix) === '0.0.0.0/0').length, 0, 'nothing for the FIB');
  const kept = core.refusedRoutes(a, p4('0.0.0.0/0'));
  t.equal(kept.length, 1);
  t.equal(kept[0]!.rule, 'no default');
  t.equal(kept[0]!.attrs.attrs.nextHop, '192.0.2.1', 'with the attributes as received');
  t.same([...core.refusedPrefixes(a)].map(show), ['0.0.0.0/0']);
  t.same(core.refusedStats(a), { kept: 1, notKept: 0 });
  t.same(core.peerStats(a).received, 1, 'Adj-RIB-In (post-policy) holds only the accepted route');
  t.same(core.policyTrace(p4('0.0.0.0/0')).imported, [{ peer: '192.0.2.1', accept: false, rule: 'no default' }]);
  // withdrawn: forgotten
  core.applyUpdate(a, withdraw(['0.0.0.0/0']));
  t.same(core.refusedRoutes(a, p4('0.0.0.0/0')), []);
  t.same(core.refusedStats(a), { kept: 0, notKept: 0 });
  // refused again, then accepted after a rule change: forgotten as refused, now in the Loc-RIB
  core.applyUpdate(a, announce(['0.0.0.0/0'], ATTRS));
  t.equal(core.refusedStats(a).kept, 1);
  core.updatePeer(a, { address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100', rules: rulesWith(ALL) });
  core.applyUpdate(a, announce(['0.0.0.0/0'], ATTRS));
  t.equal(core.refusedStats(a).kept, 0);
  t.ok(core.route(p4('0.0.0.0/0')) !== null);
  // session down: everything kept is given back (no attribute set leaks)
  core.updatePeer(a, { address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100', rules: NO_DEFAULT });
  core.applyUpdate(a, announce(['0.0.0.0/0'], { ...ATTRS, med: 7 }));
  t.equal(core.refusedStats(a).kept, 1);
  core.peerDown(a);
  t.same(core.refusedStats(a), { kept: 0, notKept: 0 });
  t.equal(core.attrs.size, before, 'every reference released');
  t.end();
});

t.test('refused routes kept per peer are bounded; past the bound they are only counted', (t) => {
  const { core, a } = setup(2);
  const rejectAll = rulesWith(set([], 'reject'));
  core.updatePeer(a, { address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100', rules: rejectAll });
  core.applyUpdate(a, announce(['10.1.0.0/24', '10.2.0.0/24', '10.3.0.0/24'], ATTRS));
  t.same(core.refusedStats(a), { kept: 2, notKept: 1 });
  t.equal([...core.refusedPrefixes(a)].length, 2);
  // the same route again replaces what is kept, it does not count as a new one
  core.applyUpdate(a, announce(['10.1.0.0/24'], { ...ATTRS, med: 5 }));
  t.same(core.refusedStats(a), { kept: 2, notKept: 1 });
  t.equal(core.refusedRoutes(a, p4('10.1.0.0/24'))[0]!.attrs.attrs.med, 5);
  // keepRefused 0: nothing kept
  const z = setup(0);
  z.core.applyUpdate(z.a, announce(['0.0.0.0/0'], ATTRS));
  t.same(z.core.refusedStats(z.a), { kept: 0, notKept: 1 });
  t.same(z.core.policyTrace(p4('0.0.0.0/0')).imported, [], 'not kept: no verdict to show');
  t.end();
});
