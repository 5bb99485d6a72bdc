// Log lines a remote party can cause are limited per (source, kind), and the suppressed count is said and kept.
import t from 'tap';
import { LogRateLimit } from '../bgp/index.js';

t.test('burst per window per key, then counted and reported on the next line let through', async (t) => {
  let now = 0;
  const rl = new LogRateLimit({ burst: 3, windowMs: 1000, maxKeys: 100, now: () => now });
  const r = Array.from({ length: 10 }, () => rl.take('192.0.2.9', 'connection-refused'));
  t.same(r, [0, 0, 0, null, null, null, null, null, null, null], '3 lines, then 7 suppressed');
  t.equal(rl.take('192.0.2.10', 'connection-refused'), 0, 'another source has its own budget');
  t.equal(rl.take('192.0.2.9', 'update-error'), 0, 'another kind too');
  now = 1000;
  t.equal(rl.take('192.0.2.9', 'connection-refused'), 7, 'next window: the line says 7 were suppressed');
  t.equal(rl.suppressedByKind.get('connection-refused'), 7, 'counted per kind');
});

t.test('the key table is bounded: a flood of sources cannot grow it', async (t) => {
  const rl = new LogRateLimit({ burst: 1, windowMs: 60_000, maxKeys: 50 });
  let passed = 0;
  for (let i = 0; i < 10_000; i++) if (rl.take(`10.${(i >> 8) & 255}.${i & 255}.1`, 'connection-refused') !== null) passed++;
  t.equal(passed, 10_000, 'each new source gets its first line');
  for (let i = 0; i < 100; i++) rl.take('198.51.100.1', 'connection-refused');
  t.equal(rl.take('198.51.100.1', 'connection-refused'), null, 'one noisy source stays limited');
});
