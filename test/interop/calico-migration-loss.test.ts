// Live-migration loss beside real Calico routing (issue 13): the same migration, in the same run, once with three
// BIRD 2 hosts configured as confd renders them (kernel learn of Felix's routes, calico_aggr with its elevated
// escape, LOCAL_PREF from the kernel metric on export, the override preference on import, krt_metric into the
// kernel) and once with three skeind hosts beside Felix. The test plays Felix on every host as
// test/interop/calico-migration does (proto-80 device routes at 1024; the target's at 512 from the VM's RARP until the
// convergence time is over). It prints the echoes each loses, with the load average; no timing is asserted, only
// that the /32 reaches the target in both.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { Bird } from '../helpers/bird.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { HOSTS, POD_IP, RARP, TAP_A, TAP_B, VM_IP, VM_MAC, plugWorkload, resources } from '../helpers/migration.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');

interface KRoute { dst: string; gateway?: string; dev?: string; type?: string; protocol?: string; metric?: number }

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
      const felix = (ns: string, dst: string, dev: string, metric: number | null, old?: number): void => {
        if (metric !== null) nsExec(ns, 'ip', ['route', 'replace', `${dst}/32`, 'dev', dev, 'proto', '80', 'metric', String(metric), 'scope', 'link']);
        if (old !== undefined) nsExec(ns, 'ip', ['route', 'del', `${dst}/32`, 'dev', dev, 'proto', '80', 'metric', String(old)]);
      };
      const via = (ns: string, gw: string): boolean => (JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'get', VM_IP])) as KRoute[])[0]?.gateway === gw;
      const workload = (label: string, host: string, hostIf: string, addr: string, mac?: string): string => plugWorkload(lab, label, host, hostIf, addr, mac);
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
