// Speaker.pathUp (bgp/speaker/path-up.ts): a BFD Up for a peer lifts the peer oscillation damping, so a host that
// comes back after a power loss gets its session at once instead of after the damped wait (RFC 4271 §8.1.1
// DampPeerOscillations; here 30 s, so nothing but pathUp can bring the session up within the test's window).
// Must NOT: bring the session up before pathUp, touch an Established session, or know an unknown peer.
// Loopback only (no root): speaker A on <net>.1, speaker B (the returning host) on <net>.2.
import t from 'tap';
import type { Speaker } from '../../bgp/index.js';
import { until } from '../helpers/netns.js';
import { loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';

const PORT = 24191;
const addr = loopbackNet();
const speakers: Speaker[] = [];
t.teardown(async () => {
  for (const s of speakers) await s.stop({ message: 'test over' }).catch(() => undefined);
});

t.test('pathUp starts a damped session now; nothing else does; an Established session is left alone', async (t) => {
  // A damps for 30 s after each failed attempt (60 s at most)
  const a = loopbackSpeaker(addr, PORT, 1, 64512, [{ address: addr(2), port: PORT, asn: 64512 }], { idleHold: { initial: 30, max: 60 } });
  speakers.push(a);
  await a.start();
  // B is not there (its host is off): A's attempt is refused and A falls to Idle with its IdleHoldTimer armed
  await until(() => a.peerInfo(addr(2))?.state === 'Idle' && /connect failed/.test(a.peerInfo(addr(2))?.info ?? ''), 'A\'s attempt failed, A is Idle (damped)', 15_000, 50);
  // B comes back. It waits for A to connect (passive, as in Calico's node-to-node mesh, where only one side of
  // each pair connects), so B's return is seen only when A's damped wait ends.
  const b = loopbackSpeaker(addr, PORT, 2, 64512, [{ address: addr(1), port: PORT, asn: 64512, passive: true }]);
  speakers.push(b);
  await b.start();
  const waitMs = 3000;
  const deadline = Date.now() + waitMs;
  let upEarly = false;
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    if (a.peerInfo(addr(2))?.state === 'Established') upEarly = true;
    await new Promise((r) => setTimeout(r, 10));
  }
  t.notOk(upEarly, `without pathUp the session stays down for ${waitMs} ms (A's damping holds)`);
  t.equal(a.peerInfo(addr(2))?.state, 'Idle', 'A is still Idle');

  t.equal(a.pathUp('192.0.2.99'), false, 'an unknown peer: false, nothing done');
  const t0 = Date.now();
  t.equal(a.pathUp(addr(2)), true, 'pathUp for B');
  await until(() => a.peerInfo(addr(2))?.state === 'Established', 'the session is Established after pathUp', 20_000, 20);
  t.ok(Date.now() - t0 < 20_000, `well inside the 30 s damped wait (${Date.now() - t0} ms)`);

  // pathUp again on an Established session: the same connection, still Established
  const conn = a.peerInfo(addr(2))?.connection;
  a.pathUp(addr(2));
  await new Promise((r) => setTimeout(r, 500));
  t.equal(a.peerInfo(addr(2))?.state, 'Established', 'an Established session is left alone');
  t.equal(a.peerInfo(addr(2))?.connection, conn, 'on the same connection');
});

t.test('pathUp does not start a session an operator stopped', async (t) => {
  const c = loopbackSpeaker(addr, PORT, 3, 64512, [{ address: addr(4), port: PORT, asn: 64512 }], { idleHold: { initial: 30, max: 60 } });
  speakers.push(c);
  await c.start();
  await c.stop({ message: 'maintenance' }); // ManualStop: Idle with no IdleHoldTimer
  t.equal(c.peerInfo(addr(4))?.state, 'Idle');
  c.pathUp(addr(4));
  await new Promise((r) => setTimeout(r, 500));
  t.equal(c.peerInfo(addr(4))?.state, 'Idle', 'still Idle: a stopped session stays stopped');
});

// The failover bench's stall (issue 18, 22:32 at load 14-19): a BFD flap while a session was Idle and damped. The BFD
// Down fed AutomaticStop to the Idle connection, which in Idle cancels the pending IdleHoldTimer (bgp/session/fsm.ts),
// so the BFD Up that followed found no damped restart to lift and the session stayed Idle for good (180 s and more,
// both ends' routes to each other gone with every BFD session Up).
t.test('a BFD Down while the session is Idle and damped keeps its restart: the BFD Up then starts it', async (t) => {
  const e = loopbackSpeaker(addr, PORT, 5, 64512, [{ address: addr(6), port: PORT, asn: 64512 }], { idleHold: { initial: 30, max: 60 } });
  speakers.push(e);
  await e.start();
  await until(() => e.peerInfo(addr(6))?.state === 'Idle' && /connect failed/.test(e.peerInfo(addr(6))?.info ?? ''), 'E\'s attempt failed, E is Idle (damped)', 15_000, 50);
  // BFD goes Down (the flap) while E is Idle and damped
  t.equal(e.endSessionForBfd(addr(6), 'BFD down: test'), true, 'the BFD Down is handled');
  t.equal(e.peerInfo(addr(6))?.state, 'Idle', 'still Idle after the BFD Down');
  // the peer comes back, listening (passive), and BFD comes Up
  const f = loopbackSpeaker(addr, PORT, 6, 64512, [{ address: addr(5), port: PORT, asn: 64512, passive: true }]);
  speakers.push(f);
  await f.start();
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(e.peerInfo(addr(6))?.state, 'Idle', 'the damping still holds before the BFD Up (no early restart)');
  t.equal(e.pathUp(addr(6)), true, 'pathUp (BFD Up)');
  await until(() => e.peerInfo(addr(6))?.state === 'Established', 'Established after the BFD Up', 20_000, 20).catch(() => undefined);
  t.equal(e.peerInfo(addr(6))?.state, 'Established', 'the session came back: the BFD Down did not cancel its restart');
});
