// Update groups (bgp/rib/update-group.ts): for any sequence of UPDATEs from the peers, sessions going down and up
// (so members join groups late, and leave them while work is pending), ROUTE-REFRESH, and members leaving their
// group (as a slow one does), every peer of a core with update groups ends up holding exactly what the same peer
// of a core without them holds, and never holds a route of its own. The peers: four route-reflector clients with
// the same settings (one group), one with other export rules (its own), one with ADD-PATH send (its own), a
// non-client iBGP peer and an eBGP peer. The driver is emulated as the speaker's sender runs it: each member's
// personal work, then the group's batches to every member but where a batch says otherwise, drained at random
// points (work may stay queued across operations); a second run lets whole-table walks (initial tables, late
// joiners, sweeps) run a slice at a time between the operations.
import t from 'tap';
import fc from 'fast-check';
import { RibCore } from '../../bgp/index.js';
import type { OutBatch, PathAttributes, PeerConfig, PrefixKey, UpdateMessage } from '../../bgp/index.js';
import type { PeerRules } from '../../bgp/rib/policy.js';
import { show, terms, v4 } from '../helpers/rib.js';

const LOCAL_AS = 64512;
const ROUTER_ID = 0x0a000001;
const PREFIXES = Array.from({ length: 6 }, (_, i) => ((0x0a400000 + i * 256) * 64) + 24); // 10.64.i.0/24
const all = { rules: [], fallback: { action: 'accept' as const, name: 'all' } };
// refuses 10.64.0.0/24 on export: this peer's output differs from the other clients'
const rules: PeerRules = {
  import4: all, import6: all, export6: all,
  export4: { rules: [{ name: 'not-first', action: 'reject', cidr: '10.64.0.0/24', operator: 'Equal' }], fallback: { action: 'accept', name: 'rest' } },
};
const PEERS: (PeerConfig & { ibgp: boolean })[] = [
  { address: '192.0.2.1', asn: LOCAL_AS, routeReflectorClient: true, ibgp: true },
  { address: '192.0.2.2', asn: LOCAL_AS, routeReflectorClient: true, ibgp: true },
  { address: '192.0.2.3', asn: LOCAL_AS, routeReflectorClient: true, ibgp: true },
  { address: '192.0.2.4', asn: LOCAL_AS, routeReflectorClient: true, ibgp: true },
  { address: '192.0.2.5', asn: LOCAL_AS, routeReflectorClient: true, ibgp: true, rules },
  { address: '192.0.2.6', asn: LOCAL_AS, routeReflectorClient: true, ibgp: true, addPathSend: { mode: 'all' } },
  { address: '192.0.2.7', asn: LOCAL_AS, ibgp: true },
  { address: '192.0.2.8', asn: 65008, ibgp: false },
];

const attrsOf = (peer: number, variant: number): PathAttributes => ({
  origin: 0, asPath: PEERS[peer]!.ibgp ? [] : [{ type: 2, asns: [PEERS[peer]!.asn] }], nextHop: `192.0.2.${10 + peer}`, med: variant, localPref: 100 + variant,
});

type Op =
  | { op: 'announce'; peer: number; prefixes: number[]; variant: number }
  | { op: 'withdraw'; peer: number; prefixes: number[] }
  | { op: 'down'; peer: number }
  | { op: 'up'; peer: number }
  | { op: 'refresh'; peer: number }
  | { op: 'split'; peer: number }
  | { op: 'turn' }
  | { op: 'drain' };

const peerArb = fc.integer({ min: 0, max: PEERS.length - 1 });
const prefixesArb = fc.uniqueArray(fc.integer({ min: 0, max: PREFIXES.length - 1 }), { minLength: 1, maxLength: 4 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('announce' as const), peer: peerArb, prefixes: prefixesArb, variant: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('withdraw' as const), peer: peerArb, prefixes: prefixesArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('down' as const), peer: peerArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('up' as const), peer: peerArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('refresh' as const), peer: peerArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('split' as const), peer: peerArb }) },
  { weight: 3, arbitrary: fc.constant({ op: 'drain' as const }) },
  { weight: 3, arbitrary: fc.constant({ op: 'turn' as const }) },
);

class Side {
  readonly core: RibCore;
  readonly ids: number[];
  readonly up: boolean[];
  readonly rx: Map<string, string>[];
  readonly eor: number[];
  /** slices of whole-table walks waiting for their turn (slow: walks run a slice per 'turn') */
  readonly deferred: (() => void)[] = [];
  constructor(readonly groups: boolean, slow = false) {
    let clock = 0;
    this.core = new RibCore({
      localAs: LOCAL_AS, routerId: ROUTER_ID, updateGroups: groups,
      walk: slow ? { now: () => ++clock, sliceMs: 2, minPerSlice: 1, defer: (fn) => this.deferred.push(fn) } : { sliceMs: Infinity },
    });
    this.ids = PEERS.map(({ ibgp: _i, ...p }) => this.core.addPeer({ ...p, localAddress: '192.0.2.100' }));
    this.up = PEERS.map(() => false);
    this.rx = PEERS.map(() => new Map());
    this.eor = PEERS.map(() => 0);
  }
  private index(id: number): number {
    return this.ids.indexOf(id);
  }
  receive(i: number, b: OutBatch): void {
    const rx = this.rx[i]!;
    if (b.kind === 'announce' && i !== 5) {
      // never, not even for a moment, its own route (checked as each message goes, not only at the end); the ADD-PATH
      // peer is left out: it gets the other paths of a prefix whose best is its own
      for (const p of b.prefixes) {
        if (this.core.route(p as PrefixKey)?.best.source.address === PEERS[i]!.address) throw new Error(`peer ${i} was sent its own route ${show(p as PrefixKey)}`);
      }
    }
    if (b.kind === 'announce') {
      for (let k = 0; k < b.prefixes.length; k++) rx.set(`${show(b.prefixes[k] as PrefixKey)}#${b.pathIds?.[k] ?? 0}`, JSON.stringify(b.attrs.attrs));
    } else if (b.kind === 'withdraw') {
      for (let k = 0; k < b.prefixes.length; k++) rx.delete(`${show(b.prefixes[k] as PrefixKey)}#${b.pathIds?.[k] ?? 0}`);
    } else if (b.kind === 'end-of-rib') this.eor[i]!++;
  }
  drain(): void {
    const core = this.core;
    if (!this.groups) {
      this.ids.forEach((id, i) => {
        for (let b = core.nextBatch(id, 3), n = 0; b && n < 10_000; b = core.nextBatch(id, 3), n++) this.receive(i, b);
      });
      return;
    }
    const seen = new Set<number>();
    for (const id of this.ids) {
      const g = core.groupOf(id);
      if (g === null || seen.has(g.id)) continue;
      seen.add(g.id);
      // the sender skips a group's turn when groupHasWork says nothing waits: it must never hide a batch
      const had = core.groupHasWork(g.id);
      let taken = 0;
      for (const m of g.members) for (let b = core.nextPersonalBatch(m, 3), n = 0; b && n < 10_000; b = core.nextPersonalBatch(m, 3), n++, taken++) this.receive(this.index(m), b);
      for (let gb = core.nextGroupBatch(g.id, 3), n = 0; gb && n < 10_000; gb = core.nextGroupBatch(g.id, 3), n++, taken++) {
        for (const m of g.members) {
          const own = gb.except.get(m);
          if (own === null) continue;
          this.receive(this.index(m), own ?? gb.batch);
        }
      }
      if (!had && taken > 0) throw new Error(`group ${g.id}: groupHasWork said idle, ${taken} batches were waiting`);
      if (core.groupHasWork(g.id)) throw new Error(`group ${g.id}: groupHasWork still says work after a full drain`);
    }
  }
  apply(o: Op): void {
    const core = this.core;
    const id = o.op === 'drain' || o.op === 'turn' ? 0 : this.ids[o.peer]!;
    switch (o.op) {
      case 'announce':
      case 'withdraw': {
        if (!this.up[o.peer]) return;
        const ps = o.prefixes.map((i) => PREFIXES[i]!);
        const u: UpdateMessage = o.op === 'withdraw'
          ? { type: 'UPDATE', withdrawn: v4(ps), attributes: {}, nlri: v4([]) }
          : { type: 'UPDATE', withdrawn: v4([]), attributes: attrsOf(o.peer, o.variant), nlri: v4(ps) };
        core.applyUpdate(id, u);
        return;
      }
      case 'down':
        if (!this.up[o.peer]) return;
        this.up[o.peer] = false;
        // what a peer holds and the End-of-RIBs it got belong to one session: a joiner of a group of one gets its
        // table and End-of-RIB only once the group's sharing pass ends (update-group.ts), so a peer that goes down
        // before then never had them, while without groups its own walk may have finished (both are right)
        this.rx[o.peer]!.clear();
        this.eor[o.peer] = 0;
        core.peerDown(id);
        return;
      case 'up':
        if (this.up[o.peer]) return;
        this.up[o.peer] = true;
        core.peerUp(id, terms(o.peer + 1, PEERS[o.peer]!.ibgp, o.peer === 5 ? { addPathTx: new Set([0x0101]), addPathRx: new Set([0x0101]) } : {}));
        return;
      case 'refresh':
        if (this.up[o.peer]) core.routeRefresh(id, 1, 1);
        return;
      case 'split':
        if (this.groups && this.up[o.peer]) core.splitFromGroup(id);
        return;
      case 'turn':
        this.deferred.shift()?.();
        return;
      case 'drain':
        this.drain();
        return;
    }
  }
  settle(): void {
    for (let i = 0; i < 100_000 && this.deferred.length > 0; i++) this.deferred.shift()?.();
  }
}

// late: only the first of the four like clients is up at the start, so the others join its group after it has
// routes of its own and work queued (a group of one keeps one peer's plain Adj-RIB-Out until a second member joins:
// update-group.ts shared, export.ts shareGroup).
for (const [slow, late] of [[false, false], [true, false], [false, true], [true, true]] as const) t.test(`each member of a group receives exactly what it would without groups, and never its own routes${slow ? ' (walks in slices between the operations)' : ''}${late ? ' (the like clients join one by one, after routes)' : ''}`, async (t) => {
  let shared = 0;
  fc.assert(fc.property(fc.array(late ? fc.oneof({ weight: 1, arbitrary: fc.record({ op: fc.constant('up' as const), peer: fc.integer({ min: 1, max: 3 }) }) }, { weight: 4, arbitrary: opArb }) : opArb, { maxLength: 50 }), (ops) => {
    const plain = new Side(false, slow);
    const grouped = new Side(true, slow);
    for (const s of [plain, grouped]) for (let i = 0; i < PEERS.length; i++) if (!late || i === 0 || i > 3) s.apply({ op: 'up', peer: i });
    for (const o of ops) {
      plain.apply(o);
      grouped.apply(o);
    }
    plain.settle();
    grouped.settle();
    plain.drain();
    grouped.drain();
    const g0 = grouped.core.groupOf(grouped.ids[0]!);
    if (g0 !== null && g0.members.length > 1) shared++;
    PEERS.forEach((_, i) => {
      // (ADD-PATH path ids follow the order paths were added, which the walks' timing may change: compared without)
      const held = (s: Side): string => JSON.stringify([...s.rx[i]!].map(([k, v]) => `${k.split('#')[0]} ${v}`).sort());
      const a = held(plain);
      const b = held(grouped);
      if (a !== b) throw new Error(`peer ${i}: without groups ${a}\n with groups ${b}`);
      if (plain.eor[i] !== grouped.eor[i]) throw new Error(`peer ${i}: End-of-RIB ${plain.eor[i]} without groups, ${grouped.eor[i]} with`);
      // the advertised count (kept as the tables change, not walked) is what the peer holds once all is sent
      if (i !== 5) {
        for (const s of [plain, grouped]) {
          const n = s.up[i] ? s.core.peerStats(s.ids[i]!).advertised : 0;
          if (n !== s.rx[i]!.size) throw new Error(`peer ${i} (${s.groups ? 'groups' : 'no groups'}): advertised count ${n}, holds ${s.rx[i]!.size}`);
        }
      }
      // what it holds is what Adj-RIB-Out says, and none of it is its own route
      for (const p of PREFIXES) {
        const adv = grouped.core.advertised(grouped.ids[i]!, p);
        const best = grouped.core.route(p)?.best;
        if (adv !== undefined && best?.source.address === PEERS[i]!.address) throw new Error(`peer ${i} is advertised its own route ${show(p)}`);
      }
    });
  }), { numRuns: 400 });
  t.ok(shared > (late ? 40 : 100), `the four like clients shared a group in ${late ? 'many' : 'most'} runs (${shared} of 400)`);
});

t.test('a group of one that a second member joins: its member still loses the route it held when its own took over', async (t) => {
  // client 0 holds client 4's route for 10.64.0.0/24; then announces a better one itself: the withdrawal it is owed
  // is queued in its group (of one: no source kept) when client 1 joins and the group becomes shared.
  const ops: Op[] = [
    { op: 'announce', peer: 4, prefixes: [0, 1], variant: 0 }, { op: 'drain' },
    { op: 'announce', peer: 0, prefixes: [0], variant: 2 },
    { op: 'up', peer: 1 }, { op: 'drain' },
  ];
  const sides = [new Side(false), new Side(true)];
  for (const s of sides) {
    for (const i of [0, 4]) s.apply({ op: 'up', peer: i });
    for (const o of ops) s.apply(o);
  }
  const [plain, grouped] = sides as [Side, Side];
  t.equal(grouped.core.groupOf(grouped.ids[0]!)?.id, grouped.core.groupOf(grouped.ids[1]!)?.id, 'client 1 joined client 0\'s group');
  t.same([...grouped.rx[0]!.keys()], ['10.64.1.0/24#0'], 'client 0 holds client 4\'s other route only: the one its own replaced was withdrawn');
  t.same([...grouped.rx[0]!], [...plain.rx[0]!], 'as without groups');
  t.same([...grouped.rx[1]!.keys()].sort(), ['10.64.0.0/24#0', '10.64.1.0/24#0'], 'client 1 got client 0\'s route and client 4\'s other');
  t.same([...grouped.rx[1]!].sort(), [...plain.rx[1]!].sort(), 'as without groups');
  t.equal(grouped.core.peerStats(grouped.ids[0]!).advertised, 1, 'advertised to client 0: one');
  t.equal(grouped.core.peerStats(grouped.ids[1]!).advertised, 2, 'to client 1: two');
});

t.test('groups: the like clients share one; other rules, ADD-PATH send, non-clients and eBGP each get their own', async (t) => {
  const s = new Side(true);
  for (let i = 0; i < PEERS.length; i++) s.apply({ op: 'up', peer: i });
  const gid = (i: number): number => s.core.groupOf(s.ids[i]!)!.id;
  t.equal(new Set([0, 1, 2, 3].map(gid)).size, 1, 'clients 0-3 in one group');
  t.equal(new Set(PEERS.map((_, i) => gid(i))).size, 5, 'five groups in all');
  t.same(s.core.groupOf(s.ids[0]!)!.members, s.ids.slice(0, 4));
});

t.test('a late joiner gets the whole table and its End-of-RIB; a member leaving mid-stream leaves the others whole', async (t) => {
  const s = new Side(true);
  for (const i of [0, 1, 2]) s.apply({ op: 'up', peer: i });
  s.apply({ op: 'drain' });
  s.apply({ op: 'announce', peer: 0, prefixes: [0, 1, 2], variant: 0 });
  s.apply({ op: 'announce', peer: 1, prefixes: [3, 4], variant: 1 });
  s.apply({ op: 'drain' });
  t.equal(s.rx[2]!.size, 5, 'client 2 holds the five routes');
  t.equal(s.rx[0]!.size, 2, 'client 0 holds only the two that are not its own');
  // client 3 comes up late: it joins the group and walks its table
  s.apply({ op: 'up', peer: 3 });
  t.equal(s.core.groupOf(s.ids[3]!)!.members.length, 4, 'it joined the group');
  // work pending for the group while one member leaves
  s.apply({ op: 'announce', peer: 2, prefixes: [5], variant: 0 });
  s.apply({ op: 'withdraw', peer: 0, prefixes: [0] });
  s.apply({ op: 'down', peer: 1 });
  s.apply({ op: 'drain' });
  const held = (i: number): string[] => [...s.rx[i]!.keys()].sort();
  t.same(held(3), ['10.64.1.0/24#0', '10.64.2.0/24#0', '10.64.5.0/24#0'], 'the late joiner holds what remains, its own included none');
  t.equal(s.eor[3], 2, 'and got End-of-RIB per family once');
  t.same(held(0), ['10.64.5.0/24#0'], 'client 0: client 1\'s routes gone with its session, its own never sent');
  t.same(held(2), ['10.64.1.0/24#0', '10.64.2.0/24#0'], 'client 2: all but its own');
  t.equal(s.core.peerStats(s.ids[2]!).advertised, 2, 'Adj-RIB-Out of client 2 counts the same');
});
