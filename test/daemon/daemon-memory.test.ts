// src/daemon/memory.ts: after a datastore list, a collection, the allocator trimmed only once that collection is over,
// then after a quiet while a second collection (for V8 to shrink its young generation) and a second trim; a newer list
// supersedes an older one's release. The collection and the trim are stand-ins here (this is the logic's order);
// bench/datastore-etcd measures the real one.
import t from 'tap';
import { ListMemory } from '../../src/daemon/memory.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(f: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await sleep(5);
  return f();
}

t.test('the trims wait for the collection, however long it takes', async (t) => {
  const events: string[] = [];
  let finish: (() => void) | undefined;
  const m = new ListMemory({
    gcDelayMs: 5, settleMs: 5, shrinkDelayMs: 20,
    collect: () => { events.push('collect'); return new Promise<void>((r) => { finish = () => { events.push('collected'); r(); }; }); },
    trim: () => events.push('trim'),
  });
  m.listed();
  t.ok(await until(() => events.includes('collect')), 'the collection starts');
  await sleep(150);
  t.same(events, ['collect'], 'no trim while the collection runs (150 ms)');
  finish?.();
  t.ok(await until(() => events.length === 4), 'trimmed, and the second collection started');
  t.same(events, ['collect', 'collected', 'trim', 'collect'], 'a trim once the first collection ended, then the second collection');
  await sleep(100);
  t.equal(events.length, 4, 'no second trim while the second collection runs');
  finish?.();
  t.ok(await until(() => m.releases === 1), 'released once');
  t.same(events, ['collect', 'collected', 'trim', 'collect', 'collected', 'trim']);
  m.stop();
});

t.test('a list during the release of an earlier one: one release, for the newer list', async (t) => {
  let collects = 0;
  let trims = 0;
  const pending: (() => void)[] = [];
  const released: number[] = [];
  const m = new ListMemory({
    gcDelayMs: 5, settleMs: 5, shrinkDelayMs: 5,
    collect: () => { collects++; return new Promise<void>((r) => pending.push(r)); },
    trim: () => { trims++; },
    onRelease: () => released.push(collects),
  });
  m.listed();
  t.ok(await until(() => collects === 1), 'the first collection runs');
  m.listed(); // a resync while it runs
  t.ok(await until(() => collects === 2), 'the newer list collects again');
  pending[0]?.(); // the older collection ends: nothing to trim for it
  await sleep(60);
  t.equal(trims, 0, 'the older list\'s collection ending trims nothing');
  pending[1]?.();
  t.ok(await until(() => collects === 3), 'the newer one trims and collects a second time');
  t.equal(trims, 1);
  pending[2]?.();
  t.ok(await until(() => m.releases === 1), 'and releases');
  await sleep(60);
  t.equal(m.releases, 1, 'once');
  t.equal(trims, 2);
  t.same(released, [3], 'reported after the second collection');
  m.stop();
});

t.test('stop() cancels a release in progress; without a collector the trims still run', async (t) => {
  let trims = 0;
  let finish: (() => void) | undefined;
  const m = new ListMemory({ gcDelayMs: 5, settleMs: 5, shrinkDelayMs: 5, collect: () => new Promise<void>((r) => { finish = r; }), trim: () => { trims++; } });
  m.listed();
  t.ok(await until(() => finish !== undefined));
  m.stop();
  finish?.();
  await sleep(60);
  t.equal(trims, 0, 'stopped: no trim');
  const n = new ListMemory({ gcDelayMs: 5, settleMs: 5, shrinkDelayMs: 5, collect: () => undefined, trim: () => { trims++; } });
  n.listed();
  t.ok(await until(() => n.releases === 1), 'no collector (another engine): trimmed anyway');
  t.equal(trims, 2);
});

t.test('a list that grew the young generation or left much in Buffers forces the first collection; else not', async (t) => {
  for (const want of [true, false]) {
    const forces: boolean[] = [];
    const m = new ListMemory({
      gcDelayMs: 5, settleMs: 5, shrinkDelayMs: 5,
      collect: (force) => { forces.push(force); return Promise.resolve(); },
      trim: () => undefined,
      churned: () => want,
    });
    m.listed();
    t.ok(await until(() => m.releases === 1), 'released');
    t.same(forces, [want, true], `churned ${String(want)}: the first collection forced ${String(want)}, the second forced`);
    m.stop();
  }
});

t.test('what counts as churn is the caller\'s: a list 24 MiB, the release after start-up less', async (t) => {
  const asked: number[] = [];
  const m = new ListMemory({
    gcDelayMs: 5, settleMs: 5, shrinkDelayMs: 5,
    collect: () => Promise.resolve(),
    trim: () => undefined,
    churned: (bytes) => { asked.push(bytes); return false; },
  });
  m.listed();
  t.ok(await until(() => m.releases === 1), 'released');
  m.listed(8 * 2 ** 20);
  t.ok(await until(() => m.releases === 2), 'released again');
  t.same(asked, [24 * 2 ** 20, 8 * 2 ** 20], 'the default threshold, then the one given');
  m.stop();
});
