// The best-change stream without an object per change (bgp/rib/change-queue.ts) and the key-only PrefixMap it
// de-duplicates with: a keys-only PrefixMap answers like a Set under any sequence of operations; the queue hands out
// each changed prefix once, in the order it first changed, and its batches say what the Loc-RIB holds when drained
// (gone, unusable, multipath) — the same as the one-object-per-change view (drainBestChanges) built from it.
import t from 'tap';
import fc from 'fast-check';
import { RibCore } from '../../bgp/index.js';
import type { PathAttributes, UpdateMessage } from '../../bgp/index.js';
import { PrefixMap } from '../../bgp/rib/prefix-map.js';
import { terms, v4 } from '../helpers/rib.js';

const LOCAL_AS = 64512;

t.test('a keys-only PrefixMap agrees with a Set under random operations (including deletes during a walk)', async (t) => {
  const key = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 32 })).map(([a, l]) => (0xc0000000 + a * 256) * 64 + l) },
    { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 0, max: 200 }), fc.constantFrom(26, 32)).map(([a, l]) => (0x0a000000 + a * 2 ** (32 - l)) * 64 + l) },
    { weight: 1, arbitrary: fc.constantFrom('fd00::/64', 'fd00:1::/64', '::/0') },
  );
  const op = fc.oneof(
    fc.record({ op: fc.constant('add' as const), k: key }),
    fc.record({ op: fc.constant('getOrSet' as const), k: key }),
    fc.record({ op: fc.constant('delete' as const), k: key }),
    fc.record({ op: fc.constant('take' as const), k: key }),
    fc.record({ op: fc.constant('clear' as const) }),
    fc.record({ op: fc.constant('walk-delete' as const), mod: fc.integer({ min: 2, max: 5 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 600 }), (ops) => {
      const m = new PrefixMap<true>(16, true);
      const ref = new Set<number | string>();
      for (const o of ops) {
        if (o.op === 'add') {
          m.set(o.k, true);
          ref.add(o.k);
        } else if (o.op === 'getOrSet') {
          if (m.getOrSet(o.k, true) !== (ref.has(o.k) ? true : undefined)) return false;
          ref.add(o.k);
        } else if (o.op === 'delete') {
          if (m.delete(o.k) !== ref.delete(o.k)) return false;
        } else if (o.op === 'take') {
          if (m.take(o.k) !== (ref.has(o.k) ? true : undefined)) return false;
          ref.delete(o.k);
        } else if (o.op === 'clear') {
          m.clear();
          ref.clear();
        } else {
          // delete every other key (by a hash of the key) while walking; every value seen is true
          let bad = false;
          m.forEach((v: unknown, k) => {
            if (v !== true) bad = true;
            if (String(k).length % o.mod === 0) m.delete(k);
          });
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set in the forEach callback above
          if (bad) return false;
          for (const k of [...ref]) if (String(k).length % o.mod === 0) ref.delete(k);
        }
        if (m.size !== ref.size) return false;
      }
      for (const k of ref) if (m.get(k) !== true || !m.has(k)) return false;
      const seen = [...m.keysIter()];
      return seen.length === ref.size && seen.every((k) => ref.has(k));
    }),
    { numRuns: 300 },
  );
  t.pass('300 random operation sequences');
});

const attrs = (nh: string, med = 0): PathAttributes => ({ origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: nh, med });
const announce = (prefixes: number[], a: PathAttributes): UpdateMessage => ({ type: 'UPDATE', withdrawn: v4([]), attributes: a, nlri: v4(prefixes) });
const withdraw = (prefixes: number[]): UpdateMessage => ({ type: 'UPDATE', withdrawn: v4(prefixes), attributes: {}, nlri: v4([]) });
const pfx = (i: number): number => (((10 << 24) >>> 0) + i * 256) * 64 + 24;

t.test('a drained batch: each changed prefix once, in first-change order, with the state it has when drained', async (t) => {
  const core = new RibCore({ localAs: LOCAL_AS, routerId: 0x0a000001, maxPaths: 4 });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  const b = core.addPeer({ address: '192.0.2.2', asn: 65001, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false));
  core.peerUp(b, terms(2, false));
  core.applyUpdate(a, announce([pfx(0), pfx(1), pfx(2)], attrs('192.0.2.1')));
  core.applyUpdate(a, announce([pfx(1)], attrs('192.0.2.1', 5))); // changed again before the drain: still once
  core.applyUpdate(b, announce([pfx(2)], attrs('192.0.2.2'))); // an equal-cost second path: multipath
  core.applyUpdate(a, withdraw([pfx(0)])); // gone before the drain: handed out as gone
  const batch = core.drainBest();
  t.same(batch.keys, [pfx(0), pfx(1), pfx(2)], 'once each, in the order each first changed');
  t.equal(batch.attributes(0), null, 'withdrawn before the drain: gone');
  t.same(batch.nextHops(0), []);
  t.equal(batch.from(0), null);
  t.equal(batch.attributes(1)?.med, 5, 'the state at the drain, not at the first change');
  t.same(batch.nextHops(2), ['192.0.2.1', '192.0.2.2'], 'both equal-cost next hops, best first');
  t.equal(batch.afi(1), 1);
  t.equal(core.pendingBestChanges, 0);
  t.equal(core.drainBest().length, 0, 'nothing twice');

  // the object view is made from the same batch
  core.applyUpdate(b, withdraw([pfx(2)]));
  core.applyUpdate(a, withdraw([pfx(1)]));
  t.same(core.drainBestChanges().map((c) => [c.prefix, c.best === null, c.nextHops, c.from]), [
    [pfx(2), false, ['192.0.2.1'], '192.0.2.1'],
    [pfx(1), true, [], null],
  ]);
});

t.test('a budget splits the queue across drains without losing or repeating a prefix, also when prefixes change in between', async (t) => {
  let clock = 0;
  const core = new RibCore({ localAs: LOCAL_AS, routerId: 0x0a000001, walk: { now: () => ++clock } });
  const a = core.addPeer({ address: '192.0.2.1', asn: 65001, localAddress: '192.0.2.100' });
  core.peerUp(a, terms(1, false));
  const N = 3000;
  const all = Array.from({ length: N }, (_, i) => pfx(i));
  core.applyUpdate(a, announce(all, attrs('192.0.2.1')));
  const first = core.drainBest(3); // the fake clock moves one per reading, read every 256 changes
  t.ok(first.length > 0 && first.length < N, `a part (${first.length})`);
  // a prefix already handed out changes again: queued again (at the end); one still queued stays where it is
  core.applyUpdate(a, announce([pfx(0), pfx(N - 1)], attrs('192.0.2.1', 9)));
  const rest: number[] = [];
  for (let i = 0; i < 1000 && core.pendingBestChanges > 0; i++) rest.push(...(core.drainBest(3).keys as number[]));
  t.same([...(first.keys as number[]), ...rest], [...all, pfx(0)], 'every prefix once, the re-changed one again at the end');
});
