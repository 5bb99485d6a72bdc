// Pieces the beside-Felix tests share (test/interop/calico-felix*.test.ts): their three hosts and workloads, the
// resources every one of them has, the workloads' namespaces, a one-shot ping, skeinctl's JSON, the routes of one
// protocol in a namespace, skeind with its log kept, and the Felix stand-ins (test/helpers/felix-standin.sh) with their
// output.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { runCommand } from './run.js';
import { nsExec, nsSpawn, type Lab } from './netns.js';

const root = join(import.meta.dirname, '..', '..');
const skeinctl = join(root, 'dist/src/skeinctl.js');
const standin = join(root, 'test/helpers/felix-standin.sh');

export interface FelixWorkload { name: string; host: string; ip: string; ifname: string; kind: 'pod' | 'vm'; floating?: string }

/** Three hosts on one L2 segment, a /26 block each. */
export const FELIX_HOSTS = [
  { name: 'host-a', ip: '10.0.0.1', block: '10.65.0.0/26' },
  { name: 'host-b', ip: '10.0.0.2', block: '10.65.0.64/26' },
  { name: 'host-c', ip: '10.0.0.3', block: '10.65.0.128/26' },
] as const;

export const FELIX_WORKLOADS: readonly FelixWorkload[] = [
  { name: 'a1', host: 'host-a', ip: '10.65.0.2', ifname: 'cali0a1b2c3d4e5', kind: 'pod' },
  { name: 'b1', host: 'host-b', ip: '10.65.0.66', ifname: 'cali0b1b2c3d4e5', kind: 'pod' },
  { name: 'c1', host: 'host-c', ip: '10.65.0.130', ifname: 'cali0c1b2c3d4e5', kind: 'pod' },
  // borrowed: on host-c, allocated from host-a's block
  { name: 'c2', host: 'host-c', ip: '10.65.0.10', ifname: 'cali0c2b2c3d4e5', kind: 'pod' },
  // an OpenStack VM: Neutron assigns its address, no IPAM block covers it
  // with a floating IP (networking-calico's ipNATs) inside the OpenStack pool
  { name: 'vm1', host: 'host-b', ip: '10.66.0.5', ifname: 'tap6f1e2d3c-4b', kind: 'vm', floating: '10.66.1.50' },
];

const v3 = 'projectcalico.org/v3';

/** ClusterInformation, the mesh's BGPConfiguration, the pod and OpenStack pools, each host's Node and BlockAffinity. */
export function felixClusterDocs(datastoreReady = true): unknown[] {
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady, clusterGUID: 'b1c2d3e4f5a6', calicoVersion: 'v3.31.0' } },
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: true, logSeverityScreen: 'Info' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.65.0.0/16', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: true, nodeSelector: 'all()' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'openstack' }, spec: { cidr: '10.66.0.0/16', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()' } },
  ];
  for (const h of FELIX_HOSTS) {
    docs.push({ apiVersion: v3, kind: 'Node', metadata: { name: h.name }, spec: { bgp: { ipv4Address: `${h.ip}/24` } } });
    docs.push({ apiVersion: v3, kind: 'BlockAffinity', metadata: { name: `${h.name}-${h.block.replace(/[./]/g, '-')}` }, spec: { node: h.name, cidr: h.block, state: 'confirmed', deleted: 'false' } });
  }
  return docs;
}

/** A pod's WorkloadEndpoint as the CNI plugin writes it. */
export function podEndpointDoc(w: Pick<FelixWorkload, 'name' | 'host' | 'ip' | 'ifname'>): unknown {
  return {
    apiVersion: v3, kind: 'WorkloadEndpoint',
    metadata: { name: `${w.host.replace(/-/g, '--')}-k8s-${w.name}-eth0`, namespace: 'default', labels: { 'projectcalico.org/namespace': 'default', 'projectcalico.org/orchestrator': 'k8s' } },
    spec: { orchestrator: 'k8s', node: w.host, pod: w.name, endpoint: 'eth0', interfaceName: w.ifname, ipNetworks: [`${w.ip}/32`] },
  };
}

/** The resources file's text: one JSON document each. */
export const docsYaml = (docs: readonly unknown[]): string => docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');

/**
 * A namespace per workload, linked to its host by a veth named as Felix names it (proxy ARP on the host side, the
 * default route via 169.254.1.1 as Calico's CNI sets it). A floating IP is the VM's own address too: Felix DNATs it,
 * the stand-in has no iptables. Returns each workload's namespace.
 */
export function wireWorkloads(lab: Lab, nsOf: (host: string) => string, workloads: readonly Pick<FelixWorkload, 'name' | 'host' | 'ip' | 'ifname' | 'floating'>[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const w of workloads) {
    const host = nsOf(w.host);
    const ns = lab.ns(w.name);
    out.set(w.name, ns);
    lab.link(ns, host, 'eth0', w.ifname);
    nsExec(host, 'sysctl', ['-qw', `net.ipv4.conf.${w.ifname}.proxy_arp=1`]);
    lab.addr(ns, 'eth0', `${w.ip}/32`);
    if (w.floating !== undefined) lab.addr(ns, 'eth0', `${w.floating}/32`);
    nsExec(ns, 'ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink']);
  }
  return out;
}

/**
 * What the Felix stand-in of `host` writes (address, device...): each workload's address, and a floating IP to the
 * VM's interface like its own (felix/dataplane/linux/endpoint_mgr.go).
 */
export const standinRoutes = (workloads: readonly FelixWorkload[]) => (host: string): string[] =>
  workloads.filter((w) => w.host === host).flatMap((w) => [w.ip, w.ifname, ...(w.floating ? [w.floating, w.ifname] : [])]);

/** skeind in `ns` with `cfg`, its stdout lines and stderr kept in `logs` under `name`. */
export function spawnSkeind(ns: string, cfg: string, name: string, logs: Map<string, string[]>, procs: ChildProcess[]): ChildProcess {
  const child = nsSpawn(ns, 'node', [join(root, 'dist/src/skeind.js'), '--config', cfg]);
  procs.push(child);
  const lines: string[] = [];
  logs.set(name, lines);
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
  return child;
}

/** One echo request from `ns` to `to`, answered within a second. */
export function pingOnce(ns: string, to: string): boolean {
  try {
    nsExec(ns, 'ping', ['-c', '1', '-W', '1', to], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** `skeinctl --socket SOCK ARGS --json`, parsed (exit 1 is an answer too: a prefix with no route, a peer down). */
export async function ctlJson(sock: string, ...args: string[]): Promise<Record<string, unknown>> {
  const r = await runCommand('node', [skeinctl, '--socket', sock, ...args, '--json'], { timeoutMs: 15_000 });
  if (r.code !== 0 && r.code !== 1) throw new Error(`skeinctl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as Record<string, unknown>;
}

export interface KRoute { dst: string; gateway?: string; dev?: string; type?: string; protocol?: string; metric?: number }

/** `ip -j route show proto PROTO` in a namespace. */
export const routesOf = (ns: string, proto: string): KRoute[] => JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'proto', proto])) as KRoute[];

/**
 * A Felix stand-in per host, writing `routes(host)` (address, device, address, device...) every 300 ms, at most 1500
 * sweeps. `sweeps` counts each host's sweeps; `out` keeps what else it printed (restore, delete, error lines).
 */
export function startFelixStandins(hosts: readonly string[], nsOf: (host: string) => string, routes: (host: string) => string[],
  procs: ChildProcess[]): { sweeps: Map<string, number>; out: Map<string, string[]> } {
  const sweeps = new Map<string, number>();
  const out = new Map<string, string[]>();
  for (const h of hosts) {
    const p = nsSpawn(nsOf(h), 'bash', [standin, '1500', '0.3', ...routes(h)]);
    procs.push(p);
    const lines: string[] = [];
    out.set(h, lines);
    sweeps.set(h, 0);
    let buf = '';
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const got = buf.split('\n');
      buf = got.pop()!;
      for (const l of got) {
        if (l.startsWith('sweep ')) sweeps.set(h, Number(l.slice(6)));
        else lines.push(l);
      }
    });
    p.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString().trim()}`));
  }
  return { sweeps, out };
}
