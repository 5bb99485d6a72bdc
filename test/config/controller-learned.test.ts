// Routes learned from the kernel (fib.learn) through Calico's export filter, as confd renders it for BIRD:
// bird_ipam.cfg.template calico_export_to_bgp_peers (disabled pools first, the tunnel interfaces towards iBGP,
// reject_local_routes, calico_aggr, the static ranges, the pools), bird_aggr.cfg.template calico_aggr (`krt_metric <
// normal` lets a route out from under its block) and bgp_processor.go buildExportFilter (LOCAL_PREF = 2^31-1 minus
// krt_metric; Calico's BIRD gives a kernel route without a metric krt_metric 0: projectcalico/bird
// sysdep/linux/netlink.c nl_parse_route and sysdep/unix/krt.c krt_make_tmp_attrs). The deviation (tunnel routes
// rejected towards eBGP too) is documented in src/controller/originate.ts.
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { BIRD_INT_MAX, NodeController, deriveOriginations, type KernelOrigin } from '../../src/controller/index.js';
import { loadModel as load, resourceYaml as y } from '../helpers/model.js';

const aff = (node: string, cidr: string): string =>
  y('BlockAffinity', `${node}-${cidr.replace(/[./:]/g, '-')}`, `{ node: ${node}, cidr: "${cidr}", state: confirmed, deleted: "false" }`);

const CLUSTER = y('BGPConfiguration', 'default', `{
    serviceClusterIPs: [{ cidr: 10.96.0.0/12 }],
    communities: [{ name: pods, value: "65000:100" }],
    prefixAdvertisements: [{ cidr: 10.65.0.0/16, communities: [pods] }] }`)
  + y('IPPool', 'pods-v4', '{ cidr: 10.65.0.0/16, blockSize: 26 }')
  + y('IPPool', 'private', '{ cidr: 10.80.0.0/16, disableBGPExport: true }')
  + y('IPPool', 'pods-v6', '{ cidr: "fd00:65::/48", blockSize: 122 }')
  + y('Node', 'n1', '{ bgp: { ipv4Address: 10.0.0.1/24 } }')
  + aff('n1', '10.65.1.0/26')
  + aff('n1', 'fd00:65::/122');

const k = (prefix: string, metric: number, ifname?: string, protocol = 80): KernelOrigin => ({ prefix, metric, protocol, ...(ifname !== undefined ? { ifname } : {}) });

t.test('learned routes: what Calico\'s export filter lets out, and nothing more', (t) => {
  const learned = [
    k('10.65.1.5/32', 1024, 'cali1'), // under this node's block at the normal priority: hidden by the aggregate
    k('10.65.1.6/32', 0, 'cali2'), // no metric from the kernel: krt_metric 0, below the normal priority: out at the top
    k('10.65.1.7/32', 512, 'cali3'), // elevated (a live migration's target): out from under the block
    k('10.65.9.7/32', 1024, 'cali4'), // borrowed from another node's block
    k('10.65.9.8/32', 0, 'tap5', 4), // an operator's static route inside a pool, no metric
    k('10.80.2.3/32', 1024, 'cali6'), // a pool with disableBGPExport
    k('192.168.50.5/32', 1024, 'cali7'), // outside every pool
    k('10.65.20.0/26', 0, 'vxlan.calico'), // Felix's VXLAN route to another node's block
    k('10.65.21.0/26', 0, 'wireguard.cali'), // Felix's WireGuard route
    k('10.65.22.0/26', 0, 'tunl0'), // Felix's IPIP route
    k('10.65.23.4/32', 0, 'bpfout.cali'), // eBPF's local route
    k('10.96.5.5/32', 0, 'kube-ipvs0', 4), // inside a service range (Calico's static routes accept it)
    k('10.65.1.0/26', 0, undefined, 80), // Felix's blackhole for this node's block: the block, once
    k('fd00:65::1:9/128', 1024, 'cali8'), // IPv6, borrowed
    k('fd00:65::9/128', 1024, 'cali9'), // IPv6, under this node's block
  ];
  const o = deriveOriginations(load(CLUSTER), 'n1', undefined, learned);
  t.same(o.announce.map((a) => [a.prefix, a.kind, a.localPref]), [
    ['10.65.1.0/26', 'block', BIRD_INT_MAX - 1024],
    ['10.65.1.6/32', 'kernel', BIRD_INT_MAX],
    ['10.65.1.7/32', 'kernel', BIRD_INT_MAX - 512],
    ['10.65.9.7/32', 'kernel', BIRD_INT_MAX - 1024],
    ['10.65.9.8/32', 'kernel', BIRD_INT_MAX],
    ['10.96.0.0/12', 'service', BIRD_INT_MAX - 1024],
    ['10.96.5.5/32', 'kernel', BIRD_INT_MAX],
    ['fd00:65::/122', 'block', BIRD_INT_MAX - 1024],
    ['fd00:65::1:9/128', 'kernel', BIRD_INT_MAX - 1024],
  ], 'not under the block at the normal priority (10.65.1.5, fd00:65::9), not in a disabled pool or outside the pools, not through a tunnel or eBPF interface');
  const by = Object.fromEntries(o.announce.map((a) => [a.prefix, a]));
  t.same(by['10.65.9.7/32']?.communities, [[65000, 100]], 'prefixAdvertisements apply to learned routes too');
  t.same(by['10.65.9.8/32']?.sources, ['kernel route proto 4 dev tap5']);
  t.same(by['10.65.1.0/26']?.sources, ['BlockAffinity/n1/10.65.1.0/26', 'kernel route proto 80'], 'the block: one announcement, both sources');
  t.same(o.deviceRoutes, [], 'nothing learned is written back as a device route');
  t.same(deriveOriginations(load(CLUSTER), 'n1').announce.map((a) => a.prefix), ['10.65.1.0/26', '10.96.0.0/12', 'fd00:65::/122'], 'without learned routes: blocks and services only');
  t.end();
});

t.test('learned routes: the normal priority comes from BGPConfiguration', (t) => {
  const model = load(CLUSTER.replace('serviceClusterIPs:', 'ipv4NormalRoutePriority: 600, serviceClusterIPs:'));
  const o = deriveOriginations(model, 'n1', undefined, [k('10.65.1.7/32', 512, 'cali3'), k('10.65.1.8/32', 700, 'cali4'), k('10.65.9.7/32', 0, 'cali5')]);
  t.same(o.announce.filter((a) => a.kind === 'kernel').map((a) => [a.prefix, a.localPref]), [
    ['10.65.1.7/32', BIRD_INT_MAX - 512],
    ['10.65.9.7/32', BIRD_INT_MAX],
  ], '512 < 600 escapes the block, 700 does not; no metric is krt_metric 0');
  t.end();
});

t.test('learned routes: the static ranges are the service ranges this node advertises, no more', (t) => {
  // confd/pkg/backends/calico/client.go updateGlobalRoutes: the load-balancer ranges only while aggregation is
  // Enabled, and a single external or load-balancer address is no static route at all
  const model = load(CLUSTER.replace('serviceClusterIPs:', `serviceLoadBalancerAggregation: Disabled,
    serviceLoadBalancerIPs: [{ cidr: 203.0.113.0/24 }], serviceExternalIPs: [{ cidr: 198.51.100.77/32 }], serviceClusterIPs:`));
  const o = deriveOriginations(model, 'n1', undefined, [k('203.0.113.9/32', 0, 'kube-ipvs0', 4), k('198.51.100.77/32', 0, 'kube-ipvs0', 4), k('10.96.0.9/32', 0, 'kube-ipvs0', 4)]);
  t.same(o.announce.filter((a) => a.kind !== 'block').map((a) => [a.prefix, a.kind]), [
    ['10.96.0.0/12', 'service'],
    ['10.96.0.9/32', 'kernel'],
  ], 'not inside the load-balancer range (aggregation off), not the single external IP');
  t.end();
});

t.test('NodeController.setLearned: diffs as routes come and go', (t) => {
  const c = new NodeController('n1');
  c.update(load(CLUSTER));
  let d = c.setLearned([k('10.65.9.7/32', 1024, 'cali4')]);
  t.same(d.announce.added.map((a) => a.prefix), ['10.65.9.7/32']);
  d = c.setLearned([k('10.65.9.7/32', 1024, 'cali4')]);
  t.same([d.announce.added.length, d.announce.changed.length, d.announce.removed.length], [0, 0, 0], 'the same set: no change');
  d = c.setLearned([k('10.65.9.7/32', 512, 'cali4')]);
  t.same(d.announce.changed.map((x) => [x.key, x.fields]), [['10.65.9.7/32', ['localPref', 'sources']]], 'a new metric changes LOCAL_PREF');
  d = c.setLearned([]);
  t.same(d.announce.removed.map((a) => a.prefix), ['10.65.9.7/32']);
  // a datastore change keeps the learned set: a new pool does not forget the kernel's routes
  c.setLearned([k('10.81.0.1/32', 1024, 'cali9')]);
  t.same(c.state.announce.map((a) => a.prefix), ['10.65.1.0/26', '10.96.0.0/12', 'fd00:65::/122'], 'outside every pool: not announced');
  d = c.update(load(CLUSTER + y('IPPool', 'more', '{ cidr: 10.81.0.0/16 }')));
  t.same(d.announce.added.map((a) => a.prefix), ['10.81.0.1/32'], 'announced once a pool covers it');
  t.end();
});

t.test('NodeController.changeLearned: one prefix at a time gives what the whole set gives (generated)', async (t) => {
  const { default: fc } = await import('fast-check');
  const { applyDiff } = await import('../../src/controller/index.js');
  // Candidates that reach every rule: under this node's blocks (below, at and above the normal priority), a block
  // itself, borrowed from another block, a disabled pool, outside every pool, inside and equal to a service range,
  // tunnel and eBPF interfaces, IPv6; the community rule covers some of them.
  const prefixes = ['10.65.1.5/32', '10.65.1.6/32', '10.65.1.0/26', '10.65.9.7/32', '10.65.9.8/32', '10.80.2.3/32', '192.168.50.5/32',
    '10.96.5.5/32', '10.96.0.0/12', '10.65.20.0/26', 'fd00:65::9/128', 'fd00:65::1:9/128', 'fd00:65::/122', '10.66.0.1/32'];
  const route = fc.record({
    prefix: fc.constantFrom(...prefixes),
    metric: fc.constantFrom(0, 512, 1024, 1500),
    protocol: fc.constantFrom(80, 4, 3),
    ifname: fc.option(fc.constantFrom('cali1', 'tap2', 'vxlan.calico', 'bpfout.cali', 'kube-ipvs0'), { nil: undefined }),
  }).map((r): KernelOrigin => k(r.prefix, r.metric, r.ifname, r.protocol));
  // a step: some prefixes get a route (or a new one), some lose theirs; now and then the datastore changes
  const step = fc.record({
    set: fc.array(route, { maxLength: 4 }),
    drop: fc.array(fc.constantFrom(...prefixes), { maxLength: 3 }),
    model: fc.option(fc.constantFrom('plain', 'morePool', 'noCommunities', 'secondBlock', 'normal600'), { nil: undefined }),
  });
  const models: Record<string, string> = {
    plain: CLUSTER,
    morePool: CLUSTER + y('IPPool', 'more', '{ cidr: 10.66.0.0/16 }'),
    noCommunities: CLUSTER.replace('prefixAdvertisements: [{ cidr: 10.65.0.0/16, communities: [pods] }]', 'prefixAdvertisements: []'),
    secondBlock: CLUSTER + aff('n1', '10.65.9.0/26'),
    normal600: CLUSTER.replace('serviceClusterIPs:', 'ipv4NormalRoutePriority: 600, serviceClusterIPs:'),
  };
  const loaded = new Map(Object.entries(models).map(([name, text]) => [name, load(text)]));
  fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 12 }), (steps) => {
    const inc = new NodeController('n1');
    const whole = new NodeController('n1');
    inc.update(loaded.get('plain')!);
    whole.update(loaded.get('plain')!);
    const learned = new Map<string, KernelOrigin>();
    for (const s of steps) {
      if (s.model !== undefined) {
        const a = inc.update(loaded.get(s.model)!);
        const b = whole.update(loaded.get(s.model)!);
        if (!isDeepStrictEqual(a, b)) return false;
      }
      const changes = new Map<string, KernelOrigin | undefined>();
      for (const r of s.set) {
        learned.set(r.prefix, r);
        changes.set(r.prefix, r);
      }
      for (const p of s.drop) {
        learned.delete(p);
        changes.set(p, undefined);
      }
      const before = inc.state;
      const d = inc.changeLearned(changes);
      const w = whole.setLearned([...learned.values()]);
      // the same state and the same diff, and the diff takes the old state to the new one
      if (!isDeepStrictEqual(inc.state, whole.state)) return false;
      if (!isDeepStrictEqual(d, w)) return false;
      if (!isDeepStrictEqual(applyDiff(before, d), inc.state)) return false;
    }
    return true;
  }), { numRuns: 300 });
  t.pass('300 generated sequences: equal states and diffs');
  t.end();
});
