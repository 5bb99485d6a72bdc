// Live changes to a running lab (root), end to end through the lab CLI: the datastore changes as Calico's CNI and
// IPAM, networking-calico or a drain would change it, the workloads' namespaces and links change with it, and every
// host's kernel (programmed by the real skeind) must follow: a pod created, deleted, its address reused on another
// host as a borrowed /32; a VM live-migrated between OpenStack hosts; a Kubernetes host drained. Each lab has its
// own prefix and state directory and is removed at teardown, also when an assertion fails. Before the changes, each
// lab gets every check test/ops/lab-e2e makes of a lab just up (test/helpers/lab.ts): these two shapes are not built
// again there.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePlan, type TorKind, type Topology } from '../../src/lab/topology.js';
import { addPod, deletePod, drainHost, migrateVm, parseResources, renderResources, resourcesYaml } from '../../src/lab/resources.js';
import { loadResourcesText } from '../../config/index.js';
import { requires } from '../helpers/env.js';
import { downAndCheck, freshLab, labNamespaces as namespaces, runLab as run, upAndCheck } from '../helpers/lab.js';

const tag = (process.pid % 1296).toString(36);

/** Polls until `probe` holds, at most `timeoutMs` (bounded in count too); true if it did. */
async function waitFor(probe: () => boolean, timeoutMs = 15_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / 100) + 1; i++) {
    if (probe()) return true;
    if (Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return probe();
}

interface Route { dst: string; gateway?: string; dev?: string; type?: string }

t.test('live edits of the resources (no root needed): what Calico would write, and it still loads', async (t) => {
  const plan = makePlan('mesh');
  const docs = parseResources(resourcesYaml(plan));
  t.equal(renderResources(docs), resourcesYaml(plan), 'parse and render round-trip');
  const p = addPod(docs, { host: 'k8s-1', name: 'pod-1c', ipv6: true });
  t.same([p.workload.ip, p.workload.ip6, p.borrowed], ['10.65.0.4', 'fd00:65::4', false], 'the first free addresses of k8s-1\'s blocks');
  t.throws(() => addPod(docs, { host: 'k8s-1', name: 'pod-1c', ipv6: true }), /exists already/);
  t.throws(() => addPod(docs, { host: 'k8s-2', name: 'pod-x', ip: '10.65.0.4', ipv6: false }), /already allocated/, 'an address in use is refused');
  t.throws(() => addPod(docs, { host: 'os-1', name: 'pod-x', ipv6: false }), /no IPv4 block/, 'a host without blocks needs an address');
  t.same(deletePod(docs, 'pod-1c'), { host: 'k8s-1', ips: ['10.65.0.4', 'fd00:65::4'] });
  const b = addPod(docs, { host: 'k8s-2', name: 'pod-2c', ip: '10.65.0.4', ip6: 'fd00:65::4', ipv6: true });
  t.ok(b.borrowed, 'an address of k8s-1\'s block on k8s-2 is borrowed');
  const vm = plan.workloads.find((w) => w.name === 'vm-1a')!;
  t.same(migrateVm(docs, vm, 'os-2'), { from: 'os-1' });
  t.throws(() => migrateVm(docs, vm, 'os-2'), /already/);
  const drained = drainHost(docs, 'k8s-2');
  t.same(drained, { pods: ['pod-2a', 'pod-2b', 'pod-2c'], blocks: ['10.65.0.64/26', 'fd00:65::40/122'] });
  const { model, issues } = loadResourcesText(renderResources(docs), 'live.yaml');
  t.same(issues, [], 'skein\'s file datastore accepts the edited documents');
  t.same(model.blockAffinities().map((a) => a.spec.node), ['k8s-1', 'k8s-1'], 'only k8s-1\'s blocks are left');
  t.same(model.workloadEndpoints().filter((w) => w.spec.node === 'os-2').length, 3, 'os-2 has the migrated VM');
  t.notOk(model.workloadEndpoints().some((w) => w.spec.node === 'k8s-2'), 'no workload left on k8s-2');
});

async function scenario(t: Test, letter: string, topology: Topology, datastore: 'file' | 'etcd', tor?: TorKind): Promise<void> {
  const fl = freshLab(t, `slv${tag}${letter}_`, 'skein-lab-live-');
  const { prefix, stateDir, opts } = fl;
  // Every check test/ops/lab-e2e makes of a lab just up (pings, every host's routes, nothing in the root namespace).
  const state = await upAndCheck(t, fl, topology, datastore, tor);
  if (!state) return;
  const plan = makePlan('mesh');
  const hosts = plan.hosts.map((h) => h.name);
  const hostIp = (h: string, f: 4 | 6): string => { const x = plan.hosts.find((y) => y.name === h)!; return f === 4 ? x.ip : x.ip6; };
  const routes = (host: string, f: 4 | 6): Route[] => JSON.parse(spawnSync('ip', ['-n', `${prefix}${host}`, '-j', `-${f}`, 'route', 'show', 'proto', '171'], { encoding: 'utf8' }).stdout || '[]') as Route[];
  const has = (host: string, f: 4 | 6, dst: string, pred: (r: Route) => boolean = () => true): boolean => routes(host, f).some((r) => r.dst === dst && pred(r));
  const ping = (from: string, to: string): boolean => {
    for (let i = 0; i < 3; i++) if (spawnSync('ip', ['netns', 'exec', `${prefix}${from}`, 'ping', '-c1', '-W1', to], { timeout: 5_000 }).status === 0) return true;
    return false;
  };
  const lab = async (...args: string[]): Promise<string> => {
    const r = await run([...args, ...opts], 30_000);
    t.equal(r.code, 0, `lab ${args.join(' ')}`);
    if (r.code !== 0) t.comment(r.err);
    return r.out;
  };
  /** On every host but `except`: the route to `dst` via `via` (or, with via undefined, no route to dst at all). */
  const everywhere = (except: string, f: 4 | 6, dst: string, via: string | undefined): Promise<boolean> =>
    waitFor(() => hosts.filter((h) => h !== except).every((h) => (via === undefined ? !has(h, f, dst) : has(h, f, dst, (r) => r.gateway === via))));

  // (a) A pod created on k8s-1, inside its block: its device route on k8s-1; the others reach it by the block.
  const out = await lab('add-pod', '--host', 'k8s-1', '--name', 'pod-1c');
  t.match(out, /pod pod-1c 10\.65\.0\.4 fd00:65::4 on k8s-1 \(cali[0-9a-f]{11}/, 'the first free addresses of k8s-1\'s blocks');
  t.ok(await waitFor(() => has('k8s-1', 4, '10.65.0.4', (r) => r.dev?.startsWith('cali') === true) && has('k8s-1', 6, 'fd00:65::4')), 'k8s-1: a device route to the new pod');
  t.ok(await everywhere('k8s-1', 4, '10.65.0.0/26', hostIp('k8s-1', 4)), 'every other host: k8s-1\'s block, which covers it');
  t.ok(ping('vm-2a', '10.65.0.4') && ping('pod-2a', '10.65.0.4') && ping('vm-1b', 'fd00:65::4'), 'the new pod answers from another host (IPv4 and IPv6)');
  // Deleted: its route gone from its host, its namespace gone.
  await lab('del-pod', '--name', 'pod-1c');
  t.ok(await waitFor(() => !has('k8s-1', 4, '10.65.0.4') && !has('k8s-1', 6, 'fd00:65::4')), 'k8s-1: the pod\'s device route is gone');
  t.notOk(namespaces(prefix).includes(`${prefix}pod-1c`), 'its namespace is gone');
  // Its address reused on k8s-2: borrowed from k8s-1's block, announced by k8s-2 as a /32 (/128) beside the block.
  const b = await lab('add-pod', '--host', 'k8s-2', '--name', 'pod-2c', '--ip', '10.65.0.4', '--ip6', 'fd00:65::4');
  t.match(b, /borrowed address, announced by k8s-2 as a \/32/);
  t.ok(await everywhere('k8s-2', 4, '10.65.0.4', hostIp('k8s-2', 4)), 'every other host: 10.65.0.4/32 via k8s-2, k8s-1 included');
  t.ok(await everywhere('k8s-2', 6, 'fd00:65::4', hostIp('k8s-2', 6)), 'every other host: fd00:65::4/128 via k8s-2');
  t.ok(ping('pod-1a', '10.65.0.4') && ping('vm-1a', '10.65.0.4') && ping('pod-1a', 'fd00:65::4'), 'the borrowed address answers, from k8s-1 too');
  await lab('del-pod', '--name', 'pod-2c');
  t.ok(await everywhere('k8s-2', 4, '10.65.0.4', undefined), 'deleted: the /32 is gone from every other host');
  t.ok(await everywhere('k8s-2', 6, 'fd00:65::4', undefined), 'and the /128');

  // (b) vm-1a live-migrated from os-1 to os-2: its /32 is announced by os-2, os-1's announcement is gone.
  await lab('migrate-vm', '--name', 'vm-1a', '--to', 'os-2');
  t.ok(await everywhere('os-2', 4, '10.70.0.11', hostIp('os-2', 4)), 'every other host, os-1 included: 10.70.0.11 via os-2');
  t.ok(await everywhere('os-2', 6, 'fd00:70::11', hostIp('os-2', 6)), 'and fd00:70::11 via os-2');
  t.ok(hosts.every((h) => !has(h, 4, '10.70.0.11', (r) => r.gateway === hostIp('os-1', 4))), 'no host has the old route via os-1');
  t.ok(has('os-2', 4, '10.70.0.11', (r) => r.dev?.startsWith('tap') === true), 'os-2: a device route to the VM\'s tap');
  t.ok(ping('pod-1a', '10.70.0.11') && ping('vm-1a', '10.65.0.66') && ping('pod-2b', 'fd00:70::11'), 'the migrated VM answers and reaches pods');

  // (c) k8s-2 drained: its pods deleted, its blocks released; its blocks' routes vanish from every other host.
  const d = await lab('drain', '--host', 'k8s-2');
  t.match(d, /k8s-2 drained: pods pod-2a, pod-2b deleted, blocks 10\.65\.0\.64\/26, fd00:65::40\/122 released/);
  t.ok(await everywhere('k8s-2', 4, '10.65.0.64/26', undefined), 'k8s-2\'s IPv4 block is gone from every other host');
  t.ok(await everywhere('k8s-2', 6, 'fd00:65::40/122', undefined), 'and its IPv6 block');
  t.ok(await waitFor(() => !routes('k8s-2', 4).some((r) => r.dst === '10.65.0.64/26')), 'k8s-2 no longer blackholes it');
  t.same(namespaces(prefix).filter((n) => /pod-2[ab]$/.test(n)), [], 'its pods\' namespaces are gone');
  t.ok(ping('vm-2b', '10.65.0.2'), 'the rest still works');

  // The datastore the lab keeps in step (the file, or etcd's readable copy).
  const res = readFileSync(join(stateDir, prefix, 'resources.yaml'), 'utf8');
  t.same(loadResourcesText(res, 'resources.yaml').issues, [], 'the edited resources.yaml still loads cleanly');
  await downAndCheck(t, fl, state);
}

t.test('ToR: skeind as an iBGP route reflector, file datastore: every ping, routes direct; live changes; down', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping'] })) return;
  await scenario(t, 'r', 'tor', 'file', 'skein');
});

t.test('etcd datastore (one etcd in the fabric namespace), mesh: every ping; live changes; down', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping', 'etcd', 'etcdctl'] })) return;
  await scenario(t, 'e', 'mesh', 'etcd');
});

t.test('live commands: clear errors', async (t) => {
  for (const [args, msg] of [
    [['add-pod', '--name', 'x'], /^lab: add-pod needs --host\n$/],
    [['migrate-vm', '--name', 'vm-1a'], /^lab: migrate-vm needs --to\n$/],
    [['drain', '--host', 'a/b'], /^lab: --host: "a\/b" is not a plain name/],
  ] as const) {
    const r = await run([...args], 10_000);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.err, msg);
  }
  if (process.getuid?.() !== 0) return;
  const stateDir = mkdtempSync(join(tmpdir(), 'skein-lab-live-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const r = await run(['drain', '--host', 'k8s-1', '--prefix', `slv${tag}n_`, '--state-dir', stateDir], 10_000);
  t.equal(r.code, 1);
  t.match(r.err, /^lab: no lab with prefix slv\w+_ in /, 'no lab: one clear line');
});
