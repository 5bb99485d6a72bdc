// skeind beside Calico's Felix (issue 13): three hosts on one L2 segment, each running skeind with
// `fib.workloadRoutes: false` and a Felix stand-in (test/helpers/felix-standin.sh) that writes the workload
// device routes with protocol 80 and deletes every other proto-80 route of the main table every 300 ms, as Felix's
// route table does (felix/routetable/ownershippol/main_route_table_policy.go). Pods, an OpenStack VM (its address in
// a pool without IPAM blocks) and a borrowed address. Checks that after many sweeps every route is present, every
// ping passes and skein touched none of Felix's routes; then flips ClusterInformation datastoreReady false and back
// while pings run: nothing is withdrawn or deleted, no UPDATE is sent, a change made meanwhile waits for the thaw.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import {
  ctlJson as ctl, docsYaml, felixClusterDocs, FELIX_HOSTS as HOSTS, FELIX_WORKLOADS as WORKLOADS, pingOnce as ping, podEndpointDoc, routesOf,
  spawnSkeind, standinRoutes, startFelixStandins, wireWorkloads, type FelixWorkload as Workload,
} from '../helpers/calico-hosts.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

const v3 = 'projectcalico.org/v3';

function resources(workloads: readonly Workload[], datastoreReady: boolean): string {
  const docs = felixClusterDocs(datastoreReady);
  for (const h of HOSTS) {
    const first = Number(h.block.split('/')[0]!.split('.')[3]);
    const allocations: (number | null)[] = new Array<number | null>(64).fill(null);
    const attributes: unknown[] = [];
    for (const w of WORKLOADS.filter((x) => x.kind === 'pod')) {
      const ord = Number(w.ip.split('.')[3]) - first;
      if (ord < 0 || ord >= 64 || !w.ip.startsWith('10.65.')) continue;
      allocations[ord] = attributes.length;
      attributes.push({ handle_id: `k8s-pod-network.${w.name}`, secondary: { namespace: 'default', node: w.host, pod: w.name, timestamp: '2026-12-04 10:00:00 +0000 UTC' } });
    }
    docs.push({
      apiVersion: v3, kind: 'IPAMBlock', metadata: { name: h.block.replace(/[./]/g, '-') },
      spec: { cidr: h.block, affinity: `host:${h.name}`, allocations, unallocated: allocations.map((a, i) => (a === null ? i : -1)).filter((i) => i >= 0), attributes, sequenceNumber: 1, deleted: false },
    });
  }
  for (const w of workloads) {
    docs.push(w.kind === 'pod'
      ? podEndpointDoc(w)
      : {
          apiVersion: v3, kind: 'WorkloadEndpoint',
          metadata: { name: `${w.host.replace(/-/g, '--')}-openstack-${w.name}-6f1e2d3c--4b`, namespace: 'openstack', labels: { 'projectcalico.org/namespace': 'openstack', 'projectcalico.org/orchestrator': 'openstack' } },
          spec: { orchestrator: 'openstack', node: w.host, workload: w.name, endpoint: '6f1e2d3c-4b', interfaceName: w.ifname, ipNetworks: [`${w.ip}/32`], ...(w.floating ? { ipNATs: [{ internalIP: w.ip, externalIP: w.floating }] } : {}) },
        });
  }
  return docsYaml(docs);
}

t.test('beside Felix: Felix\'s proto-80 routes untouched, every route present and pings pass; datastoreReady false freezes', async (t) => {
  if (!requires(t, { root: true, commands: ['ping', 'curl', 'bash'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skeind-felix-'));
  const procs: ChildProcess[] = [];
  const logs = new Map<string, string[]>();
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const hostNs = lab.bridgedHosts(HOSTS);
  const wlNs = wireWorkloads(lab, (h) => hostNs.get(h)!, WORKLOADS);

  // Felix first, as on a node where calico-node's Felix already runs when BIRD is replaced.
  const { sweeps, out: standinOut } = startFelixStandins(HOSTS.map((h) => h.name), (h) => hostNs.get(h)!, standinRoutes(WORKLOADS), procs);
  await until(() => HOSTS.every((h) => (sweeps.get(h.name) ?? 0) >= 2), 'Felix stand-ins swept twice', 20_000, 100);

  const resFile = join(dir, 'resources.yaml');
  const write = (workloads: readonly Workload[], ready: boolean): void => {
    writeFileSync(`${resFile}.tmp`, resources(workloads, ready));
    renameSync(`${resFile}.tmp`, resFile);
  };
  write(WORKLOADS, true);
  const sock = (h: string): string => join(dir, `${h}.sock`);
  const basePort = 31180 + (process.pid % 500) * 3;
  for (const [i, h] of HOSTS.entries()) {
    const cfg = join(dir, `${h.name}.yaml`);
    // fib.protocol left at its default: the point is that the default is not Felix's 80.
    writeFileSync(cfg, `nodeName: ${h.name}\ndatastore: { type: file, path: ${resFile}, debounce: 50ms }\ncontrol: { socket: ${sock(h.name)} }\n`
      + `metrics: { listen: "127.0.0.1:${basePort + i}" }\nfib: { workloadRoutes: false }\nlog: { level: info }\n`);
    spawnSkeind(hostNs.get(h.name)!, cfg, h.name, logs, procs);
  }
  const dump = (): void => {
    for (const [h, lines] of logs) t.comment(`--- ${h} skeind (last lines)\n${lines.slice(-20).join('\n')}`);
    for (const [h, lines] of standinOut) t.comment(`--- ${h} Felix stand-in\n${lines.slice(-20).join('\n')}`);
  };

  // What skein must have on each host: the other hosts' blocks via them, its own block blackholed, the borrowed
  // /32 via host-c and the VM's /32 via host-b on the hosts that do not hold them.
  const skeinRoutesOk = (h: (typeof HOSTS)[number]): boolean => {
    const r = routesOf(hostNs.get(h.name)!, '171');
    const remote = WORKLOADS.filter((w) => (w.name === 'c2' || w.kind === 'vm') && w.host !== h.name);
    const hostIp = (n: string): string => HOSTS.find((x) => x.name === n)!.ip;
    return HOSTS.filter((o) => o !== h).every((o) => r.some((x) => x.dst === o.block && x.gateway === o.ip))
      && r.some((x) => x.dst === h.block && x.type === 'blackhole')
      && remote.every((w) => r.some((x) => x.dst === w.ip && x.gateway === hostIp(w.host)))
      && remote.every((w) => w.floating === undefined || r.some((x) => x.dst === w.floating && x.gateway === hostIp(w.host)));
  };
  const felixRoutesOk = (h: (typeof HOSTS)[number]): boolean => {
    const r = routesOf(hostNs.get(h.name)!, '80');
    return WORKLOADS.filter((w) => w.host === h.name).every((w) => r.some((x) => x.dst === w.ip && x.dev === w.ifname));
  };
  const pings: [string, string][] = [['a1', '10.65.0.66'], ['a1', '10.66.0.5'], ['b1', '10.65.0.130'], ['b1', '10.65.0.10'], ['c1', '10.65.0.2'], ['vm1', '10.65.0.10'], ['c2', '10.65.0.66'], ['c1', '10.66.1.50']];

  try {
    for (const h of HOSTS) {
      await until(async () => {
        const s = await ctl(sock(h.name), 'status');
        const peers = s.peers as { state: string }[];
        return peers.length === 2 && peers.every((p) => p.state === 'Established') && s.ready === true;
      }, `${h.name}: 2 peers Established and ready`, 120_000, 500);
      await until(() => skeinRoutesOk(h), `${h.name}: skein's routes in the kernel (proto 171)`, 20_000, 200);
    }
    // Many sweeps later, everything is still there.
    const start = new Map(HOSTS.map((h) => [h.name, sweeps.get(h.name)!]));
    await until(() => HOSTS.every((h) => sweeps.get(h.name)! >= start.get(h.name)! + 15), 'fifteen more Felix sweeps on every host', 60_000, 200);
    for (const h of HOSTS) {
      t.ok(skeinRoutesOk(h), `${h.name}: every skein route present after ${sweeps.get(h.name)} Felix sweeps`);
      t.ok(felixRoutesOk(h), `${h.name}: every Felix device route present`);
      const ours = routesOf(hostNs.get(h.name)!, '171');
      t.notOk(ours.some((x) => x.dev?.startsWith('cali') === true || x.dev?.startsWith('tap') === true), `${h.name}: skein wrote no workload device route (fib.workloadRoutes false)`);
      const out = standinOut.get(h.name)!;
      t.same(out.filter((l) => l.startsWith('restore')), [], `${h.name}: Felix never had to restore one of its routes (skein touched none)`);
      t.same(out.filter((l) => l.startsWith('delete') || l.startsWith('error')), [], `${h.name}: Felix found no foreign proto-80 route to delete`);
    }
    for (const [from, to] of pings) await until(() => ping(wlNs.get(from)!, to), `ping ${from} -> ${to}`, 15_000, 250);
    t.pass('every ping passes beside Felix');
    const fib = await ctl(sock('host-a'), 'fib');
    t.equal(fib.protocol, 171, 'skeinctl fib reports the default protocol 171');

    // The freeze: datastoreReady false at run time.
    const updatesOut = async (h: string): Promise<number> => {
      const peers = (await ctl(sock(h), 'peers')).peers as { messages?: { out?: Record<string, number> } }[];
      return peers.reduce((n, p) => n + (p.messages?.out?.UPDATE ?? 0), 0);
    };
    const before = new Map<string, number>();
    for (const h of HOSTS) before.set(h.name, await updatesOut(h.name));
    t.ok(HOSTS.every((h) => before.get(h.name)! > 0), 'UPDATEs sent so far are counted (so the check below can fail)');
    const monitors = HOSTS.map((h) => {
      const m = nsSpawn(hostNs.get(h.name)!, 'ip', ['-o', 'monitor', 'route']);
      procs.push(m);
      const seen = { text: '' };
      m.stdout!.on('data', (d: Buffer) => (seen.text += d.toString()));
      return { host: h.name, m, seen };
    });
    await new Promise((r) => setTimeout(r, 200));
    write(WORKLOADS, false);
    for (const h of HOSTS) {
      await until(() => logs.get(h.name)!.some((l) => l.includes('datastore frozen')), `${h.name}: logs the freeze`, 15_000, 100);
    }
    // A change made while frozen (the borrowed pod c2's endpoint deleted) must wait for the thaw.
    write(WORKLOADS.filter((w) => w.name !== 'c2'), false);
    const frozenAt = new Map(HOSTS.map((h) => [h.name, sweeps.get(h.name)!]));
    const lost: string[] = [];
    for (let round = 0; round < 8 && (round < 2 || !HOSTS.every((h) => sweeps.get(h.name)! >= frozenAt.get(h.name)! + 5)); round++) {
      for (const [from, to] of pings) if (!ping(wlNs.get(from)!, to)) lost.push(`${from} -> ${to}`);
    }
    t.same(lost, [], 'every ping passes while frozen');
    const st = await ctl(sock('host-b'), 'status');
    t.equal(st.ready, false, 'skeinctl status: not ready while frozen');
    t.match(String((st.notReady as string[] | undefined)?.join('; ')), /datastore frozen/, 'skeinctl status says why');
    const readyz = nsExec(hostNs.get('host-b')!, 'curl', ['-s', `http://127.0.0.1:${basePort + 1}/readyz`]);
    t.match(readyz, /datastore frozen/, '/readyz gives the reason');
    for (const h of HOSTS) {
      t.ok(skeinRoutesOk(h), `${h.name}: every skein route kept while frozen (the deleted endpoint's /32 too)`);
      t.equal(await updatesOut(h.name), before.get(h.name), `${h.name}: no UPDATE sent while frozen`);
    }
    for (const w of monitors) t.notMatch(w.seen.text, /^Deleted .*proto 171/m, `${w.host}: no skein route deleted while frozen`);

    // Thaw: the held change applies, once.
    write(WORKLOADS.filter((w) => w.name !== 'c2'), true);
    for (const h of ['host-a', 'host-b']) {
      await until(() => !routesOf(hostNs.get(h)!, '171').some((x) => x.dst === '10.65.0.10'), `${h}: the held withdrawal of 10.65.0.10/32 applied after the thaw`, 20_000, 200);
    }
    for (const h of HOSTS) {
      await until(async () => (await ctl(sock(h.name), 'status')).ready === true, `${h.name}: ready again`, 15_000, 200);
      t.ok(logs.get(h.name)!.some((l) => l.includes('applying the changes held during the freeze')), `${h.name}: logs the thaw`);
    }
    for (const w of monitors) {
      w.m.kill('SIGTERM');
      const deleted = w.seen.text.split('\n').filter((l) => l.startsWith('Deleted') && l.includes('proto 171'));
      t.ok(deleted.every((l) => l.includes('10.65.0.10 ')), `${w.host}: the only skein route deleted across freeze and thaw is the withdrawn /32`);
    }
    for (const [from, to] of pings.filter(([f, d]) => f !== 'c2' && d !== '10.65.0.10')) t.ok(ping(wlNs.get(from)!, to), `after the thaw: ping ${from} -> ${to}`);
  } catch (e) {
    dump();
    throw e;
  }
});
