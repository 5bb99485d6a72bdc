// The wait before a sweep (src/daemon/sweep.ts PeerWait): it ends once every peer has sent its routes AND what they
// sent has reached the table the sweep reads (no best-path change still queued between the speaker and the route
// table), or at the deadline whatever is still queued. A sweep that ran between a peer's End-of-RIB and its last
// route's best-path change reaching fib/ deleted that route from the kernel and wrote it again (seen once in the e2e
// restart test), so "not settled" must hold the sweep back.
import t from 'tap';
import { PeerWait } from '../../src/daemon/sweep.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('every peer has sent, but best-path changes are still queued: no sweep until they are applied', async (t) => {
  let queued = 3;
  const calls: string[][] = [];
  const wait = new PeerWait({
    sent: () => true,
    cancelled: () => false,
    settled: () => queued === 0,
    done: (waiting) => calls.push(waiting),
  });
  t.teardown(() => wait.close());
  wait.add('192.0.2.1', 1);
  wait.start(30_000);
  await sleep(600); // two polls at least
  t.same(calls, [], 'not done while changes are queued, although every peer has sent');
  t.equal(wait.done, false);
  t.match(wait.json(), { done: false }, 'status shows the wait as still running');
  queued = 0;
  for (let i = 0; i < 40 && calls.length === 0; i++) await sleep(50);
  t.same(calls, [[]], 'done once they are applied, with no peer left waiting');
  t.equal(wait.done, true);
});

t.test('settled, but a peer has not sent: still waiting (settled alone does not end it)', async (t) => {
  let sent = false;
  const calls: string[][] = [];
  const wait = new PeerWait({ sent: () => sent, cancelled: () => false, settled: () => true, done: (w) => calls.push(w) });
  t.teardown(() => wait.close());
  wait.add('192.0.2.2', 1);
  wait.start(30_000);
  await sleep(400);
  t.same(calls, [], 'not done');
  sent = true;
  wait.check();
  t.same(calls, [[]], 'done at the next check once the peer has sent');
});

t.test('the deadline ends the wait even with changes still queued (it is not waited for past it)', async (t) => {
  const calls: string[][] = [];
  const wait = new PeerWait({ sent: () => true, cancelled: () => false, settled: () => false, done: (w) => calls.push(w) });
  t.teardown(() => wait.close());
  wait.add('192.0.2.3', 1);
  wait.start(300);
  for (let i = 0; i < 40 && calls.length === 0; i++) await sleep(50);
  t.same(calls, [[]], 'done at the deadline, exactly once');
  await sleep(300);
  t.equal(calls.length, 1, 'never twice');
});
