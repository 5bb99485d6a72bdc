// Log lines a remote party can cause are limited per (source, kind), and the suppressed count is said and kept.
import t from 'tap';
import { LogRateLimit } from '../../bgp/index.js';

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

t.test('suppressed lines reach the onSuppressed hook (skeind counts them in /metrics), by kind', async (t) => {
  const seen: string[] = [];
  const rl = new LogRateLimit({ burst: 1, windowMs: 60_000, onSuppressed: (k) => seen.push(k) });
  t.equal(rl.take('10.0.0.1', 'notification-sent'), 0);
  t.equal(rl.take('10.0.0.1', 'notification-sent'), null);
  t.equal(rl.take('10.0.0.1', 'session-up'), 0, 'another kind has its own budget');
  t.equal(rl.take('10.0.0.1', 'session-up'), null);
  t.same(seen, ['notification-sent', 'session-up']);
});

t.test('session-down lines are limited by the kind of reason', async (t) => {
  const { sessionDownKind } = await import('../../src/daemon.js');
  t.equal(sessionDownKind('received NOTIFICATION Cease / Administrative Reset (6/4)'), 'notification-received');
  t.equal(sessionDownKind('sent NOTIFICATION OPEN Message Error / Bad Peer AS (2/2)'), 'open-error');
  t.equal(sessionDownKind('sent NOTIFICATION UPDATE Message Error / Malformed Attribute List (3/1)'), 'notification-sent');
  t.equal(sessionDownKind('connection reset by peer'), 'connection-reset');
  t.equal(sessionDownKind(''), 'session-down');
});

t.test('IdleCollector: one collection after a spike of work and a quiet period, none after a short request', async (t) => {
  const { IdleCollector } = await import('../../src/control/idle-gc.js');
  let n = 0;
  const c = new IdleCollector({ quietMs: 50, minWorkMs: 30, collect: () => n++ });
  t.teardown(() => c.stop());
  c.busy();
  c.idle(); // no work to speak of
  await new Promise((r) => setTimeout(r, 120));
  t.equal(n, 0, 'a short request does not cause a collection');
  c.busy();
  await new Promise((r) => setTimeout(r, 40));
  c.idle();
  c.busy(); // work again before the quiet period ends: not yet
  await new Promise((r) => setTimeout(r, 80));
  t.equal(n, 0, 'no collection while work goes on');
  c.idle();
  await new Promise((r) => setTimeout(r, 120));
  t.equal(n, 1, 'one collection once quiet');
  t.equal(c.collections, 1);
});
