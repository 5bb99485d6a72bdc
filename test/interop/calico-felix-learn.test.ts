// skeind beside Calico's Felix learning the workload routes from the kernel (`fib.learn`), as calico-node's BIRD does
// (bird.cfg.template: `protocol kernel { learn; }`), instead of reading WorkloadEndpoints. Three hosts on one L2
// segment, each with a Felix stand-in (test/helpers/felix-standin.sh) writing its workloads' device routes with
// protocol 80. Checks that what each host announces is what Calico's export filter lets out of its kernel, nothing
// more: a borrowed pod, an OpenStack VM and its floating IP go out as /32s; a WorkloadEndpoint Felix has not
// programmed does not; neither does a route outside the pools, through a Felix tunnel interface, or beneath the
// host's own block at the normal metric; one beneath it at an elevated metric does, at the matching priority. A route
// an operator adds goes out and is withdrawn when deleted; a restart of one skeind withdraws nothing at its peers;
// pings pass; skein touches none of Felix's routes.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import {
  ctlJson as ctl, docsYaml, felixClusterDocs, FELIX_HOSTS as HOSTS, FELIX_WORKLOADS as WORKLOADS, pingOnce as ping, podEndpointDoc, routesOf,
  spawnSkeind, standinRoutes, startFelixStandins, wireWorkloads, type KRoute,
} from '../helpers/calico-hosts.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

/** In the datastore, on host-c, borrowed — but Felix has written no route for it (not ready, say): not announced. */
const GHOST = { name: 'ghost', host: 'host-c', ip: '10.65.0.20', ifname: 'cali0g1b2c3d4e5' };

function resources(): string {
  const docs = felixClusterDocs();
  // The endpoints are in the datastore as in any Calico cluster: Felix reads them, skein in this mode does not.
  for (const w of [...WORKLOADS.filter((x) => x.kind === 'pod'), GHOST]) docs.push(podEndpointDoc(w));
  return docsYaml(docs);
}

t.test('fib.learn beside Felix: what the kernel holds is announced as Calico\'s filter lets it out, and nothing else', async (t) => {
  if (!requires(t, { root: true, commands: ['ping', 'curl', 'bash'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skeind-learn-'));
  const procs: ChildProcess[] = [];
  const logs = new Map<string, string[]>();
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const hostNs = lab.bridgedHosts(HOSTS);
  const ns = (h: string): string => hostNs.get(h)!;
  const wlNs = wireWorkloads(lab, ns, [...WORKLOADS, GHOST]);

  const { sweeps, out: standinOut } = startFelixStandins(HOSTS.map((h) => h.name), ns, standinRoutes(WORKLOADS), procs);
  await until(() => HOSTS.every((h) => (sweeps.get(h.name) ?? 0) >= 2), 'Felix stand-ins swept twice', 20_000, 100);

  // Routes that must stay on their host, written before skeind starts (the start-up read must leave them out too):
  // outside every pool, and through a Felix tunnel interface (VXLAN's vxlan.calico) inside a pool.
  nsExec(ns('host-c'), 'ip', ['route', 'add', '10.99.0.1/32', 'dev', 'cali0c1b2c3d4e5', 'proto', 'static']);
  // (a veth named as Felix names its VXLAN device: the dummy and vxlan modules may not be loadable here)
  nsExec(ns('host-c'), 'ip', ['link', 'add', 'vxlan.calico', 'type', 'veth', 'peer', 'name', 'vxlan-peer']);
  nsExec(ns('host-c'), 'ip', ['link', 'set', 'vxlan.calico', 'up']);
  nsExec(ns('host-c'), 'ip', ['link', 'set', 'vxlan-peer', 'up']);
  nsExec(ns('host-c'), 'ip', ['route', 'add', '10.65.1.0/26', 'dev', 'vxlan.calico', 'proto', 'static']);

  const resFile = join(dir, 'resources.yaml');
  writeFileSync(`${resFile}.tmp`, resources());
  renameSync(`${resFile}.tmp`, resFile);
  const sock = (h: string): string => join(dir, `${h}.sock`);
  const basePort = 32180 + (process.pid % 500) * 3;
  const daemons = new Map<string, ChildProcess>();
  const start = (i: number): void => {
    const h = HOSTS[i]!;
    const cfg = join(dir, `${h.name}.yaml`);
    writeFileSync(cfg, `nodeName: ${h.name}\ndatastore: { type: file, path: ${resFile}, debounce: 50ms }\ncontrol: { socket: ${sock(h.name)} }\n`
      + `metrics: { listen: "127.0.0.1:${basePort + i}" }\nfib: { workloadRoutes: false, learn: true }\nlog: { level: info }\n`);
    daemons.set(h.name, spawnSkeind(ns(h.name), cfg, h.name, logs, procs));
  };
  for (let i = 0; i < HOSTS.length; i++) start(i);
  const dump = (): void => {
    for (const [h, lines] of logs) t.comment(`--- ${h} skeind (last lines)\n${lines.slice(-25).join('\n')}`);
    for (const [h, lines] of standinOut) t.comment(`--- ${h} Felix stand-in\n${lines.slice(-20).join('\n')}`);
  };
  const hostIp = (n: string): string => HOSTS.find((x) => x.name === n)!.ip;
  const via = (h: string, dst: string): KRoute | undefined => routesOf(ns(h), '171').find((x) => x.dst === dst);
  const originated = (h: string, kind: string): number => {
    const text = nsExec(ns(h), 'curl', ['-s', `http://127.0.0.1:${basePort + HOSTS.findIndex((x) => x.name === h)}/metrics`]);
    const m = new RegExp(`^skein_originated_prefixes\\{kind="${kind}"\\} (\\d+)`, 'm').exec(text);
    return m === null ? -1 : Number(m[1]);
  };

  try {
    for (const h of HOSTS) {
      await until(async () => {
        const s = await ctl(sock(h.name), 'status');
        const peers = s.peers as { state: string }[];
        return peers.length === 2 && peers.every((p) => p.state === 'Established') && s.ready === true;
      }, `${h.name}: 2 peers Established and ready`, 120_000, 500);
    }
    // The learned /32s reach the other hosts, through the host whose kernel holds them.
    const remote = WORKLOADS.filter((w) => w.name === 'c2' || w.kind === 'vm');
    for (const h of HOSTS) {
      await until(() => HOSTS.filter((o) => o !== h).every((o) => via(h.name, o.block)?.gateway === o.ip)
        && remote.filter((w) => w.host !== h.name).every((w) => via(h.name, w.ip)?.gateway === hostIp(w.host)
          && (w.floating === undefined || via(h.name, w.floating)?.gateway === hostIp(w.host))),
      `${h.name}: the blocks and the learned /32s of the other hosts in its kernel`, 30_000, 200);
    }
    t.pass('borrowed pod, VM and floating IP learned from Felix\'s routes and announced');

    // An operator's route inside a pool, and an elevated one beneath host-a's own block, added now; then what must
    // not go out is checked once these have arrived (everything written earlier has had its chance by then).
    nsExec(ns('host-c'), 'ip', ['route', 'add', '10.65.0.30/32', 'dev', 'cali0c1b2c3d4e5', 'proto', 'static']);
    nsExec(ns('host-a'), 'ip', ['route', 'add', '10.65.0.3/32', 'dev', 'cali0a1b2c3d4e5', 'proto', 'static', 'metric', '512']);
    for (const h of ['host-a', 'host-b']) await until(() => via(h, '10.65.0.30')?.gateway === '10.0.0.3', `${h}: the operator's 10.65.0.30 via host-c`, 15_000, 100);
    for (const h of ['host-b', 'host-c']) await until(() => via(h, '10.65.0.3')?.gateway === '10.0.0.1', `${h}: the elevated 10.65.0.3 via host-a`, 15_000, 100);
    t.equal(via('host-b', '10.65.0.3')?.metric, 512, 'the elevated route is written at metric 512 on the peers (LOCAL_PREF 2^31-1-512)');
    // Calico's BIRD reads a kernel route without a metric as krt_metric 0 (projectcalico/bird netlink.c, krt.c):
    // LOCAL_PREF 2^31-1, so the peers write it at metric 0
    t.equal(via('host-b', '10.65.0.30')?.metric ?? 0, 0, 'a route learned without a metric travels at LOCAL_PREF 2^31-1 (krt_metric 0)');
    t.equal(via('host-b', '10.65.0.10')?.metric, 1024, 'Felix\'s route (metric 1024) travels at the normal priority');
    for (const h of HOSTS) {
      const r = routesOf(ns(h.name), '171').map((x) => x.dst);
      t.notOk(r.includes(GHOST.ip), `${h.name}: the WorkloadEndpoint Felix did not program is not announced (skein reads none)`);
      t.notOk(r.includes('10.99.0.1'), `${h.name}: a route outside every pool is not announced`);
      t.notOk(r.includes('10.65.1.0/26'), `${h.name}: a route through vxlan.calico is not announced`);
      t.notOk(r.includes('10.65.0.2'), `${h.name}: a pod beneath its host's block at the normal metric is not announced on its own`);
      t.notOk(routesOf(ns(h.name), '171').some((x) => x.dev?.startsWith('cali') === true || x.dev?.startsWith('tap') === true), `${h.name}: skein wrote no device route`);
    }
    t.equal(originated('host-c', 'kernel'), 2, 'host-c: two learned prefixes announced (10.65.0.10, 10.65.0.30)');
    t.equal(originated('host-b', 'kernel'), 2, 'host-b: the VM and its floating IP');

    // Deleted: withdrawn, and the kernel routes go from the peers.
    nsExec(ns('host-c'), 'ip', ['route', 'del', '10.65.0.30/32', 'proto', 'static']);
    for (const h of ['host-a', 'host-b']) await until(() => via(h, '10.65.0.30') === undefined, `${h}: 10.65.0.30 withdrawn after its route was deleted on host-c`, 15_000, 100);
    t.ok(via('host-a', '10.65.0.10')?.gateway === '10.0.0.3', 'the borrowed pod\'s route stays');

    // A restart of host-c's skeind loses nothing: it learns the kernel's routes again before it tells its peers it
    // is done (graceful restart, RFC 4724), so host-a never deletes the borrowed pod's route or the VM's.
    const mon = nsSpawn(ns('host-a'), 'ip', ['-o', 'monitor', 'route']);
    procs.push(mon);
    const seen = { text: '' };
    mon.stdout!.on('data', (d: Buffer) => (seen.text += d.toString()));
    await new Promise((r) => setTimeout(r, 200));
    const old = daemons.get('host-c')!;
    const gone = new Promise((r) => old.once('exit', r));
    old.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 20_000))]);
    t.not(old.exitCode ?? old.signalCode, null, 'host-c\'s skeind stopped');
    start(2);
    await until(async () => {
      try {
        const st = await ctl(sock('host-c'), 'status');
        return (st.peers as { state: string }[]).every((p) => p.state === 'Established') && st.ready === true;
      } catch {
        return false;
      }
    }, 'host-c: restarted, 2 peers Established and ready', 60_000, 250);
    // past the restarted daemon's start-up sweep and End-of-RIB: a wrongly withdrawn route would be gone by now
    await until(() => originated('host-c', 'kernel') === 1, 'host-c announces the borrowed pod again (learned before its End-of-RIB)', 15_000, 100);
    await new Promise((r) => setTimeout(r, 3000));
    mon.kill('SIGTERM');
    t.notMatch(seen.text, /^Deleted 10\.65\.0\.10 /m, 'host-a never deleted the borrowed pod\'s route across host-c\'s restart');
    t.notMatch(seen.text, /^Deleted 10\.65\.0\.128\/26 /m, 'nor host-c\'s block');
    t.equal(via('host-a', '10.65.0.10')?.gateway, '10.0.0.3', 'the borrowed pod is routed via host-c after the restart');

    for (const [from, to] of [['a1', '10.65.0.10'], ['b1', '10.65.0.130'], ['c1', '10.66.1.50'], ['c2', '10.65.0.66'], ['vm1', '10.65.0.2']] as const) {
      await until(() => ping(wlNs.get(from)!, to), `ping ${from} -> ${to}`, 15_000, 250);
    }
    t.pass('pings pass');
    for (const h of HOSTS) {
      const out = standinOut.get(h.name)!;
      t.same(out.filter((l) => l.startsWith('restore') || l.startsWith('delete') || l.startsWith('error')), [], `${h.name}: Felix's routes untouched`);
    }
  } catch (e) {
    dump();
    throw e;
  }
});
