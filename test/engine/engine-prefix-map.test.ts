// The prefix-keyed map under the RIB (bgp/rib/prefix-map.ts) against a Map model, with the key shapes its probe
// sequence has to survive: runs of neighbouring prefixes (which fill whole 8-slot groups), keys 8, 64 or 256
// apart (one per group key, each wanting the same place in its group unless the hash spreads them), mixed
// lengths and IPv6 text; tables that grow through several sizes in one sequence, tombstones from deletes and
// takes (reused by later inserts), and deletes during a walk.
import t from 'tap';
import fc from 'fast-check';
import { PrefixMap } from '../../bgp/rib/prefix-map.js';

/** a /len prefix whose network number (address >>> (32 - len)) is `index`, from 10.0.0.0 up */
const at = (index: number, len: number): number => (0x0a000000 + index * 2 ** (32 - len)) * 64 + len;

const single = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.constantFrom(24, 26, 32)).map(([i, l]) => at(i, l)) },
  // one key per group key, every one with the same low index bits
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 400 }), fc.constantFrom(8, 64, 256)).map(([i, s]) => at(i * s, 32)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 32 })).map(([a, l]) => (0xc0000000 + a * 256) * 64 + l) },
  { weight: 1, arbitrary: fc.constantFrom('fd00::/64', 'fd00:1::/64', '::/0') },
);

/** a run of keys as one UPDATE brings them: `count` of them from `start`, `stride` apart */
const run = fc.record({
  start: fc.integer({ min: 0, max: 3000 }),
  count: fc.integer({ min: 1, max: 700 }),
  stride: fc.constantFrom(1, 1, 2, 8, 64),
  len: fc.constantFrom(24, 32),
});
const keysOf = (r: { start: number; count: number; stride: number; len: number }): number[] =>
  Array.from({ length: r.count }, (_, i) => at(r.start + i * r.stride, r.len));

type Op =
  | { op: 'set' | 'swap' | 'getOrSet' | 'takeIf'; k: number | string; v: number }
  | { op: 'delete' | 'take' | 'get'; k: number | string }
  | { op: 'set-run' | 'take-run'; r: { start: number; count: number; stride: number; len: number }; v: number }
  | { op: 'walk-delete'; mod: number }
  | { op: 'clear' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('set' as const, 'swap' as const, 'getOrSet' as const), k: single, v: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ op: fc.constant('takeIf' as const), k: single, v: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ op: fc.constantFrom('delete' as const, 'take' as const, 'get' as const), k: single }),
  fc.record({ op: fc.constantFrom('set-run' as const, 'take-run' as const), r: run, v: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ op: fc.constant('walk-delete' as const), mod: fc.integer({ min: 2, max: 4 }) }),
  fc.record({ op: fc.constant('clear' as const) }),
);

/** Apply one operation to both; false when they answer differently. */
function step(m: PrefixMap<number>, ref: Map<number | string, number>, o: Op): boolean {
  switch (o.op) {
    case 'set':
      m.set(o.k, o.v);
      ref.set(o.k, o.v);
      return true;
    case 'swap': {
      const prev = ref.get(o.k);
      ref.set(o.k, o.v);
      return m.swap(o.k, o.v) === prev;
    }
    case 'getOrSet': {
      const prev = ref.get(o.k);
      if (prev === undefined) ref.set(o.k, o.v);
      return m.getOrSet(o.k, o.v) === prev;
    }
    case 'takeIf': {
      const hit = ref.get(o.k) === o.v;
      if (hit) ref.delete(o.k);
      return m.takeIf(o.k, o.v) === hit;
    }
    case 'delete':
      return m.delete(o.k) === ref.delete(o.k);
    case 'take': {
      const prev = ref.get(o.k);
      ref.delete(o.k);
      return m.take(o.k) === prev;
    }
    case 'get':
      return m.get(o.k) === ref.get(o.k) && m.has(o.k) === ref.has(o.k);
    case 'set-run':
      for (const k of keysOf(o.r)) {
        const prev = ref.get(k);
        ref.set(k, o.v);
        if (m.swap(k, o.v) !== prev) return false;
      }
      return true;
    case 'take-run':
      for (const k of keysOf(o.r)) {
        const prev = ref.get(k);
        ref.delete(k);
        if (m.take(k) !== prev) return false;
      }
      return true;
    case 'walk-delete':
      m.forEach((v, k) => {
        if (v % o.mod === 0) m.delete(k);
      });
      for (const [k, v] of [...ref]) if (v % o.mod === 0) ref.delete(k);
      return true;
    case 'clear':
      m.clear();
      ref.clear();
      return true;
  }
}

/**
 * Every key of the model is found with its value, and the map holds nothing else. iter: also through keysIter
 * (which finishes a stepped growth under way: the stepped test leaves it to the end, to keep growths under way).
 */
function same(m: PrefixMap<number>, ref: Map<number | string, number>, iter = true): boolean {
  if (m.size !== ref.size) return false;
  for (const [k, v] of ref) if (m.get(k) !== v || !m.has(k)) return false;
  const seen = iter ? [...m.keysIter()] : [...ref.keys()];
  if (seen.length !== ref.size || !seen.every((k) => ref.has(k))) return false;
  const snap = m.keySnapshot();
  return snap.v4.length + snap.v6.length === ref.size && [...snap.v4].every((k) => ref.has(k));
}

t.test('PrefixMap agrees with a Map: runs, strided keys, growth, tombstones, walks (fast-check)', async (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.constantFrom(16, 64, 4096), (ops, capacity) => {
      const m = new PrefixMap<number>(capacity);
      const ref = new Map<number | string, number>();
      for (const o of ops) {
        if (!step(m, ref, o)) return false;
        if (m.size !== ref.size) return false;
      }
      return same(m, ref);
    }),
    { numRuns: 300 },
  );
  t.pass('300 operation sequences agree with the model');
});

t.test('PrefixMap growing in steps agrees with a Map: lookups, changes and walks while old keys move (fast-check)', async (t) => {
  // every growth goes in steps, slowly, so the operations meet keys in the old table, the new one, both; at one
  // slot per insert the new table fills before the old one is empty (the rest then moves at once)
  let stepped = 0;
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.constantFrom(16, 64), fc.constantFrom(1, 2, 16), (ops, capacity, perInsert) => {
      const m = new PrefixMap<number>(capacity, false, { from: 16, perInsert });
      const ref = new Map<number | string, number>();
      for (const o of ops) {
        if (!step(m, ref, o)) return false;
        if (m.size !== ref.size) return false;
        if (!same(m, ref, false)) return false;
        if ((m as unknown as { old: unknown }).old !== null) stepped++;
      }
      return same(m, ref);
    }),
    { numRuns: 300 },
  );
  t.ok(stepped > 100, `operations ran while a growth was under way (${stepped} times)`);
  // a set: the same with no value array
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { maxLength: 400 }), (ops) => {
      const m = new PrefixMap<true>(16, true, { from: 16, perInsert: 2 });
      const ref = new Set<number>();
      for (const [add, i] of ops) {
        const k = at(i, 24);
        if (add) {
          if ((m.getOrSet(k, true) === undefined) !== !ref.has(k)) return false;
          ref.add(k);
        } else if (m.delete(k) !== ref.delete(k)) return false;
        if (m.size !== ref.size || m.has(k) !== ref.has(k)) return false;
      }
      return [...m.keysIter()].length === ref.size && [...ref].every((k) => m.get(k) === true);
    }),
    { numRuns: 200 },
  );
});

t.test('a lazy keysIter walk while the table changes and grows in steps gives every key present throughout once (fast-check)', async (t) => {
  // what skeinctl's dumps rely on (src/daemon/prefix-walk.ts): the walk is resumed between operations of all
  // kinds, including growths that begin, move keys and end while it is suspended, and walks that start mid-growth
  let crossed = 0;
  fc.assert(
    fc.property(
      fc.array(op, { maxLength: 20 }),
      fc.array(fc.tuple(op, fc.integer({ min: 0, max: 200 })), { maxLength: 40 }),
      fc.constantFrom(1, 2, 16),
      (before, during, perInsert) => {
        const m = new PrefixMap<number>(16, false, { from: 16, perInsert });
        const ref = new Map<number | string, number>();
        for (const o of before) if (!step(m, ref, o)) return false;
        const throughout = new Set(ref.keys());
        const ever = new Set(ref.keys());
        const it = m.keysIter();
        const given = new Map<number | string, number>();
        let done = false;
        const next = (n: number): void => {
          for (let i = 0; i < n && !done; i++) {
            const r = it.next();
            if (r.done === true) done = true;
            else given.set(r.value, (given.get(r.value) ?? 0) + 1);
          }
        };
        next(1);
        const wasGrowing = (): boolean => (m as unknown as { old: unknown }).old !== null;
        let grew = false;
        for (const [o, pace] of during) {
          if (!step(m, ref, o)) return false;
          for (const k of throughout) if (!ref.has(k)) throughout.delete(k);
          for (const k of ref.keys()) ever.add(k);
          grew ||= wasGrowing();
          next(pace);
        }
        next(Infinity);
        if (grew) crossed++;
        if ([...throughout].some((k) => given.get(k) !== 1)) return false; // every key present throughout, once
        if ([...given.values()].some((c) => c !== 1)) return false; // nothing twice
        return [...given.keys()].every((k) => ever.has(k)); // nothing that was never there
      },
    ),
    { numRuns: 400 },
  );
  t.ok(crossed > 20, `walks that a stepped growth crossed: ${crossed}`);
});

t.test('two tables fed the same keys do not begin their stepped growths at the same insert', async (t) => {
  // the Loc-RIB and an Adj-RIB-Out at a full table: the second waits for the first's (STAGGER), up to 7/8 load;
  // the wait here is as short beside these tables as the real one is beside tables of a million slots
  const a = new PrefixMap<number>(16, false, { from: 1 << 12, perInsert: 64, stagger: 1 << 9 });
  const b = new PrefixMap<number>(16, false, { from: 1 << 12, perInsert: 64, stagger: 1 << 9 });
  const began: { a: number[]; b: number[] } = { a: [], b: [] };
  const growing = (m: PrefixMap<number>): boolean => (m as unknown as { old: unknown }).old !== null;
  for (let i = 0; i < 200_000; i++) {
    const k = at(i, 32);
    const wasA = growing(a);
    const wasB = growing(b);
    a.set(k, i);
    b.set(k, i);
    if (!wasA && growing(a)) began.a.push(i);
    if (!wasB && growing(b)) began.b.push(i);
  }
  t.ok(began.a.length >= 3 && began.a.length === began.b.length, `both grew in steps as often (${began.a.length}, ${began.b.length})`);
  t.ok(began.a.every((x, j) => x !== began.b[j]), `never at the same insert: ${began.a.join(',')} / ${began.b.join(',')}`);
  let found = 0;
  for (let i = 0; i < 200_000; i++) if (a.get(at(i, 32)) === i && b.get(at(i, 32)) === i) found++;
  t.equal(found, 200_000, 'every key found in both');
});

t.test('a walk that replaces and deletes while a stepped growth is under way visits every key once', async (t) => {
  const m = new PrefixMap<number>(16, false, { from: 16, perInsert: 2 });
  const n = 5000;
  let midway = false;
  for (let i = 0; i < n; i++) {
    m.set(at(i, 32), i);
    if (i > 100 && (m as unknown as { old: unknown }).old !== null) midway = true;
  }
  // stop right after a growth began: insert until the old table is there
  let i = n;
  while ((m as unknown as { old: unknown }).old === null && i < 4 * n) m.set(at(i, 32), i++);
  t.ok(midway && (m as unknown as { old: unknown }).old !== null, 'the walk starts while keys are still to move');
  const total = i;
  const seen = new Map<number, number>();
  m.forEach((v, k) => {
    seen.set(k as number, (seen.get(k as number) ?? 0) + 1);
    if (v % 3 === 0) m.delete(k);
    else m.set(k, -v);
  });
  t.equal(seen.size, total, 'every key visited');
  t.ok([...seen.values()].every((c) => c === 1), 'none visited twice');
  let ok = 0;
  for (let j = 0; j < total; j++) if (m.get(at(j, 32)) === (j % 3 === 0 ? undefined : -j)) ok++;
  t.equal(ok, total, 'every key deleted or changed as the walk said');
  t.equal(m.size, total - Math.ceil(total / 3));
});

t.test('keys that all want the same place in their groups fill a table past 1/8 and are all found', async (t) => {
  // at(i * 8, 32): every key the only one of its group key, every one with index & 7 === 0 (a probe sequence that
  // stayed at one place of the groups would find no free slot once 1/8 of the table was used, and never end)
  for (const stride of [8, 64, 256, 4096]) {
    const m = new PrefixMap<number>(16);
    const n = 20_000;
    for (let i = 0; i < n; i++) m.set(at(i * stride, 32), i);
    let found = 0;
    for (let i = 0; i < n; i++) if (m.get(at(i * stride, 32)) === i) found++;
    t.equal(found, n, `stride ${stride}: every key found with its value`);
    t.equal(m.get(at(n * stride, 32)), undefined, `stride ${stride}: a key never set is not found`);
    t.equal(m.get(at(1, 32)), undefined, `stride ${stride}: a neighbour of a set key is not found`);
    // delete every other key (tombstones), then insert keys in between: reused tombstones, nothing lost
    let deleted = 0;
    for (let i = 0; i < n; i += 2) if (m.delete(at(i * stride, 32))) deleted++;
    t.equal(deleted, n / 2, `stride ${stride}: every other key deleted`);
    for (let i = 0; i < n; i += 2) m.set(at(i * stride + 1, 32), -i);
    let ok = 0;
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0 ? m.get(at(i * stride, 32)) === undefined && m.get(at(i * stride + 1, 32)) === -i : m.get(at(i * stride, 32)) === i) ok++;
    }
    t.equal(ok, n, `stride ${stride}: after deletes and re-inserts every key answers as the model`);
    t.equal(m.size, n, `stride ${stride}: size`);
  }
});

t.test('a million neighbouring /32s go in, are found, and come out', async (t) => {
  const m = new PrefixMap<number>();
  const n = 1_000_000;
  for (let i = 0; i < n; i++) if (m.getOrSet(at(i, 32), i) !== undefined) t.fail(`${i} already there`);
  t.equal(m.size, n);
  let found = 0;
  for (let i = 0; i < n; i++) if (m.get(at(i, 32)) === i) found++;
  t.equal(found, n, 'every key found with its value');
  t.equal(m.get(at(n, 32)), undefined, 'the next one is not there');
  t.equal(m.get(at(0, 31)), undefined, 'the covering /31 is not there');
  let taken = 0;
  for (let i = 0; i < n; i++) if (m.takeIf(at(i, 32), i)) taken++;
  t.equal(taken, n, 'every key taken once');
  t.equal(m.size, 0);
  t.equal(m.get(at(5, 32)), undefined, 'nothing left behind');
});
