// Live-migration loss beside real Calico routing (issue 13): the same migration, in the same run, once with three
// BIRD 2 hosts configured as confd renders them (kernel learn of Felix's routes, calico_aggr with its elevated
// escape, LOCAL_PREF from the kernel metric on export, the override preference on import, krt_metric into the
// kernel) and once with three skeind hosts beside Felix. The test plays Felix on every host as
// test/calico-migration does (proto-80 device routes at 1024; the target's at 512 from the VM's RARP until the
// convergence time is over). It prints the echoes each loses, with the load average; no timing is asserted, only
// that the /32 reaches the target in both.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from './helpers/env.js';
import { Bird } from './helpers/bird.js';
import { Lab, nsExec, nsSpawn, until } from './helpers/netns.js';

const root = join(import.meta.dirname, '..');
const skeind = join(root, 'dist/src/skeind.js');

const HOSTS = [
  { name: 'host-a', ip: '10.0.0.1' },
  { name: 'host-b', ip: '10.0.0.2' },
  { name: 'host-c', ip: '10.0.0.3' },
] as const;
const VM_IP = '10.66.0.5';
const VM_MAC = 'fa:16:3e:12:34:56';
const POD_IP = '10.65.0.130';
const TAP_A = 'tap5c0ffee0-aa';
const TAP_B = 'tap5c0ffee0-bb';
const PORT = '5c0ffee0-aa11-4b22-8c33-d44e55f66a77';
const DEVICE = 'f00dcafe-0000-4000-8000-000000000001';
const v3 = 'projectcalico.org/v3';

const wepName = (host: string): string => `${host.replace(/-/g, '--')}-openstack-${DEVICE.replace(/-/g, '--')}-${PORT.replace(/-/g, '--')}`;
const ref = (host: string): object => ({ hostname: host, orchestratorID: 'openstack', workloadID: `openstack/${DEVICE}`, endpointID: PORT });

function resources(vmOn: string[], migrating: boolean): string {
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

interface KRoute { dst: string; gateway?: string; dev?: string; type?: string; protocol?: string; metric?: number }

// QEMU's announcement after a migration (qemu_announce_self): RARP "reverse request" frames from the VM's MAC.
const RARP = `import socket, struct, sys, time
mac = bytes.fromhex(sys.argv[1].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
frame = b'\\xff' * 6 + mac + struct.pack('!H', 0x8035) + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 3) + mac + bytes(4) + mac + bytes(4)
for i in range(3):
    s.send(frame.ljust(60, b'\\0'))
    time.sleep(0.05)
`;


/** BIRD 2 as confd renders host `h` for resources(): see the header (BIRD 1 syntax turned into channels). */
function birdConfig(h: { name: string; ip: string }): string {
  const blocks = h.name === 'host-c' ? ['10.65.0.128/26'] : [];
  const peers = HOSTS.filter((p) => p !== h);
  return [
    `router id ${h.ip};`,
    'log stderr { warning, error, fatal, bug };',
    'protocol device { scan time 2; }',
    'protocol direct { ipv4; interface -"cali*", -"tap*", -"kube-ipvs*", "*"; }',
    blocks.length ? `protocol static { ipv4; ${blocks.map((b) => `route ${b} blackhole;`).join(' ')} }` : '',
    'function calico_aggr() {',
    ...blocks.flatMap((b) => [`  if (net = ${b}) then { accept; }`, `  if (net ~ ${b} && krt_metric < 1024) then { accept; }`, `  if (net ~ ${b}) then { reject; }`]),
    '}',
    'function calico_export_to_bgp_peers() { calico_aggr(); if (net ~ 10.65.0.0/16) then { accept; } if (net ~ 10.66.0.0/16) then { accept; } }',
    'filter calico_kernel_programming {',
    '  if (source = RTS_DEVICE) then reject;',
    '  if (source = RTS_BGP && !defined(krt_metric)) then { krt_metric = 1024; if (defined(bgp_local_pref)) then krt_metric = 2147483647 - bgp_local_pref; if (krt_metric < 1024) then preference = 200; }',
    '  accept;',
    '}',
    'protocol kernel { ipv4 { import all; export filter calico_kernel_programming; }; metric 0; learn; persist; scan time 2; graceful restart; merge paths on; }',
    'template bgp bgp_template {',
    '  local as 64512; graceful restart; connect delay time 2; connect retry time 5; error wait time 5, 30;',
    '  ipv4 { gateway recursive; add paths on;',
    '    import filter { if (defined(bgp_local_pref) && bgp_local_pref > 2147482623) then preference = 200; accept; };',
    '    export filter { if (source = RTS_BGP && defined(bgp_local_pref)) then krt_metric = 2147483647 - bgp_local_pref; else { if (!defined(krt_metric)) then krt_metric = 1024; bgp_local_pref = 2147483647 - krt_metric; } calico_export_to_bgp_peers(); reject; };',
    '  };',
    '}',
    ...peers.map((p) => `protocol bgp Mesh_${p.ip.replace(/\./g, '_')} from bgp_template { neighbor ${p.ip} as 64512; source address ${h.ip};${p.ip > h.ip ? ' passive on;' : ''} }`),
  ].join('\n') + '\n';
}

t.test('migration loss: BIRD 2 hosts as confd renders them, then skeind hosts, beside Felix', async (t) => {
  if (!requires(t, { root: true, commands: ['ping', 'python3', 'stdbuf', 'bird', 'birdc'] })) return;
  const results: string[] = [];
  for (const kind of ['bird', 'skeind'] as const) {
    await t.test(kind, async (t) => {
      const lab = new Lab();
      const dir = mkdtempSync(join(tmpdir(), 'skeind-c2loss-'));
      const procs: ChildProcess[] = [];
      const birds: Bird[] = [];
      t.teardown(async () => {
        for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
        for (const b of birds) await b.stop();
        lab.destroy();
        rmSync(dir, { recursive: true, force: true });
      });
      const hostNs = lab.bridgedHosts(HOSTS);
      const [hA, hB, hC] = HOSTS.map((h) => hostNs.get(h.name)!) as [string, string, string];
      const workload = (label: string, host: string, hostIf: string, addr: string, mac?: string): string => {
        const ns = lab.ns(label);
        lab.link(ns, host, 'eth0', hostIf);
        nsExec(host, 'sysctl', ['-qw', `net.ipv4.conf.${hostIf}.proxy_arp=1`]);
        if (mac) nsExec(ns, 'ip', ['link', 'set', 'eth0', 'address', mac]);
        lab.addr(ns, 'eth0', `${addr}/32`);
        nsExec(ns, 'ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink']);
        return ns;
      };
      const felix = (ns: string, dst: string, dev: string, metric: number | null, old?: number): void => {
        if (metric !== null) nsExec(ns, 'ip', ['route', 'replace', `${dst}/32`, 'dev', dev, 'proto', '80', 'metric', String(metric), 'scope', 'link']);
        if (old !== undefined) nsExec(ns, 'ip', ['route', 'del', `${dst}/32`, 'dev', dev, 'proto', '80', 'metric', String(old)]);
      };
      const via = (ns: string, gw: string): boolean => (JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'get', VM_IP])) as KRoute[])[0]?.gateway === gw;
      const pod = workload('cl', hC, 'cali0c1b2c3d4e5', POD_IP);
      const vmA = workload('va', hA, TAP_A, VM_IP, VM_MAC);
      felix(hA, VM_IP, TAP_A, 1024);
      felix(hC, POD_IP, 'cali0c1b2c3d4e5', 1024);
      const resFile = join(dir, 'resources.yaml');
      const write = (vmOn: string[], migrating: boolean): void => {
        writeFileSync(`${resFile}.tmp`, resources(vmOn, migrating));
        renameSync(`${resFile}.tmp`, resFile);
      };
      write(['host-a'], false);
      if (kind === 'bird') {
        for (const h of HOSTS) {
          const b = new Bird(hostNs.get(h.name)!);
          birds.push(b);
          await b.start(birdConfig(h));
        }
      } else {
        for (const h of HOSTS) {
          const cfg = join(dir, `${h.name}.yaml`);
          writeFileSync(cfg, `nodeName: ${h.name}\ndatastore: { type: file, path: ${resFile}, debounce: 50ms }\ncontrol: { socket: ${join(dir, `${h.name}.sock`)} }\nmetrics: { listen: "" }\nlog: { level: info }\nfib: { workloadRoutes: false }\n`);
          procs.push(nsSpawn(hostNs.get(h.name)!, 'node', [skeind, '--config', cfg]));
        }
      }
      await until(() => via(hC, '10.0.0.1') && via(hB, '10.0.0.1'), 'the VM routed to host-a everywhere', 120_000, 200);
      const replies = new Set<number>();
      const pinger = nsSpawn(pod, 'stdbuf', ['-oL', 'ping', '-n', '-i', '0.05', '-W', '1', '-c', '2400', VM_IP]);
      procs.push(pinger);
      pinger.stdout!.on('data', (d: Buffer) => {
        for (const m of d.toString().matchAll(/icmp_seq=(\d+)/g)) replies.add(Number(m[1]));
      });
      await until(() => replies.size >= 10, 'pings reach the VM on host-a', 30_000, 100);
      write(['host-a'], true);
      await new Promise((r) => setTimeout(r, 300));
      write(['host-a', 'host-b'], true);
      const vmB = workload('vb', hB, TAP_B, VM_IP, VM_MAC);
      await new Promise((r) => setTimeout(r, 2000)); // the target's watch is open; the tap is operational
      const seqBefore = Math.max(...replies);
      const cutAt = Date.now();
      nsExec(vmA, 'ip', ['link', 'set', 'eth0', 'down']);
      nsExec(vmB, 'python3', ['-c', RARP, VM_MAC]);
      felix(hB, VM_IP, TAP_B, 512);
      await until(() => via(hC, '10.0.0.2') && via(hA, '10.0.0.2'), 'the /32 moved to host-b on host-c and host-a', 60_000, 20);
      const movedMs = Date.now() - cutAt;
      t.pass('the /32 reached the target on host-a and host-c');
      await new Promise((r) => setTimeout(r, 2000));
      write(['host-b'], false);
      felix(hA, VM_IP, TAP_A, null, 1024);
      await new Promise((r) => setTimeout(r, 3000));
      felix(hB, VM_IP, TAP_B, 1024, 512);
      await new Promise((r) => setTimeout(r, 1500));
      pinger.kill('SIGINT');
      const last = Math.max(...replies);
      let lost = 0;
      for (let s = seqBefore + 1; s <= last; s++) if (!replies.has(s)) lost++;
      const line = `${kind}: ${lost} of ${last - seqBefore} echoes lost (one per 50 ms); pause to /32 moved on host-a and host-c ${movedMs} ms; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`;
      results.push(line);
      t.comment(line);
    });
  }
  t.comment(`migration loss beside Felix, same run:\n${results.join('\n')}`);
});
