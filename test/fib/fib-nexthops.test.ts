// fib/'s kernel nexthop objects (fib/nexthops.ts) against a real kernel in a namespace: gateway routes are
// installed with an nhid, one next hop down is one message that the kernel applies to every route, objects and
// routes of other protocols stay untouched, and a restarted Programmer adopts its objects and leaks none.
// One namespace and two agent runs (the restart), to stay cheap.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, until } from '../helpers/netns.js';
import { Agent, routes, type IpRoute } from './client.js';

const PROTO = '171';
const rootOk = (t: Test): boolean => requires(t as unknown as Parameters<typeof requires>[0], { root: true });

interface IpNexthop { id: number; gateway?: string; dev?: string; protocol?: string; group?: { id: number }[] }
interface Stats { nexthopObjects: boolean; nexthops: number; stale: number; pending: number; urgentSent: number; sent: { add: number; replace: number; delete: number } }

const nexthops = (ns: string): IpNexthop[] => {
  const txt = nsExec(ns, 'ip', ['-j', 'nexthop', 'show']);
  return txt.trim() === '' ? [] : (JSON.parse(txt) as IpNexthop[]);
};
const ours = (ns: string): IpNexthop[] => nexthops(ns).filter((n) => n.protocol === PROTO);
const byDst = (rs: IpRoute[]): Map<string, IpRoute> => new Map(rs.map((r) => [r.dst, r]));
const writes = (s: Stats): number => s.sent.add + s.sent.replace + s.sent.delete;

async function startAgent(t: Test, ns: string): Promise<Agent> {
  const agent = new Agent(ns);
  t.teardown(() => agent.kill());
  await agent.call('start', { opts: { retryMinMs: 100, retryMaxMs: 500, nexthopObjects: true } });
  return agent;
}

t.test('gateway routes through nexthop objects: one message per dead next hop, adoption at restart', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = lab.ns('fibnh');
  lab.link(ns, ns, 'v0a', 'v0b');
  lab.link(ns, ns, 'v1a', 'v1b');
  lab.addr(ns, 'v0a', '10.0.0.1/24');
  lab.addr(ns, 'v1a', '10.0.1.1/24');
  lab.addr(ns, 'v0a', 'fd00::1/64');
  // another protocol's objects: a small id with a route on it, and the very id skein would allocate first
  nsExec(ns, 'ip', ['nexthop', 'add', 'id', '7', 'via', '10.0.0.2', 'dev', 'v0a', 'proto', 'static']);
  nsExec(ns, 'ip', ['route', 'add', '10.61.0.0/24', 'nhid', '7', 'proto', 'static']);
  nsExec(ns, 'ip', ['nexthop', 'add', 'id', String(171 << 20), 'via', '10.0.1.2', 'dev', 'v1a', 'proto', 'static']);
  const foreignBefore = nexthops(ns);

  let agent = await startAgent(t, ns);
  let st = await agent.call<Stats>('stats');
  t.equal(st.nexthopObjects, true, 'the kernel has nexthop objects and they are used');
  const ecmp = [{ gw: '10.0.0.2' }, { gw: '10.0.1.2' }];
  await agent.call('setRange', { range: { base: '10.60.0.0/32', count: 300, hops: ecmp } });
  await agent.call('set', { routes: [
    { prefix: '10.62.0.0/24', hops: [{ gw: '10.0.0.2' }] },
    { prefix: '10.64.0.0/24', hops: [{ gw: '10.0.0.3' }] }, // wanted now, not after the restart
    { prefix: 'fd60::/64', hops: [{ gw: 'fd00::2' }] },
    { prefix: '10.63.0.5/32', hops: [{ dev: 'v1a' }] }, // a device route (workload): stays plain
  ] });
  st = await agent.call<Stats>('flush');
  let v4 = byDst(routes(ns, 4, 'proto', PROTO));
  const ecmpIds = new Set([...v4.values()].filter((r) => r.dst.startsWith('10.60.')).map((r) => r.nhid));
  t.equal([...v4.keys()].filter((d) => d.startsWith('10.60.')).length, 300, 'the ECMP routes are installed');
  t.equal(ecmpIds.size, 1, 'every ECMP route points at the same group object');
  const group = [...ecmpIds][0] as number;
  t.ok(typeof group === 'number' && group !== 7 && group !== 171 << 20, `an id of skein's own (${group})`);
  t.equal(v4.get('10.60.0.0')?.nexthops?.length, 2, '`ip route show` still lists both next hops of the group');
  t.match(v4.get('10.62.0.0/24'), { gateway: '10.0.0.2', dev: 'v0a' }, 'a single next hop reads as via + dev');
  t.type(v4.get('10.62.0.0/24')?.nhid, 'number', 'and carries its nhid');
  t.equal(v4.get('10.63.0.5')?.nhid, undefined, 'the device route is a plain route');
  t.type(byDst(routes(ns, 6, 'proto', PROTO)).get('fd60::/64')?.nhid, 'number', 'IPv6 gateway routes too');
  // one object per next hop (10.0.0.2, 10.0.1.2, 10.0.0.3, fd00::2) and one group for the ECMP set
  t.equal(ours(ns).length, 5, 'one object per next hop, one group per ECMP set, and no more');
  const single = v4.get('10.62.0.0/24')?.nhid;
  t.match(ours(ns).find((n) => n.id === single), { gateway: '10.0.0.2', dev: 'v0a' }, 'a single next hop points at its own object, not a one-member group');
  t.match(byDst(routes(ns, 6, 'proto', PROTO)).get('fd60::/64'), { gateway: 'fd00::2', dev: 'v0a' }, 'an IPv6 route through an object still reads as via + dev');
  t.same(nexthops(ns).filter((n) => n.protocol !== PROTO), foreignBefore, 'the other protocol\'s objects are untouched');

  // next hop 10.0.0.2 dies: one message; the kernel drops it from the group and removes its single-hop routes
  const before = writes(st);
  // in one turn, as skeind on a BFD Down: the withdrawals change the desired state (the ECMP routes now want the
  // survivor only, the single-hop route goes), then the dead next hop's object is deleted
  const msgs = await agent.call<number[]>('turn', { ops: [
    { op: 'setRange', range: { base: '10.60.0.0/32', count: 300, hops: [{ gw: '10.0.1.2' }] } },
    { op: 'remove', routes: [{ prefix: '10.62.0.0/24' }] },
    { op: 'nextHopDown', gw: '10.0.0.2' },
  ] });
  t.same(msgs, [1], 'one netlink message for 300 routes');
  st = await agent.call<Stats>('flush');
  v4 = byDst(routes(ns, 4, 'proto', PROTO));
  const after = [...v4.values()].filter((r) => r.dst.startsWith('10.60.'));
  t.equal(after.length, 300, 'the ECMP routes stay');
  t.ok(after.every((r) => r.nhid === group && r.gateway === '10.0.1.2' && r.nexthops === undefined),
    'they still use the same object, which now holds only the live next hop');
  t.equal(writes(st) - before, 0, 'not one route message: the object change did it all');
  t.notOk(v4.has('10.62.0.0/24'), 'the route whose only next hop died is gone');
  t.ok(ours(ns).every((n) => n.gateway !== '10.0.0.2'), 'no object of skein\'s uses the dead next hop');
  t.match(byDst(routes(ns, 4)).get('10.61.0.0/24'), { nhid: 7, protocol: 'static' }, 'the other protocol\'s route on its own object survives');
  t.same(nexthops(ns).filter((n) => n.protocol !== PROTO), foreignBefore, 'the other protocol\'s objects are still untouched');

  // restart (kill -9): the new Programmer adopts the objects; what is wanted again is not rewritten
  // another protocol points a route at skein's object of 10.0.0.3 (whose own route will not be wanted again)
  const lent = ours(ns).find((n) => n.gateway === '10.0.0.3')?.id;
  t.type(lent, 'number', 'skein has an object for 10.0.0.3');
  nsExec(ns, 'ip', ['route', 'add', '10.66.0.0/24', 'nhid', String(lent), 'proto', 'static']);
  agent.kill();
  await agent.exited;
  const objsBefore = ours(ns).length;
  agent = await startAgent(t, ns);
  st = await agent.call<Stats>('stats');
  t.ok(st.stale >= 302, `routes adopted (${st.stale})`);
  t.equal(ours(ns).length, objsBefore, 'adoption deletes nothing before the sweep');
  await agent.call('setRange', { range: { base: '10.60.0.0/32', count: 300, hops: [{ gw: '10.0.1.2' }] } });
  await agent.call('set', { routes: [
    { prefix: 'fd60::/64', hops: [{ gw: 'fd00::2' }] },
    { prefix: '10.63.0.5/32', hops: [{ dev: 'v1a' }] },
  ] });
  st = await agent.call<Stats>('flush');
  t.equal(writes(st), 0, 'the routes wanted again keep their adopted objects: nothing rewritten');
  await agent.call<Stats>('markSynced');
  await agent.call('flush');
  v4 = byDst(routes(ns, 4, 'proto', PROTO));
  t.notOk(v4.has('10.64.0.0/24'), 'the route not wanted again is swept');
  // objects left: exactly those the routes use (directly, or as members of a group they use)
  const left = ours(ns); // the flush waited for the sweep's nexthop deletes to be answered
  const used = new Set<number>();
  // every route counts, the other protocol's too
  for (const r of [...routes(ns, 4), ...routes(ns, 6)]) if (typeof r.nhid === 'number') used.add(r.nhid);
  for (const n of left) if (used.has(n.id)) for (const m of n.group ?? []) used.add(m.id);
  t.same(left.filter((n) => !used.has(n.id)).map((n) => n.id), [], 'no object of skein\'s is left unused (none leaked)');
  t.ok(left.some((n) => n.id === lent), 'the swept route\'s object stays while another protocol\'s route points at it');
  t.match(byDst(routes(ns, 4)).get('10.66.0.0/24'), { nhid: lent, protocol: 'static' }, 'and that route is untouched');
  t.same(nexthops(ns).filter((n) => n.protocol !== PROTO), foreignBefore, 'the other protocol\'s objects survive the sweep');
  await agent.call('close');
});

t.test('objects the kernel deletes (carrier loss) or someone else deletes come back, with their routes', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = lab.ns('fibnhc');
  lab.link(ns, ns, 'w0a', 'w0b');
  lab.link(ns, ns, 'w1a', 'w1b');
  lab.addr(ns, 'w0a', '10.0.0.1/24');
  lab.addr(ns, 'w1a', '10.0.1.1/24');
  lab.addr(ns, 'w0a', 'fd00::1/64');
  // another protocol's object on the device that will lose its carrier: the kernel's to delete, never ours
  nsExec(ns, 'ip', ['nexthop', 'add', 'id', '9', 'via', '10.0.1.2', 'dev', 'w1a', 'proto', 'static']);
  const agent = await startAgent(t, ns);
  await agent.call('setRange', { range: { base: '10.70.0.0/32', count: 200, hops: [{ gw: '10.0.0.2' }, { gw: '10.0.1.2' }] } });
  await agent.call('set', { routes: [
    { prefix: '10.71.0.0/24', hops: [{ gw: '10.0.0.2' }] },
    { prefix: 'fd71::/64', hops: [{ gw: 'fd00::2' }] },
  ] });
  await agent.call('markSynced'); // the desired state is complete: unused objects may be collected from now on
  const v4 = (): Map<string, IpRoute> => byDst(routes(ns, 4, 'proto', PROTO));
  const v6 = (): Map<string, IpRoute> => byDst(routes(ns, 6, 'proto', PROTO));
  const ecmpOk = (m: Map<string, IpRoute>): boolean => {
    const r = [...m.values()].filter((x) => x.dst.startsWith('10.70.'));
    return r.length === 200 && r.every((x) => x.nexthops?.length === 2 && typeof x.nhid === 'number');
  };
  const single = (): number | undefined => v4().get('10.71.0.0/24')?.nhid as number | undefined;
  const first = single();
  t.ok(ecmpOk(v4()) && typeof first === 'number', 'installed through objects');

  // someone deletes skein's object of 10.0.0.2: the kernel drops its routes and shrinks the group; fib/ re-asserts
  nsExec(ns, 'ip', ['nexthop', 'del', 'id', String(first)]);
  await until(() => {
    const m = v4();
    const id = m.get('10.71.0.0/24')?.nhid;
    return ecmpOk(m) && typeof id === 'number' && id !== first && m.get('10.71.0.0/24')?.gateway === '10.0.0.2';
  }, 'the deleted object re-created and every route through it back', 10_000, 100);
  t.pass('an object deleted behind skein\'s back is re-asserted with its routes');

  // w0a loses its carrier (the peer end goes down): the kernel deletes every object on w0a by itself, silently
  nsExec(ns, 'ip', ['link', 'set', 'w0b', 'down']);
  await until(async () => {
    const f = await agent.call<{ prefix: string; failure: { code: string } | null }[]>('failures');
    return f.some((x) => x.prefix === '10.71.0.0/24' && x.failure?.code === 'ENETDOWN') && f.some((x) => x.prefix === 'fd71::/64' && x.failure?.code === 'ENETDOWN');
  }, 'routes through w0a reported as waiting for the carrier', 10_000, 100);
  const failing = await agent.call<{ prefix: string }[]>('failures');
  t.notOk(failing.some((x) => x.prefix.startsWith('10.70.')), 'the ECMP routes are no failures: they use their live member meanwhile');
  const down = v4();
  t.notOk(down.has('10.71.0.0/24'), 'the kernel removed the route whose object it deleted');
  const ecmpDown = [...down.values()].filter((x) => x.dst.startsWith('10.70.'));
  t.ok(ecmpDown.length === 200 && ecmpDown.every((x) => x.gateway === '10.0.1.2'), 'the ECMP routes kept the live next hop (the kernel shrank the group)');
  // an object tried on the carrier-less device would be refused by the kernel, which fib/ reports as a warning
  await new Promise((r) => setTimeout(r, 500));
  t.same(agent.events.filter((e) => e.event === 'warning' && String(e.message).includes('refused')), [], 'no object is tried on the carrier-less device meanwhile');

  nsExec(ns, 'ip', ['link', 'set', 'w0b', 'up']);
  await until(() => {
    const m = v4();
    return ecmpOk(m) && m.get('10.71.0.0/24')?.gateway === '10.0.0.2' && v6().get('fd71::/64')?.gateway === 'fd00::2';
  }, 'objects and routes back with the carrier', 15_000, 100);
  t.type(v6().get('fd71::/64')?.nhid, 'number', 'IPv6 route back through an object');
  t.same(await agent.call('failures'), [], 'no failures left');
  t.match(nexthops(ns).find((n) => n.id === 9), { protocol: 'static' }, 'the other protocol\'s object on the live device is untouched');
  // the group that shrank to the survivor while w0a was down is no longer used (the routes moved to a new group):
  // it is deleted while running, not left for the next start
  const unused = (): number[] => {
    const used = new Set<number>();
    for (const r of [...routes(ns, 4, 'proto', PROTO), ...routes(ns, 6, 'proto', PROTO)]) if (typeof r.nhid === 'number') used.add(r.nhid);
    const mine = ours(ns);
    for (const n of mine) if (used.has(n.id)) for (const m of n.group ?? []) used.add(m.id);
    return mine.filter((n) => !used.has(n.id)).map((n) => n.id);
  };
  await until(() => unused().length === 0, 'no object of skein\'s left unused', 10_000, 200).catch(() => undefined);
  if (!t.same(unused(), [], 'objects that fell out of use are deleted while running')) {
    t.comment(nsExec(ns, 'ip', ['nexthop', 'show']), nsExec(ns, 'sh', ['-c', 'ip -o route show proto 171 | sort | uniq -c -f1 | head -5; ip -o route show proto 171 | wc -l']), agent.stderr.slice(-1500));
  }
  t.equal(ours(ns).length, 4, 'exactly the objects in use: 10.0.0.2, 10.0.1.2, fd00::2 and the ECMP group');
  t.match(nexthops(ns).find((n) => n.id === 9), { protocol: 'static' }, 'the other protocol\'s object survives the collection');
  await agent.call('close');
});

/** skein's IPv4 routes as text lines (50k routes of JSON overflow nsExec's default buffer) */
const routeLines = (ns: string): string[] =>
  execFileSync('ip', ['netns', 'exec', ns, 'ip', '-4', 'route', 'show', 'proto', PROTO], { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 60_000 })
    .split('\n').filter((l) => l.trim() !== '' && !/^\s/.test(l)); // an ECMP route's members are indented lines

t.test('a dead next hop\'s deletion does not queue behind a large batch of route writes (its own socket)', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = lab.ns('fibnhu');
  lab.link(ns, ns, 'u0a', 'u0b');
  lab.link(ns, ns, 'u1a', 'u1b');
  lab.addr(ns, 'u0a', '10.0.0.1/24');
  lab.addr(ns, 'u1a', '10.0.1.1/24');
  const agent = await startAgent(t, ns);
  const N = 50_000;
  // N routes over an ECMP pair, installed; then all of them move to a third next hop (N route replaces queued)
  await agent.call('setRange', { range: { base: '10.70.0.0/32', count: N, hops: [{ gw: '10.0.0.2' }, { gw: '10.0.1.2' }] } });
  let st = await agent.call<Stats>('flush');
  t.equal(routeLines(ns).length, N, `${N} routes installed`);
  const dead = ours(ns).find((n) => n.gateway === '10.0.1.2')?.id;
  t.type(dead, 'number', 'an object for the next hop that will die');
  const before = st.urgentSent;
  await agent.call('setRange', { range: { base: '10.70.0.0/32', count: N, hops: [{ gw: '10.0.0.3' }] } });
  st = await agent.call<Stats>('stats');
  t.ok(st.pending > 0, `route writes are queued or in flight (${st.pending})`);
  // 10.0.1.2 dies while the batch is being written
  const sent = await agent.call<number>('nextHopDown', { gw: '10.0.1.2' });
  t.equal(sent, 1, 'one message');
  // The object is gone from the kernel by the time the call returned. Whether the batch is still being written
  // then depends on the machine's speed (on a quiet one it is done; at load 11-20 18k-34k of 50k were pending), so
  // it is reported, not asserted; what is asserted is the path the deletion took.
  t.notOk(ours(ns).some((n) => n.id === dead), 'the dead next hop\'s object left the kernel');
  st = await agent.call<Stats>('stats');
  t.comment(`route writes still pending when the object was already gone: ${st.pending} of ${N}`);
  t.equal(st.urgentSent - before, 1, 'the deletion went out on the urgent socket');
  await agent.call<Stats>('flush');
  const v4 = routeLines(ns);
  t.equal(v4.length, N, 'every route is still there after the batch');
  t.ok(v4.every((l) => / via 10\.0\.0\.3 /.test(l)), 'all through the new next hop');
  t.ok(ours(ns).every((n) => n.gateway !== '10.0.1.2'), 'no object of skein\'s uses the dead next hop');
  await agent.call('close');
});

// An object of skein's deleted while fib/ heard nothing of it: here its RTM_DELNEXTHOP is lost because the agent is
// frozen (SIGSTOP) and its event socket (the smallest buffer) is already full of another protocol's route
// notifications; in life, an overrun under load, or the kernel's silent flush on a carrier flap whose link events
// were lost. The kernel removed the IPv4 routes on it silently too. Before the check, the resync after the overrun
// saw the routes missing and wrote them again with the same nhid, which the kernel refused (EINVAL: no such
// nexthop), retried for ever with that id: the routes stayed out. The periodic check is off here, so only the
// resync's (and the refused writes') check can bring them back.
t.test('an object deleted unseen (its notification lost in an overrun) is re-created with its routes', async (t) => {
  if (!rootOk(t)) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const ns = lab.ns('fibnhv');
  lab.link(ns, ns, 'x0a', 'x0b');
  lab.addr(ns, 'x0a', '10.0.0.1/24');
  const agent = new Agent(ns);
  t.teardown(() => agent.kill());
  await agent.call('start', { opts: { retryMinMs: 100, retryMaxMs: 500, nexthopObjects: true, recvBufferSize: 65536, nexthopCheckMs: 0 } });
  await agent.call('set', { routes: [
    { prefix: '10.72.0.0/24', hops: [{ gw: '10.0.0.2' }] },
    { prefix: '10.73.0.0/24', hops: [{ gw: '10.0.0.2' }] },
  ] });
  await agent.call('markSynced');
  await agent.call('flush');
  const v4 = (): Map<string, IpRoute> => byDst(routes(ns, 4, 'proto', PROTO));
  const first = v4().get('10.72.0.0/24')?.nhid;
  t.type(first, 'number', 'installed through an object');
  t.equal(v4().get('10.73.0.0/24')?.nhid, first, 'both routes on the same object');

  const pid = agent.pid!;
  const lines = Array.from({ length: 3000 }, (_, i) => `route add 10.200.${i >> 8}.${i & 255}/32 dev x0a proto static`);
  const file = `/tmp/skein-fibnhv-${process.pid}.batch`;
  (await import('node:fs')).writeFileSync(file, `${lines.join('\n')}\n`);
  t.teardown(() => (import('node:fs').then((fs) => fs.rmSync(file, { force: true }))));
  process.kill(pid, 'SIGSTOP');
  let left: number;
  try {
    nsExec(ns, 'ip', ['-batch', file]); // fills the frozen agent's event socket
    nsExec(ns, 'ip', ['nexthop', 'del', 'id', String(first)]); // its notification cannot be queued any more
    // read while the agent is still frozen: once it runs it may put the routes back before `ip` could look
    left = v4().size;
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  t.equal(left, 0, 'the kernel took both routes with the object (no notification for IPv4)');
  await until(async () => {
    const m = v4();
    const a = m.get('10.72.0.0/24'), b = m.get('10.73.0.0/24');
    return a?.gateway === '10.0.0.2' && b?.gateway === '10.0.0.2' && typeof a.nhid === 'number' && a.nhid !== first && b.nhid === a.nhid;
  }, 'both routes back through a new object', 15_000, 100).catch(() => undefined);
  const m = v4();
  t.ok(m.get('10.72.0.0/24')?.gateway === '10.0.0.2' && m.get('10.73.0.0/24')?.gateway === '10.0.0.2', 'both routes are back via 10.0.0.2');
  t.not(m.get('10.72.0.0/24')?.nhid, first, 'through a new object, not the deleted id');
  t.ok(agent.events.some((e) => e.event === 'resync'), 'the overrun was seen (a resync ran)');
  const st = await agent.call<Stats & { nexthopRepairs: number }>('stats');
  t.ok(st.nexthopRepairs >= 1, `the nexthop check found it (${st.nexthopRepairs})`);
  t.same(ours(ns).map((n) => n.gateway), ['10.0.0.2'], 'one object of skein\'s: the new one');
  t.equal(routes(ns, 4, 'proto', 'static').length, 3000, 'the other protocol\'s routes are untouched');
  await agent.call('close');
});
