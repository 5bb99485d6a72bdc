// Encapsulated pools in a real kernel (issue 13): two hosts running skeind, three pools — unencapsulated, IPIP
// (Always) and VXLAN — and BGPConfiguration programClusterRoutes Enabled, so BIRD under confd would program the IPIP
// routes via tunl0 onlink (`krt_tunnel="tunl0"`), the plain ones via the next hop and the VXLAN ones not at all
// (Felix does). Then programClusterRoutes goes back to its default and the IPIP route is handed to Felix (removed
// from skein's table) while everything is still announced.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');
const v3 = 'projectcalico.org/v3';

const HOSTS = [
  { name: 'host-a', ip: '10.0.0.1', blocks: ['10.65.0.0/26', '10.66.0.0/26', '10.67.0.0/26'] },
  { name: 'host-b', ip: '10.0.0.2', blocks: ['10.65.0.64/26', '10.66.0.64/26', '10.67.0.64/26'] },
] as const;

function resources(programClusterRoutes: string | undefined): string {
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, ...(programClusterRoutes ? { programClusterRoutes } : {}) } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'plain' }, spec: { cidr: '10.65.0.0/16', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'ipip' }, spec: { cidr: '10.66.0.0/16', blockSize: 26, ipipMode: 'Always', vxlanMode: 'Never' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'vxlan' }, spec: { cidr: '10.67.0.0/16', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Always' } },
  ];
  for (const h of HOSTS) {
    docs.push({ apiVersion: v3, kind: 'Node', metadata: { name: h.name }, spec: { bgp: { ipv4Address: `${h.ip}/24` } } });
    for (const b of h.blocks) docs.push({ apiVersion: v3, kind: 'BlockAffinity', metadata: { name: `${h.name}-${b.replace(/[./]/g, '-')}` }, spec: { node: h.name, cidr: b, state: 'confirmed', deleted: 'false' } });
  }
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

interface KRoute { dst: string; gateway?: string; dev?: string; type?: string; flags?: string[] }
const routesOf = (ns: string): KRoute[] => JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'proto', '171'])) as KRoute[];

t.test('IPIP via tunl0 onlink, VXLAN left to Felix, plain via the next hop; programClusterRoutes followed live', async (t) => {
  if (!requires(t, { root: true })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skeind-encap-'));
  const procs: ChildProcess[] = [];
  const logs = new Map<string, string[]>();
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const [na, nb] = [lab.ns('a'), lab.ns('b')];
  lab.link(na, nb, 'eth0', 'ethb');
  nsExec(nb, 'ip', ['link', 'set', 'ethb', 'down']);
  nsExec(nb, 'ip', ['link', 'set', 'ethb', 'name', 'eth0']);
  nsExec(nb, 'ip', ['link', 'set', 'eth0', 'up']);
  const nsOf = new Map([['host-a', na], ['host-b', nb]]);
  for (const h of HOSTS) {
    const ns = nsOf.get(h.name)!;
    lab.addr(ns, 'eth0', `${h.ip}/24`);
    // tunl0 appears in every namespace once the ipip module is loaded (as on a Calico node). A kernel without ipip
    // (nor dummy) gets one end of a veth pair by that name: enough for the route skein writes, not for traffic.
    if (!nsExec(ns, 'ip', ['-br', 'link']).includes('tunl0')) {
      try {
        nsExec(ns, 'ip', ['link', 'add', 'tunl0', 'type', 'ipip']);
      } catch {
        nsExec(ns, 'ip', ['link', 'add', 'tunl0', 'type', 'veth', 'peer', 'name', 'tunl0p']);
        nsExec(ns, 'ip', ['link', 'set', 'tunl0p', 'up']);
        if (h.name === 'host-a') t.comment('no ipip in this kernel: tunl0 is a veth stand-in');
      }
    }
    nsExec(ns, 'ip', ['link', 'set', 'tunl0', 'up']);
  }
  const resFile = join(dir, 'resources.yaml');
  const write = (pcr: string | undefined): void => {
    writeFileSync(`${resFile}.tmp`, resources(pcr));
    renameSync(`${resFile}.tmp`, resFile);
  };
  write('Enabled');
  for (const h of HOSTS) {
    const cfg = join(dir, `${h.name}.yaml`);
    writeFileSync(cfg, `nodeName: ${h.name}\ndatastore: { type: file, path: ${resFile}, debounce: 50ms }\ncontrol: { socket: ${join(dir, `${h.name}.sock`)} }\nmetrics: { listen: "" }\n`);
    const child = nsSpawn(nsOf.get(h.name)!, 'node', [skeind, '--config', cfg]);
    procs.push(child);
    const lines: string[] = [];
    logs.set(h.name, lines);
    child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
  }
  try {
    const r = await until(() => {
      const x = routesOf(na);
      return x.some((y) => y.dst === '10.65.0.64/26') && x.some((y) => y.dst === '10.66.0.64/26') ? x : undefined;
    }, 'host-a: host-b\'s plain and IPIP blocks in the kernel', 90_000, 250);
    const plain = r?.find((y) => y.dst === '10.65.0.64/26');
    t.same([plain?.gateway, plain?.dev], ['10.0.0.2', 'eth0'], 'plain pool: via the next hop');
    const ipip = r?.find((y) => y.dst === '10.66.0.64/26');
    t.same([ipip?.gateway, ipip?.dev, ipip?.flags?.includes('onlink')], ['10.0.0.2', 'tunl0', true], 'IPIP pool: via 10.0.0.2 dev tunl0 onlink');
    t.notOk(r?.some((y) => y.dst === '10.67.0.64/26'), 'VXLAN pool: not programmed (Felix does it)');
    t.notOk(r?.some((y) => y.dst === '10.67.0.0/26'), 'own VXLAN block not blackholed either: calico_kernel_programming rejects it, Felix writes it');
    t.ok(r?.some((y) => y.dst === '10.66.0.0/26' && y.type === 'blackhole'), 'own IPIP block blackholed (BIRD programs IPIP when Enabled)');

    write(undefined); // programClusterRoutes back to the default, EnabledNoEncapOnly
    await until(() => !routesOf(na).some((y) => y.dst === '10.66.0.64/26'), 'host-a: the IPIP route handed to Felix', 20_000, 200);
    t.ok(routesOf(na).some((y) => y.dst === '10.65.0.64/26' && y.gateway === '10.0.0.2'), 'the plain route stays');
    await until(() => !routesOf(na).some((y) => y.dst === '10.66.0.0/26'), 'host-a: its IPIP block\'s blackhole handed to Felix too', 20_000, 200);
  } catch (e) {
    for (const [h, lines] of logs) t.comment(`--- ${h}\n${lines.slice(-20).join('\n')}`);
    throw e;
  }
});
