// What a poll of the kernel's routes costs (src/daemon/reachability.ts): each dump walks the whole table, skein's
// million routes included, so after a first full read a poll dumps the protocols known to have routes (a dump
// found some, or an event named one) and two of the others in turn. And how changes are followed: through the
// FIB's event socket (the Programmer's 'foreignRoute' event), with no process of its own, skein's own writes never
// taken for a change and never in the view. In a namespace, through test/fib/reach-agent.ts; the dump count is what
// is checked, never a time.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import type { Reachability } from '../../bgp/index.js';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, until } from '../helpers/netns.js';
import { reachAgent } from './reach-client.js';

const rootOk = (t: Test): boolean => requires(t as unknown as Parameters<typeof requires>[0], { root: true });

interface State { dumps: number; resyncs: number; named: number[]; applied: number; current: Reachability | null; views: number; errors: string[]; protocols: number[] }

/** A namespace with a veth pair: 10.0.0.1/24 (connected routes, proto kernel) and nothing else. */
function topology(lab: Lab): string {
  const ns = lab.ns('rp');
  lab.link(ns, ns, 'pa0', 'pa1');
  lab.addr(ns, 'pa0', '10.0.0.1/24');
  return ns;
}

t.test('a poll dumps the protocols that have routes and two others in turn', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = topology(lab);
  nsExec(ns, 'ip', ['route', 'add', '198.51.100.0/24', 'via', '10.0.0.9', 'proto', 'static']);
  const agent = reachAgent(t, ns);
  const s0 = await agent.call<State>('start');
  const all = s0.protocols.length;
  t.ok(all > 10, `${all} protocols are read`);
  t.same(s0.errors, []);
  t.equal(s0.dumps, 2 * all, 'the first read dumps every protocol, both families');
  t.same(s0.current?.routes, ['10.0.0.0/24', '198.51.100.0/24', 'fe80::/64'], 'connected routes (proto kernel) and the static one');
  let dumps = s0.dumps;
  const poll = async (): Promise<{ n: number; s: State }> => {
    const s = await agent.call<State>('refresh');
    const n = s.dumps - dumps;
    dumps = s.dumps;
    return { n, s };
  };

  // a route of a known protocol in the other family: the next poll sees it
  nsExec(ns, 'ip', ['-6', 'route', 'add', 'fd00:9::/64', 'dev', 'pa0', 'proto', 'static']);
  const p1 = await poll();
  t.equal(p1.n, 8, 'a poll: 8 dumps (protocols 2 and 4, two others, both families)');
  t.ok(p1.s.current?.routes.includes('fd00:9::/64'), 'and the change is read');

  // a route of a protocol that had none (dhcp, 16): found when its turn comes, within (all - 2) / 2 polls
  nsExec(ns, 'ip', ['route', 'add', '192.0.2.0/24', 'via', '10.0.0.7', 'proto', 'dhcp']);
  let polls = 0;
  for (; polls < all; polls++) {
    const p = await poll();
    t.equal(p.n, 8, 'every poll: 8 dumps');
    if (p.s.current?.routes.includes('192.0.2.0/24') === true) break;
  }
  t.ok(polls < Math.ceil((all - 2) / 2), `the dhcp route was read after ${polls + 1} polls`);
  t.equal((await poll()).n, 10, 'from then on protocol 16 is dumped in every poll too');

  // protocol 4's routes go: the next poll reads that, and protocol 4 then waits for its turn like the others
  nsExec(ns, 'ip', ['route', 'del', '198.51.100.0/24', 'proto', 'static']);
  nsExec(ns, 'ip', ['-6', 'route', 'del', 'fd00:9::/64', 'proto', 'static']);
  const p3 = await poll();
  t.notOk(p3.s.current?.routes.includes('198.51.100.0/24') || p3.s.current?.routes.includes('fd00:9::/64'), 'the routes of protocol 4 are gone from the view');
  t.equal((await poll()).n, 8, 'and it is no longer dumped every time');

  // a change event names its protocol: only that one is dumped again (both families), the others' routes are kept
  nsExec(ns, 'ip', ['route', 'add', '203.0.113.0/24', 'via', '10.0.0.5', 'proto', 'zebra']);
  await agent.call('changed', { protocol: 11 });
  const e1 = (await until(async () => {
    const s = await agent.call<State>('state');
    return s.current?.routes.includes('203.0.113.0/24') === true ? s : undefined;
  }, 'the event makes it read the zebra route'))!;
  t.equal(e1.dumps - dumps, 2, 'an event: 2 dumps (protocol 11, both families)');
  dumps = e1.dumps;
  t.ok(e1.current?.routes.includes('192.0.2.0/24') && e1.current.routes.includes('10.0.0.0/24'), 'the other protocols\' routes are still there');
  t.equal((await poll()).n, 10, 'and protocol 11 is among those a poll dumps from then on (2, 11, 16, two others)');
  // an event of no known protocol (the FIB's resync): a poll
  await agent.call('changed', { protocol: 0 });
  const e2 = (await until(async () => {
    const s = await agent.call<State>('state');
    return s.dumps > dumps ? s : undefined;
  }, 'the resync makes it poll'))!;
  t.equal(e2.dumps - dumps, 10, 'a resync: a poll (protocols 2, 11, 16, two others)');
  t.same(e2.errors, []);
});

t.test('route changes come from the FIB\'s event socket: other protocols are read at once, skein\'s never', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = topology(lab);
  const agent = reachAgent(t, ns);
  // a poll interval of an hour: only events make it read again
  const s0 = await agent.call<State>('start', { fib: true, protocol: 171 });
  t.notOk(s0.protocols.includes(77), 'protocol 77 is not among those read at first');
  const views0 = s0.views;

  // skein's own routes, written by the Programmer: not a change of what the host reaches, and never in the view
  await agent.call('set', { base: '10.200.0.0', count: 300, gw: '10.0.0.9' });
  t.equal(nsExec(ns, 'ip', ['-j', 'route', 'show', 'proto', '171']).split('"dst"').length - 1, 300, 'skein\'s routes are in the kernel');
  // another daemon (protocol 77, which no table names) writes a route: the event carries it whole, and it is in
  // the view at once, with no dump of the kernel's table
  nsExec(ns, 'ip', ['route', 'add', '203.0.113.0/24', 'via', '10.0.0.5', 'proto', '77']);
  const s1 = (await until(async () => {
    const s = await agent.call<State>('state');
    return s.current?.routes.includes('203.0.113.0/24') === true ? s : undefined;
  }, 'the route of protocol 77 is in the view without a poll'))!;
  t.ok(s1.protocols.includes(77), 'protocol 77 is read from now on');
  t.same(s1.current?.resolving?.find((r) => r.dst === '203.0.113.0/24')?.hops, [{ gateway: '10.0.0.5', dev: 'pa0' }],
    'its gateway and device (the name from the FIB\'s link table)');
  t.equal(s1.views, views0 + 1, 'one new view');
  // Not whether anything was dumped meanwhile: the FIB's resync after its bulk write of skein's routes makes a poll
  // whenever it comes, and the veth's IPv6 link-local address (a local-table route, read by a dump) comes when the
  // kernel has done its duplicate address detection. What is checked is that no event of protocol 77 was left to one.
  t.notOk(s1.named.includes(77), `no dump for it: the event was applied as it came (events left to a dump, by protocol: ${JSON.stringify(s1.named)})`);
  t.ok(s1.applied > s0.applied, 'one more event applied whole');
  t.notOk(s1.current?.routes.some((r) => r.startsWith('10.200.')), 'skein\'s own routes are not in it');
  t.notOk(s1.current?.resolving?.some((r) => r.dst.startsWith('10.200.')), 'and resolve no next hop');
  // a blackhole of another protocol: an event applied, no dump, and no new view (it forwards nothing)
  nsExec(ns, 'ip', ['route', 'add', 'blackhole', '10.99.0.0/16', 'proto', 'static']);
  await until(async () => (await agent.call<State>('state')).applied > s1.applied, 'the blackhole\'s event is applied');
  const s1b = await agent.call<State>('state');
  t.notOk(s1b.named.includes(4), 'no dump for it either');
  t.equal(s1b.views, s1.views, 'a blackhole changes nothing of what the host reaches');
  // a poll dumps and agrees with what the events built: no new view
  const s2 = await agent.call<State>('refresh');
  t.ok(s2.dumps > s1b.dumps, 'the poll dumped');
  t.equal(s2.views, s1.views, 'and found the view the events had built');
  t.notOk(s2.current?.routes.includes('10.99.0.0/16'));
  t.same(s2.errors, []);

  // the route goes: out of the view at once, no dump
  nsExec(ns, 'ip', ['route', 'del', '203.0.113.0/24', 'proto', '77']);
  const s3 = (await until(async () => {
    const s = await agent.call<State>('state');
    return s.current?.routes.includes('203.0.113.0/24') === false ? s : undefined;
  }, 'the deleted route leaves the view'))!;
  t.notOk(s3.named.includes(77), 'without a dump');
  // a multipath route: the kernel may report its hops one at a time, so its event only names the protocol and
  // that protocol is dumped again
  nsExec(ns, 'ip', ['route', 'add', '198.51.100.0/24', 'proto', '77', 'nexthop', 'via', '10.0.0.5', 'nexthop', 'via', '10.0.0.6']);
  const s4 = (await until(async () => {
    const s = await agent.call<State>('state');
    return s.current?.routes.includes('198.51.100.0/24') === true ? s : undefined;
  }, 'the multipath route is in the view'))!;
  t.ok(s4.named.includes(77) && s4.dumps > s3.dumps, 'read by a dump');
  t.same(s4.current?.resolving?.find((r) => r.dst === '198.51.100.0/24')?.hops, [{ gateway: '10.0.0.5', dev: 'pa0' }, { gateway: '10.0.0.6', dev: 'pa0' }], 'with both hops');
  // an address: a local-table event, read by a dump (addresses come only from reads)
  nsExec(ns, 'ip', ['addr', 'add', '10.0.0.77/24', 'dev', 'pa0']);
  await until(async () => (await agent.call<State>('state')).current?.addresses.includes('10.0.0.77') === true, 'the new address is in the view');
  t.same((await agent.call<State>('state')).errors, []);

  // no process of its own: the agent (node, in the namespace) has no child
  const pid = agent.proc.pid!;
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  t.equal(children, '', 'no child process (no ip, no grep, no shell)');
});

t.test('route events reach the next-hop checks as changes, which build what a whole view would', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = topology(lab);
  const agent = reachAgent(t, ns);
  const s0 = await agent.call<State & { deltas: number }>('start', { fib: true, protocol: 171, deltas: true });
  const NEXT_HOPS = ['10.65.0.5', '10.65.0.6', '10.65.0.7', '203.0.113.9', '198.51.100.1', '10.0.0.9'];
  const state = (): Promise<State & { deltas: number }> => agent.call<State & { deltas: number }>('state');
  // `current` follows the events at once, the consumers get the change on the view's next compose (20 ms later)
  let seen = s0.deltas;
  const changed = async (what: string, ok: (s: State) => boolean): Promise<void> => {
    await until(async () => {
      const s = await state();
      return ok(s) && s.deltas > seen ? s : undefined;
    }, what);
    seen = (await state()).deltas;
  };
  const check = async (what: string): Promise<void> => {
    const c = await agent.call<{ diffs: string[] }>('check', { nextHops: NEXT_HOPS });
    t.same(c.diffs, [], `${what}: the next-hop table and resolver kept by changes answer as fresh ones`);
  };

  // Felix-like device routes and a route through a gateway, of protocol 80
  nsExec(ns, 'ip', ['route', 'add', '10.65.0.5/32', 'dev', 'pa0', 'proto', '80']);
  nsExec(ns, 'ip', ['route', 'add', '10.65.0.6/32', 'dev', 'pa0', 'proto', '80']);
  nsExec(ns, 'ip', ['route', 'add', '203.0.113.0/24', 'via', '10.0.0.5', 'proto', '80']);
  const s1 = (await until(async () => {
    const s = await state();
    return ['10.65.0.5', '10.65.0.6', '203.0.113.0/24'].every((r) => s.current?.routes.includes(r)) && s.deltas > s0.deltas ? s : undefined;
  }, 'the three routes reach the consumers as changes'))!;
  t.ok(s1.deltas > s0.deltas, 'they reached the consumers as changes');
  t.notOk(s1.named.includes(80), 'and no dump for them');
  await check('three routes added');

  nsExec(ns, 'ip', ['route', 'del', '10.65.0.5/32', 'dev', 'pa0', 'proto', '80']);
  seen = s1.deltas;
  await changed('the deleted route leaves the view', (s) => s.current?.routes.includes('10.65.0.5') === false);
  await check('one deleted');

  // the gateway moves: the kept resolver follows
  nsExec(ns, 'ip', ['route', 'replace', '203.0.113.0/24', 'via', '10.0.0.6', 'proto', '80']);
  await changed('the new gateway is in the view', (s) => s.current?.resolving?.find((r) => r.dst === '203.0.113.0/24')?.hops[0]?.gateway === '10.0.0.6');
  await check('a gateway replaced');

  // a second metric of one prefix, then the first goes: the prefix stays
  nsExec(ns, 'ip', ['route', 'add', '10.65.0.6/32', 'dev', 'pa0', 'proto', '80', 'metric', '50']);
  nsExec(ns, 'ip', ['route', 'del', '10.65.0.6/32', 'dev', 'pa0', 'proto', '80', 'metric', '0']);
  await changed('only the metric-50 route is left', (s) => s.current?.resolving?.filter((r) => r.dst === '10.65.0.6').map((r) => r.metric).join() === '50');
  await check('one metric of two deleted');

  // a poll after changes gives a whole view again, which agrees
  const s2 = await agent.call<State & { deltas: number }>('refresh');
  t.ok(s2.views > s1.views, 'the poll after changes gave the consumers a whole view');
  await check('after the poll');
  t.same(s2.errors, []);
});
