// Issue 18's fabric test: three skein hosts (skeind + skein-bfdd, BFD 100 ms × 3 on every session, Calico's mesh)
// and a BIRD 2 ToR with `bfd on`, on one bridge — the failover bench's machinery (bench/failover/harness.ts) at test
// size. Every kernel is followed from the start with `ip -ts monitor route nexthop` and judged message by message
// (bench/failover/judge.ts, tested on real lines in test/ops/failover-judge).
// 1. A host loses power (its link set down inside its namespace, its daemons SIGKILLed): every other host and the
//    ToR stop routing to it (within 10 s here; the bench measures the time); its link returns, its daemons start,
//    and every route and BFD session comes back.
// 2. `kill -9` of one host's skeind, started again 5 s later (skein-bfdd keeps running): at no moment does any
//    other kernel (hosts and the ToR, which installs what BIRD learned) stop routing to that host, nor that host's
//    own kernel to another host — graceful restart keeps the routes and the companion keeps BFD Up.
import t from 'tap';
import { requires } from '../helpers/env.js';
import { SkeinFabric, block, cannotRun } from '../../bench/failover/harness.js';

t.test('three skein hosts and a BIRD ToR: a power loss routed around and back; kill -9 + restart loses nothing', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  const why = cannotRun();
  if (why !== undefined) return t.fail(why);
  const f = new SkeinFabric(3, { txMs: 100, rxMs: 100, multiplier: 3 });
  t.teardown(() => f.destroy());
  await f.ready(120_000);
  t.ok(f.converged(), 'every host and the ToR route to every host');

  // 1. power loss of host-0 and its return
  const h0 = f.hosts[0]!;
  const p = await f.cycle(h0, 10_000, (m) => t.comment(m));
  t.equal(p.observations.length, 3, 'two hosts and the ToR watched');
  for (const o of p.observations) {
    t.notOk(o.wasNotRouting, `${o.observer} routed to host-0 before the power loss`);
    t.ok(o.ms !== undefined, `${o.observer} stopped routing to host-0 (${o.ms ?? '-'} ms)`);
  }
  t.ok(f.converged(), 'after host-0 came back, every route is there again');

  // 2. kill -9 of host-1's skeind, a restart 5 s later: every kernel keeps routing throughout
  const h1 = f.hosts[1]!;
  const target = { ip: h1.ip, block: block(h1.index) };
  const others = f.nodes().filter((x) => x !== h1);
  const since = Date.now();
  for (const o of others) o.follower.watch(target, since);
  h1.follower.watch({ ip: h0.ip, block: block(h0.index) }, since);
  await f.crashAndRestartSkeind(h1, 5000);
  await f.ready(120_000, h1);
  await new Promise((r) => setTimeout(r, 3000)); // the restarted skeind's sweep and refresh settle
  for (const o of others) {
    const r = o.follower.result()!;
    t.notOk(r.wasNotRouting, `${o.name} routed to host-1 when its skeind was killed`);
    t.equal(r.stoppedAfterMs, undefined, `${o.name}'s kernel never stopped routing to host-1 (${r.messages} messages in the window)`);
  }
  const own = h1.follower.result()!;
  t.equal(own.stoppedAfterMs, undefined, 'host-1\'s own kernel never stopped routing to host-0 while its skeind was away');
  t.ok(f.converged(), 'everything routes to everything at the end');
});
