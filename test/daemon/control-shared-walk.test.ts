// Concurrent full dumps of one table share one sorted copy of its keys (src/daemon/prefix-walk.ts SharedRuns,
// issue 15: 16 dumps of a 1M-route Loc-RIB each sorted the table before their first row): walks of the same
// version get the same order from one scan, a walk whose maker gave up makes its own, a new version scans again,
// and a filtered walk never shares.
import t from 'tap';
import { PrefixWalk, SharedRuns } from '../../src/daemon/prefix-walk.js';
import { TurnScheduler } from '../../src/control/stream.js';
import { p4 } from '../helpers/rib.js';

const drain = (w: PrefixWalk): number[] => {
  const out: number[] = [];
  for (let k = w.next(); k !== undefined; k = w.next()) out.push(k as number);
  return out;
};

t.test('walks of one table version share one scan; each has its own position', async (t) => {
  const sched = new TurnScheduler();
  const set = new Set<number>();
  for (let i = 0; i < 40_000; i++) set.add(p4(`10.${(i * 7919) % 256}.${(i >> 8) % 256}.${i % 256}/32`));
  const sorted = [...set].sort((a, b) => a - b);
  let scans = 0;
  const source = (): Iterator<number> => {
    scans++;
    return set.values();
  };
  const runs = new SharedRuns();
  const walks = Array.from({ length: 8 }, () => new PrefixWalk(source, { shared: { runs, version: 1 } }));
  const ok = await Promise.all(walks.map((w) => w.prepare(sched)));
  t.same(ok, walks.map(() => true));
  t.equal(scans, 1, 'eight concurrent walks, one scan');
  const first = drain(walks[0]!);
  t.same(first, sorted, 'every key once, in order');
  for (const w of walks.slice(1)) t.same(drain(w), sorted, 'the others too, after the first finished (the runs are not emptied)');
  t.equal(walks[3]!.size, set.size);

  // a filtered walk scans for itself
  const filtered = new PrefixWalk(source, { family: 4, shared: { runs, version: 1 } });
  await filtered.prepare(sched);
  t.equal(scans, 2, 'a filter means a scan of its own');
  // a new version scans again
  set.add(p4('9.0.0.0/8'));
  const newer = new PrefixWalk(source, { shared: { runs, version: 2 } });
  await newer.prepare(sched);
  t.equal(scans, 3, 'the table changed: scanned again');
  t.equal(drain(newer)[0], p4('9.0.0.0/8'), 'with the new key');
});

t.test('a walk whose maker gave up makes the runs itself', async (t) => {
  const sched = new TurnScheduler();
  const set = new Set<number>(Array.from({ length: 30_000 }, (_, i) => p4(`10.1.${(i >> 8) % 256}.${i % 256}/32`)));
  const runs = new SharedRuns();
  const ac = new AbortController();
  ac.abort();
  const quitter = new PrefixWalk(() => set.values(), { shared: { runs, version: 7 } });
  const stayer = new PrefixWalk(() => set.values(), { shared: { runs, version: 7 } });
  const [a, b] = await Promise.all([quitter.prepare(sched, ac.signal), stayer.prepare(sched)]);
  t.equal(a, false, 'the aborted walk stops');
  t.equal(b, true, 'the other one still gets its keys');
  t.equal(drain(stayer).length, set.size);
});
