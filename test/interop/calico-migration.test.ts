// An OpenStack live migration between two skeind hosts with pings running (issue 13), standalone; and the same
// migration as KubeVirt makes it, beside Felix (the datastore as Calico's Kubernetes datastore presents it:
// test/helpers/migration.ts). Beside Felix the test plays Felix's routes; the migration's dataplane side does not
// depend on the orchestrator, so OpenStack is run standalone and KubeVirt beside Felix (each run is ~30 s). Three hosts on one L2
// segment run skeind standalone (skein writes the workload routes, as Felix would); a pod on host-c pings a VM that
// moves from host-a to host-b. The datastore is written in networking-calico's order (the LiveMigration resource,
// the destination WorkloadEndpoint, then on completion both removed together with the source endpoint); the VM's
// resumption is a RARP from its new tap, as QEMU sends. Checks, against Calico's rules (src/controller/migration.ts):
//   - while the VM still runs on host-a (Target), host-b neither routes nor announces it;
//   - at the RARP the /32 moves: host-c and host-a (which still has its own endpoint) route it via host-b;
//   - pings are lost only between the pause on host-a and that move, never after it;
//   - after completion exactly one host announces the /32: one path in host-a's and host-c's Loc-RIB, one route in
//     their kernels; after liveMigrationRouteConvergenceTime the LOCAL_PREF drops back to the normal one.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { runCommand } from '../helpers/run.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { HOSTS, POD_IP, RARP, TAP_A, TAP_B, VM_IP, VM_MAC, plugWorkload, resources } from '../helpers/migration.js';
import { formatIssue, loadResourcesText } from '../../config/index.js';
import { migrationRoles } from '../../src/controller/migration.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeind = join(root, 'dist/src/skeind.js');
const skeinctl = join(root, 'dist/src/skeinctl.js');

const NORMAL_LP = 2147483647 - 1024;
const ELEVATED_LP = 2147483647 - 512;

interface KRoute { dst: string; gateway?: string; dev?: string; type?: string; protocol?: string; metric?: number }
const routesTo = (ns: string, dst: string): KRoute[] => (JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'table', 'main'])) as KRoute[]).filter((r) => r.dst === dst);

interface PathJ { from: string; nextHops: string[]; localPref: number }
async function ctl(sock: string, ...args: string[]): Promise<Record<string, unknown>> {
  const r = await runCommand('node', [skeinctl, '--socket', sock, ...args, '--json'], { timeoutMs: 15_000 });
  if (r.code !== 0 && r.code !== 1) throw new Error(`skeinctl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as Record<string, unknown>;
}
async function locRib(sock: string, prefix: string): Promise<{ best: PathJ | null; paths: PathJ[] }> {
  const routes = (await ctl(sock, 'routes', prefix)).routes as { prefix: string; best: PathJ | null; paths: PathJ[] }[];
  return routes.find((r) => r.prefix === prefix) ?? { best: null, paths: [] };
}

// Standalone, skeind writes the workload routes; beside Felix, the test plays Felix's part of a migration
// (felix/dataplane/linux/endpoint_mgr.go calculateRoutes, live_migration.go): proto-80 device routes at the normal
// priority 1024, none for the target until its VM announces itself, then 512 until the convergence time is over.
// The roles skein derives from a KubeVirt migration as libcalico-go's converter presents it, stage by stage. The
// selector is the converter's: either VMI-name label, and the migration job's UID (so the source pod, the target of
// an earlier migration of the same VM, is never taken for this one's target).
t.test('KubeVirt: roles from the LiveMigration libcalico-go makes of a VirtualMachineInstanceMigration', (t) => {
  const roles = (vmOn: string[], migrating: boolean): Record<string, string> => {
    const r = loadResourcesText(resources(vmOn, migrating, 'kubevirt'), 'kv.yaml');
    const errors = r.issues; // errors and warnings alike
    if (errors.length > 0) throw new Error(errors.map(formatIssue).join('\n'));
    return Object.fromEntries(['host-a', 'host-b'].flatMap((h) => [...migrationRoles(r.model, h)].map(([id, role]) => [`${h} ${id.split('-k8s-')[1]}`, role])));
  };
  t.same(roles(['host-a'], false), {}, 'no migration: no role');
  t.same(roles(['host-a'], true), {}, 'Scheduling (a target selector, no source yet): the running VM\'s pod has no role (its job UID is an older one)');
  t.same(roles(['host-a', 'host-b'], true), { 'host-a virt--launcher--vm1--x7k2p-eth0': 'source', 'host-b virt--launcher--vm1--q9m4d-eth0': 'target' },
    'the target pod appears and KubeVirt reports the source pod: target by selector, source by workload (no hostname, no endpoint)');
  t.same(roles(['host-b'], false), {}, 'Succeeded (the converter emits nothing) and the source pod deleted: no role');
  t.end();
});

for (const mode of ['standalone', 'KubeVirt, beside Felix'] as const) t.test(`live migration (${mode}): the /32 moves once, at the VM's RARP; afterwards one host announces it`, async (t) => {
  const felixMode = mode !== 'standalone';
  const shape = mode.startsWith('KubeVirt') ? 'kubevirt' : 'openstack';
  if (!requires(t, { root: true, commands: ['ping', 'python3', 'stdbuf'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skeind-c2mig-'));
  const procs: ChildProcess[] = [];
  const logs = new Map<string, string[]>();
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const hostNs = lab.bridgedHosts(HOSTS);
  const hA = hostNs.get('host-a')!;
  const hB = hostNs.get('host-b')!;
  const hC = hostNs.get('host-c')!;
  // Workloads as Calico plugs them: a veth/tap per workload, proxy ARP on the host side, default via 169.254.1.1.
  const workload = (label: string, host: string, hostIf: string, addr: string, mac?: string): string => plugWorkload(lab, label, host, hostIf, addr, mac);
  const pod = workload('cl', hC, 'cali0c1b2c3d4e5', POD_IP);
  const vmA = workload('va', hA, TAP_A, VM_IP, VM_MAC);

  const resFile = join(dir, 'resources.yaml');
  const write = (vmOn: string[], migrating: boolean): void => {
    writeFileSync(`${resFile}.tmp`, resources(vmOn, migrating, shape));
    renameSync(`${resFile}.tmp`, resFile);
  };
  write(['host-a'], false);
  const sock = (h: string): string => join(dir, `${h}.sock`);
  const basePort = 32180 + (process.pid % 500) * 6 + (felixMode ? 3 : 0);
  for (const [i, h] of HOSTS.entries()) {
    const cfg = join(dir, `${h.name}.yaml`);
    writeFileSync(cfg, `nodeName: ${h.name}\ndatastore: { type: file, path: ${resFile}, debounce: 50ms }\ncontrol: { socket: ${sock(h.name)} }\n`
      + `metrics: { listen: "127.0.0.1:${basePort + i}" }\nlog: { level: info }\n${felixMode ? 'fib: { workloadRoutes: false }\n' : ''}`);
    const child = nsSpawn(hostNs.get(h.name)!, 'node', [skeind, '--config', cfg]);
    procs.push(child);
    const lines: string[] = [];
    logs.set(h.name, lines);
    child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
  }
  const dump = (): void => {
    for (const [h, lines] of logs) t.comment(`--- ${h} skeind (last lines)\n${lines.slice(-25).join('\n')}`);
    for (const [h, ns] of hostNs) t.comment(`--- ${h} routes\n${nsExec(ns, 'ip', ['route', 'show', 'table', 'main'])}`);
    t.comment(`--- host-b packet sockets and links\n${nsExec(hB, 'cat', ['/proc/net/packet'])}\n${nsExec(hB, 'ip', ['-o', 'link'])}`);
  };
  // The route the kernel uses (beside Felix a host may hold Felix's route and skein's at different metrics).
  const via = (ns: string, gw: string): boolean => {
    const r = JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'get', VM_IP])) as KRoute[];
    return r[0]?.gateway === gw;
  };
  // Felix's routes (the test plays Felix beside skein): proto 80 at the given metric, or gone.
  const felix = (ns: string, dst: string, dev: string, metric: number | null, old?: number): void => {
    if (!felixMode) return;
    // the new route first, then the old one goes: no moment without a route
    if (metric !== null) nsExec(ns, 'ip', ['route', 'replace', `${dst}/32`, 'dev', dev, 'proto', '80', 'metric', String(metric), 'scope', 'link']);
    if (old !== undefined) nsExec(ns, 'ip', ['route', 'del', `${dst}/32`, 'dev', dev, 'proto', '80', 'metric', String(old)]);
  };
  const felixRoute = (ns: string, dev: string, metric: number): boolean => routesTo(ns, VM_IP).some((r) => r.dev === dev && r.metric === metric && r.gateway === undefined && r.protocol !== '171' && r.protocol !== 'skein');
  const device = (ns: string, dev: string): boolean => routesTo(ns, VM_IP).some((r) => r.dev === dev && r.gateway === undefined);

  // The pinger: one ICMP echo every 50 ms from the pod, each reply's sequence number recorded with its arrival time.
  const replies = new Map<number, number>();
  let pinger: ChildProcess | undefined;
  const startPinger = (): void => {
    pinger = nsSpawn(pod, 'stdbuf', ['-oL', 'ping', '-n', '-i', '0.05', '-W', '1', '-c', '2400', VM_IP]);
    procs.push(pinger);
    let buf = '';
    pinger.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        const m = /icmp_seq=(\d+)/.exec(l);
        if (m && l.includes('bytes from')) replies.set(Number(m[1]), Date.now());
      }
    });
  };

  felix(hA, VM_IP, TAP_A, 1024);
  felix(hC, POD_IP, 'cali0c1b2c3d4e5', 1024);
  try {
    for (const h of HOSTS) {
      await until(async () => {
        const s = await ctl(sock(h.name), 'status');
        const peers = s.peers as { state: string }[];
        return peers.length === 2 && peers.every((p) => p.state === 'Established') && s.ready === true;
      }, `${h.name}: 2 peers Established and ready`, 120_000, 500);
    }
    await until(() => via(hC, '10.0.0.1') && via(hB, '10.0.0.1') && device(hA, TAP_A), 'the VM routed to host-a everywhere', 20_000, 100);
    startPinger();
    await until(() => replies.size >= 10, 'pings reach the VM on host-a', 15_000, 100);

    // 1. networking-calico: the LiveMigration, then the destination endpoint.
    write(['host-a'], true);
    await new Promise((r) => setTimeout(r, 300));
    write(['host-a', 'host-b'], true);
    // The incoming VM's tap appears after its endpoint (libvirt creates it when the paused destination QEMU starts):
    // skeind keeps trying to watch it until it is there.
    await until(() => logs.get('host-b')!.some((l) => l.includes('cannot watch the interface yet')), 'host-b waits for the tap', 15_000, 100);
    // (its link is up from the start, as a tap is before the VM runs: a veth that just came up drops what it is
    // given until the kernel's link watch has activated it, which would lose the RARP; the paused VM sends nothing)
    const vmB = workload('vb', hB, TAP_B, VM_IP, VM_MAC);
    await until(() => logs.get('host-b')!.some((l) => l.includes('watching for the VM')), 'host-b watches the new tap', 15_000, 100);
    await new Promise((r) => setTimeout(r, 1000));
    t.ok(via(hB, '10.0.0.1'), 'Target: host-b still routes the VM to host-a (no device route of its own)');
    t.notOk(device(hB, TAP_B), 'no route to the paused VM on host-b');
    t.ok(via(hC, '10.0.0.1'), 'host-c still routes to host-a');
    const ribC0 = await locRib(sock('host-c'), `${VM_IP}/32`);
    t.same(ribC0.paths.map((p) => p.from), ['10.0.0.1'], 'host-b announces nothing while in Target');

    // 2. The cut-over: paused on host-a, resumed on host-b, which announces itself with RARP.
    const seqBefore = Math.max(...replies.keys());
    const cutAt = Date.now();
    nsExec(vmA, 'ip', ['link', 'set', 'eth0', 'down']);
    const rarpAt = Date.now();
    nsExec(vmB, 'python3', ['-c', RARP, VM_MAC]);
    felix(hB, VM_IP, TAP_B, 512); // Felix saw the same RARP: Live, elevated priority
    await until(() => via(hC, '10.0.0.2') && via(hA, '10.0.0.2'), 'the /32 moved to host-b on host-c and host-a', 15_000, 20);
    const movedAt = Date.now();
    t.ok(device(hB, TAP_B), 'host-b routes the VM to its tap');
    for (const [h, ns] of [['host-a', hA], ['host-c', hC]] as const) {
      t.same(routesTo(ns, VM_IP).filter((r) => r.protocol === '171' || r.protocol === 'skein').map((r) => [r.gateway, r.metric]), [['10.0.0.2', 512]], `${h}: the elevated path is in the kernel at metric 512 (2^31-1 minus its LOCAL_PREF, as BIRD writes it)`);
    }
    if (felixMode) t.ok(felixRoute(hA, TAP_A, 1024), 'host-a: Felix\'s route to the old copy of the VM is still there, below skein\'s (not replaced)');
    await until(() => logs.get('host-b')!.some((l) => l.includes('announced itself')), 'host-b logs the RARP', 5000, 50);
    const ribC1 = await locRib(sock('host-c'), `${VM_IP}/32`);
    t.same(ribC1.best && [ribC1.best.from, ribC1.best.localPref], ['10.0.0.2', ELEVATED_LP], 'host-c: best path from host-b at the elevated LOCAL_PREF');
    const ribA1 = await locRib(sock('host-a'), `${VM_IP}/32`);
    t.equal(ribA1.best?.from, '10.0.0.2', 'host-a: the elevated path beats its own endpoint (confd\'s override preference)');
    // The orchestrator takes a while to report completion; traffic flows meanwhile.
    await new Promise((r) => setTimeout(r, 2000));

    // 3. Completion: LiveMigration and source endpoint deleted (the destination becomes the port's endpoint).
    const doneAt = Date.now();
    write(['host-b'], false);
    felix(hA, VM_IP, TAP_A, null, 1024); // Felix on host-a: the endpoint is gone
    await until(() => !device(hA, TAP_A) && logs.get('host-a')!.some((l) => l.includes('withdrawing') || l.includes('workload route removed')), 'host-a dropped its endpoint', 15_000, 100);
    for (const h of ['host-a', 'host-c']) {
      await until(async () => {
        const rib = await locRib(sock(h), `${VM_IP}/32`);
        return rib.paths.length === 1 && rib.paths[0]!.from === '10.0.0.2';
      }, `${h}: one path for the /32, from host-b`, 15_000, 100);
    }
    // Convergence time (3 s in this datastore's FelixConfiguration): back to the normal LOCAL_PREF, still one path.
    await until(async () => (await locRib(sock('host-c'), `${VM_IP}/32`)).best?.localPref === NORMAL_LP, 'host-c: normal LOCAL_PREF after the convergence time', 20_000, 200);
    felix(hB, VM_IP, TAP_B, 1024, 512); // Felix's TimeWait ends on the same 3 s
    for (const h of ['host-a', 'host-c']) {
      const rib = await locRib(sock(h), `${VM_IP}/32`);
      t.same(rib.paths.map((p) => [p.from, p.localPref]), [['10.0.0.2', NORMAL_LP]], `${h}: exactly one host announces the /32 after completion`);
      const k = routesTo(hostNs.get(h)!, VM_IP);
      t.same(k.map((r) => [r.gateway, r.dev]), [['10.0.0.2', 'eth0']], `${h}: one kernel route, via host-b`);
    }
    const ribB = await locRib(sock('host-b'), `${VM_IP}/32`);
    t.same(ribB.paths.map((p) => p.from), [ribB.best?.from], 'host-b: only its own origination');
    t.same(routesTo(hB, VM_IP).map((r) => r.dev), [TAP_B], 'host-b: the tap route only');
    if (felixMode) {
      for (const h of HOSTS) {
        const ours = (JSON.parse(nsExec(hostNs.get(h.name)!, 'ip', ['-j', 'route', 'show', 'proto', '171'])) as KRoute[]).filter((r) => r.dev?.startsWith('tap') === true || r.dev?.startsWith('cali') === true);
        t.same(ours, [], `${h.name}: skein wrote no workload device route`);
      }
      t.ok(felixRoute(hB, TAP_B, 1024), 'host-b: Felix\'s route, at the normal priority again');
    }

    // Pings after the move all came back; the ones lost lie between the pause and the move.
    await new Promise((r) => setTimeout(r, 500));
    pinger!.kill('SIGINT');
    const last = Math.max(...replies.keys());
    const lost: number[] = [];
    for (let s = seqBefore + 1; s <= last; s++) if (!replies.has(s)) lost.push(s);
    // Sequence numbers advance every 50 ms: the first one sent after the move is at most this.
    const firstAfterMove = seqBefore + Math.ceil((movedAt - cutAt) / 50) + 2;
    t.same(lost.filter((s) => s > firstAfterMove), [], 'no echo lost once the route had moved');
    // Calico's worst case, the announcement missed, keeps the VM unreachable until completion (the target's route
    // appears only then): at least (doneAt - cutAt) / 50 echoes. The move at the RARP must lose fewer.
    const missedGarp = Math.floor((doneAt - cutAt) / 50);
    t.ok(lost.length < missedGarp, `lost ${lost.length} echoes (move took ${movedAt - cutAt} ms), fewer than the ${missedGarp} a missed announcement would lose`);
    t.ok(last - seqBefore > (movedAt - cutAt) / 50, 'echoes kept coming back after the move (the count above can fail)');
    const seenLine = logs.get('host-b')!.find((l) => l.includes('announced itself'));
    const seenAt = seenLine ? Date.parse((JSON.parse(seenLine) as { ts: string }).ts) : NaN;
    t.comment(`live migration: ${lost.length} of ${last - seqBefore} echoes lost; pause to route moved on host-c and host-a: ${movedAt - cutAt} ms (RARP sent to moved: ${movedAt - rarpAt} ms, includes starting python; skeind on host-b saw it after ${seenAt - rarpAt} ms)`);
  } catch (e) {
    dump();
    throw e;
  }
});
