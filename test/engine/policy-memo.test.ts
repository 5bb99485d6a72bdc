// The decision memo of the rule engine (bgp/rib/policy.ts DecisionMemo, used through FactsCell.decide in
// verdicts.ts): over any rule list and any sequence of learned IPv4 routes it answers what evaluate() answers —
// in particular two prefixes of one UPDATE that some CIDR rule (or prefix-length bound) tells apart never share a
// decision — and through a RibCore an import list that refuses part of an UPDATE refuses exactly that part.
import t from 'tap';
import fc from 'fast-check';
import { DecisionMemo, evaluate, type Rule, type RuleSet } from '../../bgp/rib/policy.js';
import type { PathAttributes } from '../../bgp/index.js';
import { RibCore } from '../../bgp/index.js';
import { announce, p4, terms } from '../helpers/rib.js';

const CIDRS = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.128/25', '10.1.2.3/32', '0.0.0.0/0', '192.168.0.0/16', 'fd00::/8'];

/** x in a quarter of the rules (so that most rules match and the CIDRs decide) */
const sometimes = <T>(x: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: x });

const rule: fc.Arbitrary<Rule> = fc
  .record({
    action: fc.constantFrom('accept' as const, 'reject' as const, 'modify' as const),
    cidr: fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 4, arbitrary: fc.constantFrom(...CIDRS) }),
    operator: fc.constantFrom('Equal' as const, 'NotEqual' as const, 'In' as const, 'NotIn' as const),
    minLength: sometimes(fc.integer({ min: 0, max: 32 })),
    maxLength: sometimes(fc.integer({ min: 0, max: 32 })),
    peerType: sometimes(fc.constantFrom('iBGP' as const, 'eBGP' as const)),
    community: sometimes(fc.constantFrom([65000, 1] as const, [65000, 2] as const)),
    iface: sometimes(fc.constantFrom('eth*', 'tunl?')),
    setLocalPref: sometimes(fc.integer({ min: 0, max: 300 })),
  })
  .map((r) => {
    const out: { -readonly [K in keyof Rule]: Rule[K] } = { name: `r-${JSON.stringify(r)}`, action: r.action };
    if (r.cidr !== undefined) {
      out.cidr = r.cidr;
      out.operator = r.operator;
      if (r.minLength !== undefined) out.minLength = r.minLength;
      if (r.maxLength !== undefined) out.maxLength = r.maxLength;
    }
    if (r.peerType !== undefined) out.peerType = r.peerType;
    if (r.community !== undefined) out.community = r.community;
    if (r.iface !== undefined) out.interface = r.iface;
    if (r.setLocalPref !== undefined) out.operations = [{ setLocalPref: r.setLocalPref }];
    return out as Rule;
  });

const ruleSet: fc.Arbitrary<RuleSet> = fc.record({
  rules: fc.array(rule, { maxLength: 6 }),
  fallback: fc.record({ action: fc.constantFrom('accept' as const, 'reject' as const), name: fc.constant('fallback') }),
});

// prefixes near the CIDRs' edges, of several lengths
const prefix = fc
  .tuple(fc.constantFrom(0x0a010203, 0x0a010204, 0x0a010280, 0x0a0102ff, 0x0a010300, 0x0a020000, 0x0b000000, 0xc0a80001), fc.constantFrom(8, 16, 24, 25, 30, 32))
  .map(([a, l]) => ((a & (~0 << (32 - l))) >>> 0) * 64 + l);

const ATTRS: PathAttributes[] = [{ communities: [(65000 << 16) | 1] }, { communities: [(65000 << 16) | 2], localPref: 50 }];
const HOPS: (readonly string[])[] = [['192.0.2.1'], ['192.0.2.2']];
const IFNAME: Record<string, string> = { '192.0.2.1': 'eth0', '192.0.2.2': 'tunl0' };

t.test('DecisionMemo answers as evaluate() for every route of every sequence (fast-check)', async (t) => {
  // mostly the same facts but the prefix, as the routes of one UPDATE
  const rare = fc.constantFrom(0, 0, 0, 0, 1);
  const route = fc.record({ prefix, attrs: rare, hops: rare, ibgp: rare.map((x) => x === 1), forget: rare.map((x) => x === 1) });
  fc.assert(
    fc.property(fc.array(ruleSet, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(route, fc.nat()), { maxLength: 40 }), (sets, routes) => {
      const memo = new DecisionMemo();
      for (const [r, which] of routes) {
        const set = sets[which % sets.length] as RuleSet;
        const hops = HOPS[r.hops] as readonly string[];
        const facts = { prefix: r.prefix, attrs: ATTRS[r.attrs] as PathAttributes, local: false, ibgp: r.ibgp, ifname: () => IFNAME[hops[0] as string] };
        if (r.forget) memo.clear();
        const got = memo.evaluate4(set, facts, hops);
        const want = evaluate(set, facts);
        if (got.accept !== want.accept || got.rule !== want.rule || JSON.stringify(got.attrs) !== JSON.stringify(want.attrs)) return false;
      }
      return true;
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 sequences');
});

t.test('neighbouring prefixes a CIDR rule tells apart do not share a decision', async (t) => {
  const set: RuleSet = {
    rules: [{ name: 'the /25', action: 'reject', cidr: '10.1.2.128/25', operator: 'In' }],
    fallback: { action: 'accept', name: 'rest' },
  };
  const memo = new DecisionMemo();
  const attrs: PathAttributes = {};
  const hops = ['192.0.2.1'];
  const seen: string[] = [];
  for (let i = 120; i < 136; i++) {
    const d = memo.evaluate4(set, { prefix: p4(`10.1.2.${i}/32`), attrs, local: false, ibgp: true }, hops);
    seen.push(`${i}:${d.accept ? 'a' : 'r'}`);
  }
  t.same(seen, [...Array.from({ length: 8 }, (_, i) => `${120 + i}:a`), ...Array.from({ length: 8 }, (_, i) => `${128 + i}:r`)]);
  // a length bound: the /24 itself is outside "In 10.1.2.0/24 with minLength 25", its /25s inside
  const bound: RuleSet = { rules: [{ name: 'long', action: 'reject', cidr: '10.1.2.0/24', operator: 'In', minLength: 25 }], fallback: { action: 'accept', name: 'rest' } };
  t.equal(memo.evaluate4(bound, { prefix: p4('10.1.2.0/25'), attrs, local: false, ibgp: true }, hops).accept, false);
  t.equal(memo.evaluate4(bound, { prefix: p4('10.1.2.0/24'), attrs, local: false, ibgp: true }, hops).accept, true);
  t.equal(memo.evaluate4(bound, { prefix: p4('10.1.2.128/25'), attrs, local: false, ibgp: true }, hops).accept, false);
});

t.test('through RibCore: an import list refusing a /25 of an UPDATE refuses exactly its prefixes', async (t) => {
  const rules: RuleSet = { rules: [{ name: 'no upper half', action: 'reject', cidr: '10.9.0.128/25', operator: 'In' }], fallback: { action: 'accept', name: 'rest' } };
  const accept: RuleSet = { rules: [], fallback: { action: 'accept', name: 'all' } };
  const core = new RibCore({ localAs: 64512, routerId: 0x0a000001 });
  const id = core.addPeer({ address: '192.0.2.1', asn: 65001, rules: { import4: rules, import6: accept, export4: accept, export6: accept } });
  core.peerUp(id, terms(0x0a000002, false));
  const prefixes = Array.from({ length: 256 }, (_, i) => `10.9.0.${i}/32`);
  core.applyUpdate(id, announce(prefixes, { asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1' }));
  const held = prefixes.filter((p) => core.route(p4(p)) !== null);
  t.equal(held.length, 128, 'half of them held');
  t.ok(held.every((p) => Number(p.split('.')[3]?.split('/')[0]) < 128), 'the lower half, and only it');
});
