// The failover benchmark's judge (bench/failover/judge.ts) on real `ip -ts monitor route nexthop` lines: when does a
// kernel stop routing to a dead host? The lines below were printed by iproute2 on Linux 6.x (a namespace with two
// veths; then trimmed to what each case needs): nexthop objects and groups as skeind writes them, plain and
// multipath routes as BIRD writes them. Each case says what must NOT count as "stopped" as well. No time is
// asserted beyond the arithmetic on the lines' own timestamps.
import t from 'tap';
import { KernelFollower, MonitorParser, stampMs } from '../../bench/failover/judge.js';

const DEAD = { ip: '10.99.0.2', block: '10.64.1.0/24' };
const at = (hms: string): number => stampMs(`2026-12-06T${hms.slice(0, 8)}`, hms.slice(9));

/** Real lines: objects 12 (via the dead host) and 13, group 14 of both, object 15 via another address, routes. */
const SETUP = [
  '[2026-12-06T02:42:24.299944] id 12 via 10.99.0.2 dev fva scope link proto 171 ',
  '[2026-12-06T02:42:24.301905] id 13 via 10.99.1.2 dev fvb scope link proto 171 ',
  '[2026-12-06T02:42:24.305023] id 14 group 12/13 proto 171 ',
  '[2026-12-06T02:42:24.311528] id 15 via 10.99.0.3 dev fva scope link proto 171 ',
  '[2026-12-06T02:42:24.313294] 10.64.1.0/24 nhid 12 via 10.99.0.2 dev fva proto 171 ',
  '[2026-12-06T02:42:24.315138] 10.64.2.0/24 nhid 14 proto 171 ',
  '\tnexthop via 10.99.0.2 dev fva weight 1 ',
  '\tnexthop via 10.99.1.2 dev fvb weight 1 ',
  '[2026-12-06T02:42:24.318381] 10.64.5.0/24 nhid 15 via 10.99.0.3 dev fva proto 171 ',
  '[2026-12-06T02:42:24.322470] blackhole 10.64.0.0/24 proto 171 ',
  '[2026-12-06T02:42:25.259360] local fe80::54fc:ff:fe6c:74ad dev fva table local proto kernel metric 0 pref medium',
];

function follower(lines: readonly string[]): KernelFollower {
  const f = new KernelFollower();
  for (const l of lines) f.line(l);
  return f;
}

t.test('parser: heads, continuation lines, nexthop objects and groups, Deleted', async (t) => {
  const p = new MonitorParser();
  for (const l of SETUP) p.push(l);
  p.push('[2026-12-06T02:42:24.330548] Deleted id 12 via 10.99.0.2 dev fva scope link proto 171 ');
  p.push('[2026-12-06T02:42:24.330601] id 14 group 13,2 proto 171 ');
  p.push('garbage that is not a monitor line');
  t.equal(p.unread, 1, 'an unreadable line is counted, not guessed at');
  const groups = p.events.filter((e) => e.kind === 'nexthop' && e.group.length > 0);
  t.same(groups.map((e) => (e.kind === 'nexthop' ? e.group : [])), [[12, 13], [13]], 'group members, weights dropped');
  const multi = p.events.find((e) => e.kind === 'route' && e.dst === '10.64.2.0/24');
  t.same(multi?.kind === 'route' ? multi.gateways : [], ['10.99.0.2', '10.99.1.2'], 'multipath gateways from the continuation lines');
  const del = p.events.find((e) => e.kind === 'nexthop' && e.deleted);
  t.equal(del?.kind === 'nexthop' ? del.id : -1, 12);
  t.equal(del?.tMs, at('02:42:24.330548'), 'timestamps in ms with the microseconds');
  const ll = p.events.find((e) => e.kind === 'route' && e.dst.includes(':'));
  t.equal(ll?.kind === 'route' ? ll.skip : false, true, 'local and IPv6 routes are kept out of the model');
});

t.test('skeind: deleting the dead host\'s object takes its routes silently and leaves its groups at once', async (t) => {
  const f = follower(SETUP);
  t.equal(f.routesTo(DEAD), true, 'routing to the host before');
  f.watch(DEAD, at('02:42:24.320000'));
  f.line('[2026-12-06T02:42:24.330548] Deleted id 12 via 10.99.0.2 dev fva scope link proto 171 ');
  f.line('[2026-12-06T02:42:24.330601] id 14 group 13 proto 171 ');
  t.equal(f.model.routes.has('10.64.1.0/24 main 0'), false, 'the block route left with its object (no route message)');
  t.equal(f.model.routes.has('10.64.2.0/24 main 0'), true, 'the group\'s route stays');
  t.same(f.model.gatewaysOf(f.model.routes.get('10.64.2.0/24 main 0')!), ['10.99.1.2'], 'through the survivor only');
  const r = f.result()!;
  t.equal(r.wasNotRouting, false);
  t.equal(r.messages, 1, 'one kernel message did it');
  t.equal(r.stoppedAfterMs?.toFixed(3), (at('02:42:24.330548') - at('02:42:24.320000')).toFixed(3), 'done at the object\'s deletion (the kernel drops it from its groups in the same step)');
});

t.test('must not count: a group re-announced still holding the dead host\'s object', async (t) => {
  const f = follower(SETUP);
  f.watch(DEAD, at('02:42:24.320000'));
  f.line('[2026-12-06T02:42:24.330000] 10.64.1.0/24 nhid 13 via 10.99.1.2 dev fvb proto 171 ');
  f.line('[2026-12-06T02:42:24.330100] id 14 group 12/13 proto 171 ');
  t.equal(f.result()?.stoppedAfterMs, undefined, 'the block moved, but 10.64.2.0/24 still uses object 12 through group 14');
  f.line('[2026-12-06T02:42:24.330200] id 14 group 13 proto 171 ');
  f.line('[2026-12-06T02:42:24.330300] Deleted 10.64.1.0/24 nhid 13 via 10.99.1.2 dev fvb proto 171 ');
  t.equal(f.result()?.stoppedAfterMs?.toFixed(1), '10.3', 'done when the block went too');
  t.equal(f.result()?.messages, 4);
});

t.test('must not count: the block gone while another route still goes via the dead address', async (t) => {
  const f = follower([
    '[2026-12-06T02:42:24.320400] 10.64.3.0/24 via 10.99.0.2 dev fva proto bird metric 32 ',
    '[2026-12-06T02:42:24.320500] 10.64.1.0/24 via 10.99.0.2 dev fva proto bird metric 32 ',
  ]);
  f.watch(DEAD, at('02:42:24.321000'));
  f.line('[2026-12-06T02:42:24.332528] Deleted 10.64.1.0/24 via 10.99.0.2 dev fva proto bird metric 32 ');
  t.equal(f.result()?.stoppedAfterMs, undefined, 'still routing (10.64.3.0/24 via the dead host)');
  f.line('[2026-12-06T02:42:24.324605] 10.64.3.0/24 via 10.99.1.2 dev fvb proto bird metric 32 ');
  t.ok(f.result()?.stoppedAfterMs !== undefined, 'done once that route moved to another gateway');
});

t.test('must not count: the block re-routed via another host (its only origin is the dead host)', async (t) => {
  const f = follower(['[2026-12-06T02:42:24.320500] 10.64.1.0/24 via 10.99.0.2 dev fva proto bird metric 32 ']);
  f.watch(DEAD, at('02:42:24.321000'));
  f.line('[2026-12-06T02:42:24.330000] 10.64.1.0/24 via 10.99.1.2 dev fvb proto bird metric 32 ');
  t.equal(f.result()?.stoppedAfterMs, undefined, 'a route for the dead block is still a route to the dead host');
  f.line('[2026-12-06T02:42:24.340000] Deleted 10.64.1.0/24 via 10.99.1.2 dev fvb proto bird metric 32 ');
  t.ok(Math.abs(f.result()!.stoppedAfterMs! - 19) < 0.01, 'done when the block is withdrawn');
});

t.test('must not count: a multipath route that keeps the dead host among its next hops', async (t) => {
  const f = follower(['[2026-12-06T02:42:24.328825] 10.64.4.0/24 proto bird metric 32 ', '\tnexthop via 10.99.0.2 dev fva weight 1 ', '\tnexthop via 10.99.1.2 dev fvb weight 1 ']);
  f.watch(DEAD, at('02:42:24.329000'));
  // replaced by a multipath route that still includes the dead host: the head line alone has no gateway
  for (const l of ['[2026-12-06T02:42:24.330000] 10.64.4.0/24 proto bird metric 32 ', '\tnexthop via 10.99.1.2 dev fvb weight 1 ', '\tnexthop via 10.99.0.2 dev fva weight 1 ']) f.line(l);
  t.equal(f.result()?.stoppedAfterMs, undefined, 'judged with its continuation lines, not at its head');
  f.line('[2026-12-06T02:42:24.331000] 10.64.4.0/24 via 10.99.1.2 dev fvb proto bird metric 32 ');
  t.ok(f.result()?.stoppedAfterMs !== undefined, 'done when the dead host left the set');
});

t.test('must not count: another object deleted, or a message before the power-off', async (t) => {
  const f = follower(SETUP);
  f.line('[2026-12-06T02:42:24.310000] id 99 via 10.99.1.9 dev fvb scope link proto 171 ');
  f.watch(DEAD, at('02:42:24.325000'));
  f.line('[2026-12-06T02:42:24.324000] Deleted id 12 via 10.99.0.2 dev fva scope link proto 171 '); // stamped before the watch
  f.line('[2026-12-06T02:42:24.326000] id 14 group 13 proto 171 ');
  t.equal(f.result()?.stoppedAfterMs, 1, 'a message stamped before the power-off is applied but is not the answer');
  const g = follower(SETUP);
  g.watch(DEAD, at('02:42:24.325000'));
  g.line('[2026-12-06T02:42:24.334485] Deleted id 15 via 10.99.0.3 dev fva scope link proto 171 ');
  g.line('[2026-12-06T02:42:24.334535] Deleted id 13 via 10.99.1.2 dev fvb scope link proto 171 ');
  t.equal(g.result()?.stoppedAfterMs, undefined, 'objects of other hosts going away change nothing');
  t.equal(g.result()?.messages, 2);
});

t.test('a watch on a host the kernel did not route to is void', async (t) => {
  const f = follower(SETUP);
  f.watch({ ip: '10.99.7.7', block: '10.64.7.0/24' }, at('02:42:24.325000'));
  t.equal(f.result()?.wasNotRouting, true);
});
