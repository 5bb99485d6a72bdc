// The live-migration scenario two tests share (test/interop/calico-migration, test/interop/calico-migration-loss): three hosts on one
// segment, a pod on host-c, a VM moving from host-a to host-b, and QEMU's RARP after the move. The datastore is
// written as networking-calico writes it (endpoints.py endpoint_spec and live_migration_spec) or, with shape
// 'kubevirt', as Calico's Kubernetes datastore presents a KubeVirt migration: the VM's endpoints are the
// virt-launcher pods' (orchestrator k8s), and the LiveMigration is what libcalico-go's converter makes of the
// VirtualMachineInstanceMigration (libcalico-go/lib/backend/k8s/resources/livemigration.go
// convertVMIMToLiveMigration): a target *selector* on the VMI-name labels and the migration job's UID, and a source
// naming the source pod as a k8s workload ("<namespace>/<pod>", no hostname, no endpoint), present only once
// KubeVirt reports the source pod (in the earliest phases the LiveMigration has a target only).
import type { Lab } from './netns.js';
import { nsExec } from './netns.js';

export const HOSTS = [
  { name: 'host-a', ip: '10.0.0.1' },
  { name: 'host-b', ip: '10.0.0.2' },
  { name: 'host-c', ip: '10.0.0.3' },
] as const;
export const VM_IP = '10.66.0.5';
export const VM_MAC = 'fa:16:3e:12:34:56';
export const POD_IP = '10.65.0.130';
export const TAP_A = 'tap5c0ffee0-aa';
export const TAP_B = 'tap5c0ffee0-bb';
const PORT = '5c0ffee0-aa11-4b22-8c33-d44e55f66a77';
const DEVICE = 'f00dcafe-0000-4000-8000-000000000001';

const v3 = 'projectcalico.org/v3';

const wepName = (host: string): string => `${host.replace(/-/g, '--')}-openstack-${DEVICE.replace(/-/g, '--')}-${PORT.replace(/-/g, '--')}`;
const ref = (host: string): object => ({ hostname: host, orchestratorID: 'openstack', workloadID: `openstack/${DEVICE}`, endpointID: PORT });

export type Shape = 'openstack' | 'kubevirt';
const KV_NS = 'vms';
const KV_VMI = 'vm1';
const KV_JOB = '7c6d2a1e-5b3f-4e2a-9d10-2f4b6c8e0a11';
/** The virt-launcher pod of each host (pod names carry a random suffix, as Kubernetes gives them). */
const launcher = (host: string): string => `virt-launcher-${KV_VMI}-${host === 'host-a' ? 'x7k2p' : 'q9m4d'}`;

export function resources(vmOn: string[], migrating: boolean, shape: Shape = 'openstack'): string {
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: true, logSeverityScreen: 'Info' } },
    { apiVersion: v3, kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { liveMigrationRouteConvergenceTime: '3s', reportingInterval: '0s' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.65.0.0/16', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: shape }, spec: { cidr: '10.66.0.0/16', ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()' } },
    { apiVersion: v3, kind: 'BlockAffinity', metadata: { name: 'host-c-10-65-0-128-26' }, spec: { node: 'host-c', cidr: '10.65.0.128/26', state: 'confirmed', deleted: 'false' } },
    {
      apiVersion: v3, kind: 'WorkloadEndpoint',
      metadata: { name: 'host--c-k8s-client-eth0', namespace: 'default' },
      spec: { orchestrator: 'k8s', node: 'host-c', pod: 'client', endpoint: 'eth0', interfaceName: 'cali0c1b2c3d4e5', ipNetworks: [`${POD_IP}/32`] },
    },
  ];
  for (const h of HOSTS) docs.push({ apiVersion: v3, kind: 'Node', metadata: { name: h.name }, spec: { bgp: { ipv4Address: `${h.ip}/24` } } });
  if (shape === 'kubevirt') {
    for (const host of vmOn) {
      // the CNI plugin's endpoint of a virt-launcher pod: its labels are the pod's (KubeVirt puts the VMI name on
      // it and, on a migration's target pod, the migration job's UID; host-a's pod was the target of an earlier
      // migration, so it carries that job's UID) plus Calico's own
      const pod = launcher(host);
      docs.push({
        apiVersion: v3, kind: 'WorkloadEndpoint',
        metadata: {
          name: `${host.replace(/-/g, '--')}-k8s-${pod.replace(/-/g, '--')}-eth0`, namespace: KV_NS,
          labels: {
            'projectcalico.org/namespace': KV_NS, 'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/serviceaccount': 'default',
            'kubevirt.io': 'virt-launcher', 'vmi.kubevirt.io/id': KV_VMI, 'vm.kubevirt.io/name': KV_VMI,
            'kubevirt.io/migrationJobUID': host === 'host-b' ? KV_JOB : '0b1c2d3e-0000-4000-8000-00000000beef',
          },
        },
        spec: { orchestrator: 'k8s', node: host, pod, endpoint: 'eth0', interfaceName: host === 'host-a' ? TAP_A : TAP_B, mac: VM_MAC, ipNetworks: [`${VM_IP}/32`] },
      });
    }
    if (migrating) {
      const selector = `(vmi.kubevirt.io/id == '${KV_VMI}' || vm.kubevirt.io/name == '${KV_VMI}') && kubevirt.io/migrationJobUID == '${KV_JOB}'`;
      const source = vmOn.includes('host-b') ? { source: { workload: { orchestratorID: 'k8s', workloadID: `${KV_NS}/${launcher('host-a')}` } } } : {};
      docs.push({ apiVersion: v3, kind: 'LiveMigration', metadata: { name: `kubevirt-migrate-${KV_VMI}`, namespace: KV_NS, uid: KV_JOB }, spec: { target: { selector }, ...source } });
    }
    return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
  }
  for (const host of vmOn) {
    // networking-calico endpoints.py endpoint_spec
    docs.push({
      apiVersion: v3, kind: 'WorkloadEndpoint',
      metadata: { name: wepName(host), namespace: 'openstack', labels: { 'projectcalico.org/namespace': 'openstack', 'projectcalico.org/orchestrator': 'openstack' } },
      spec: { orchestrator: 'openstack', workload: DEVICE, node: host, endpoint: PORT, interfaceName: host === 'host-a' ? TAP_A : TAP_B, mac: VM_MAC, ipNetworks: [`${VM_IP}/32`] },
    });
  }
  // networking-calico endpoints.py live_migration_spec, named after the destination endpoint
  if (migrating) docs.push({ apiVersion: v3, kind: 'LiveMigration', metadata: { name: wepName('host-b'), namespace: 'openstack', uid: 'lm-1' }, spec: { source: { workloadEndpoint: ref('host-a') }, target: { workloadEndpoint: ref('host-b') } } });
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

// QEMU's announcement after a migration (qemu_announce_self): RARP "reverse request" frames from the VM's MAC.
export const RARP = `import socket, struct, sys, time
mac = bytes.fromhex(sys.argv[1].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
frame = b'\\xff' * 6 + mac + struct.pack('!H', 0x8035) + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 3) + mac + bytes(4) + mac + bytes(4)
for i in range(3):
    s.send(frame.ljust(60, b'\\0'))
    time.sleep(0.05)
`;

/** A workload as Calico plugs it: a veth/tap per workload, proxy ARP on the host side, default via 169.254.1.1. */
export function plugWorkload(lab: Lab, label: string, host: string, hostIf: string, addr: string, mac?: string): string {
  const ns = lab.ns(label);
  lab.link(ns, host, 'eth0', hostIf);
  nsExec(host, 'sysctl', ['-qw', `net.ipv4.conf.${hostIf}.proxy_arp=1`]);
  if (mac) nsExec(ns, 'ip', ['link', 'set', 'eth0', 'address', mac]);
  lab.addr(ns, 'eth0', `${addr}/32`);
  nsExec(ns, 'ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink']);
  return ns;
}
