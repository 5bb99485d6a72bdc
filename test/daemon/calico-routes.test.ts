// The route table's two Calico rules added for issue 13 (src/daemon/routes.ts): an elevated learned path (a live
// migration's target announces it, LOCAL_PREF above 2^31-1 minus the normal priority) beats the local workload route,
// as confd's import filter gives it BIRD's override preference; and an affine block's blackhole goes through the
// kernel policy like any route does in BIRD's calico_kernel_programming, so VXLAN blocks (and IPIP blocks Felix
// programs) are left to Felix.
import t from 'tap';
import { loadResourcesText } from '../../config/index.js';
import { kernelPolicy } from '../../src/controller/index.js';
import { RouteTable } from '../../src/daemon.js';

function recorder(): { rt: RouteTable; calls: string[] } {
  const calls: string[] = [];
  const fake = {
    set: (_f: number, a: Uint8Array, l: number, tg: { blackhole?: boolean; hops?: readonly { dev?: string }[] }, w?: { metric?: number }) =>
      calls.push(`set ${[...a].join('.')}/${l} ${tg.blackhole ? 'blackhole' : (tg.hops ?? []).map((h) => h.dev ?? 'gw').join(',')}${w?.metric !== undefined ? ` metric ${w.metric}` : ''}`),
    remove: (_f: number, a: Uint8Array, l: number, w?: { metric?: number }) => calls.push(`remove ${[...a].join('.')}/${l}${w?.metric !== undefined ? ` metric ${w.metric}` : ''}`),
  };
  const rt = new RouteTable(fake as unknown as ConstructorParameters<typeof RouteTable>[0]);
  rt.setOpen(true);
  return { rt, calls };
}

t.test('an elevated path overrides the local workload route, and only while it is elevated', async (t) => {
  const { rt, calls } = recorder();
  rt.setDevice('10.66.0.5/32', 'tap1');
  rt.setBgp('10.66.0.5/32', ['10.0.0.2']);
  t.equal(rt.desired('10.66.0.5/32')?.kind, 'device', 'a normal path loses to the local route');
  rt.setBgp('10.66.0.5/32', ['10.0.0.2'], 512);
  t.same([rt.desired('10.66.0.5/32')?.kind, rt.desired('10.66.0.5/32')?.nextHops], ['bgp', ['10.0.0.2']], 'an elevated one wins');
  t.equal(rt.metricOf('10.66.0.5/32'), 512, 'written at 2^31-1 minus its LOCAL_PREF');
  rt.setDevice('10.66.0.5/32', null);
  t.equal(rt.desired('10.66.0.5/32')?.kind, 'bgp', 'still the path after the local endpoint goes');
  rt.setDevice('10.66.0.5/32', 'tap1');
  rt.setBgp('10.66.0.5/32', ['10.0.0.2']);
  t.equal(rt.desired('10.66.0.5/32')?.kind, 'device', 'back to normal: the local route again');
  t.equal(rt.metricOf('10.66.0.5/32'), undefined);
  t.same(calls, [
    'set 10.66.0.5/32 tap1',
    'remove 10.66.0.5/32', 'set 10.66.0.5/32 gw metric 512',
    'remove 10.66.0.5/32 metric 512', 'set 10.66.0.5/32 tap1',
  ], 'each change written once; a metric change removes the route at the old metric');
  rt.setBgp('10.66.0.5/32', null, 512);
  t.equal(rt.desired('10.66.0.5/32')?.kind, 'device', 'a withdrawn path overrides nothing');
});

t.test('blackholes of VXLAN blocks (and IPIP blocks Felix programs) are not written', async (t) => {
  const model = (pcr: string): ReturnType<typeof loadResourcesText>['model'] => loadResourcesText(`
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: { name: default }
spec: { programClusterRoutes: ${pcr} }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: vx }
spec: { cidr: 10.67.0.0/16, vxlanMode: Always }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: ip }
spec: { cidr: 10.66.0.0/16, ipipMode: Always }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: plain }
spec: { cidr: 10.65.0.0/16 }
`, 'r.yaml').model;
  const { rt, calls } = recorder();
  rt.setPolicy(kernelPolicy(model('Enabled'), 'h'));
  for (const b of ['10.65.0.0/26', '10.66.0.0/26', '10.67.0.0/26']) rt.setBlackhole(b, true);
  t.same(calls.sort(), ['set 10.65.0.0/26 blackhole', 'set 10.66.0.0/26 blackhole'], 'VXLAN block left to Felix; IPIP programmed by BIRD when Enabled');
  t.equal(rt.desired('10.67.0.0/26'), undefined);
  calls.length = 0;
  rt.setPolicy(kernelPolicy(model('EnabledNoEncapOnly'), 'h'));
  t.same(calls, ['remove 10.66.0.0/26'], 'IPIP handed to Felix: its blackhole goes');
  calls.length = 0;
  rt.setPolicy(kernelPolicy(model('Enabled'), 'h'));
  t.same(calls, ['set 10.66.0.0/26 blackhole'], 'and comes back');
  calls.length = 0;
  rt.setBlackhole('10.67.0.0/26', false);
  t.same(calls, [], 'removing an unwritten blackhole writes nothing');
});

t.test('ordinary learned routes go in at the metric Calico\'s BIRD writes (2^31-1 minus LOCAL_PREF); blackholes and device routes at the default', async (t) => {
  const { kernelMetricOf } = await import('../../src/controller/index.js');
  t.equal(kernelMetricOf(2147483647 - 1024), 1024, 'a mesh route at the normal LOCAL_PREF: 1024');
  t.equal(kernelMetricOf(2147483647 - 512), 512, 'an elevated one: 512');
  t.equal(kernelMetricOf(100), 2147483547, 'an eBGP route (BIRD attaches LOCAL_PREF 100): 2^31-1-100');
  t.equal(kernelMetricOf(undefined), 2147483547, 'no LOCAL_PREF at all: BIRD attaches 100 too');
  t.equal(kernelMetricOf(2147483647), 0, 'LOCAL_PREF 2^31-1: 0, no priority');
  t.equal(kernelMetricOf(0xffffffff), 2147483648, 'above 2^31-1 it wraps as BIRD\'s 32-bit filter integers do');

  const { rt, calls } = recorder();
  rt.setBgp('10.65.1.0/26', ['10.0.0.2'], undefined, 1024);
  t.equal(rt.metricOf('10.65.1.0/26'), 1024, 'a learned block route at 1024');
  rt.setBlackhole('10.65.1.0/26', true);
  t.equal(rt.metricOf('10.65.1.0/26'), undefined, 'the own block\'s blackhole wins, at the default metric as BIRD\'s static route');
  rt.setBlackhole('10.65.1.0/26', false);
  rt.setBgp('10.65.1.0/26', ['10.0.0.2'], undefined, 2147483547);
  rt.setDevice('10.65.2.7/32', 'cali1');
  rt.setBgp('10.65.2.7/32', ['10.0.0.3'], undefined, 1024);
  t.equal(rt.desired('10.65.2.7/32')?.kind, 'device', 'a local workload route still beats an ordinary path');
  t.equal(rt.metricOf('10.65.2.7/32'), undefined);
  rt.setBgp('10.65.1.0/26', null);
  t.same(calls, [
    'set 10.65.1.0/26 gw metric 1024',
    'remove 10.65.1.0/26 metric 1024', 'set 10.65.1.0/26 blackhole',
    'remove 10.65.1.0/26', 'set 10.65.1.0/26 gw metric 1024',
    'remove 10.65.1.0/26 metric 1024', 'set 10.65.1.0/26 gw metric 2147483547',
    'set 10.65.2.7/32 cali1',
    'remove 10.65.1.0/26 metric 2147483547',
  ], 'a metric change is a new kernel route: the one at the old metric goes; nothing else is written');
});
