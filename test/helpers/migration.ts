// The OpenStack live-migration scenario two tests share (test/calico-migration, test/calico-migration-loss): three
// hosts on one segment, a pod on host-c, a VM moving from host-a to host-b, the datastore as networking-calico
// writes it (endpoints.py endpoint_spec and live_migration_spec), and QEMU's RARP after the move.
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

export function resources(vmOn: string[], migrating: boolean): string {
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: true, logSeverityScreen: 'Info' } },
    { apiVersion: v3, kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { liveMigrationRouteConvergenceTime: '3s', reportingInterval: '0s' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.65.0.0/16', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'openstack' }, spec: { cidr: '10.66.0.0/16', ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()' } },
    { apiVersion: v3, kind: 'BlockAffinity', metadata: { name: 'host-c-10-65-0-128-26' }, spec: { node: 'host-c', cidr: '10.65.0.128/26', state: 'confirmed', deleted: 'false' } },
    {
      apiVersion: v3, kind: 'WorkloadEndpoint',
      metadata: { name: 'host--c-k8s-client-eth0', namespace: 'default' },
      spec: { orchestrator: 'k8s', node: 'host-c', pod: 'client', endpoint: 'eth0', interfaceName: 'cali0c1b2c3d4e5', ipNetworks: [`${POD_IP}/32`] },
    },
  ];
  for (const h of HOSTS) docs.push({ apiVersion: v3, kind: 'Node', metadata: { name: h.name }, spec: { bgp: { ipv4Address: `${h.ip}/24` } } });
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
