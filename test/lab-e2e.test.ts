// The lab end to end (root): `node dist/src/lab/main.js up` builds the namespaces and runs the real skeind on
// every host; it must print and exit 0 with every VM<->pod ping ok, every host must have the other hosts' blocks
// and VM /32s in its kernel, and `down` must remove every namespace and process — also after a lab killed with
// SIGKILL mid-run. Each run uses its own namespace prefix and state directory, so a developer's lab is untouched.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectedRemote, makePlan, resourcesYaml, type TorKind, type Topology } from '../src/lab/topology.js';
import { loadResourcesText } from '../config/index.js';
import { requires } from './helpers/env.js';
import { runCommand, type RunResult } from './helpers/run.js';

const root = join(import.meta.dirname, '..');
const main = join(root, 'dist/src/lab/main.js');
const tag = (process.pid % 1296).toString(36);
let runs = 0;

const run = (args: string[], timeoutMs: number): Promise<RunResult> => runCommand(process.execPath, [main, ...args], { timeoutMs });

function namespaces(prefix: string): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface State { pids: { name: string; pid: number }[]; namespaces: string[] }

/** A fresh prefix and state directory; whatever is left is removed at teardown. */
function fresh(t: Test, letter: string): { prefix: string; stateDir: string; opts: string[] } {
  const prefix = `slt${tag}${letter}${(runs++).toString(36)}_`;
  const stateDir = mkdtempSync(join(tmpdir(), 'skein-lab-test-'));
  const opts = ['--prefix', prefix, '--state-dir', stateDir];
  t.teardown(async () => {
    if (namespaces(prefix).length > 0) await run(['down', ...opts], 30_000);
    rmSync(stateDir, { recursive: true, force: true });
  });
  return { prefix, stateDir, opts };
}

async function upCheckDown(t: Test, topology: Topology, letter: string, datastore: 'file' | 'etcd' = 'file', tor: TorKind = 'frr'): Promise<void> {
  const { prefix, stateDir, opts } = fresh(t, letter);
  const r = await run(['up', '--topology', topology, ...(topology === 'tor' ? ['--tor', tor] : []), '--datastore', datastore, ...opts], 90_000);
  const m = /^\[.*\] lab: (\d+)\/(\d+) pings ok$/m.exec(r.out);
  if (r.code !== 0) t.comment(`lab output:\n${r.out}\n${r.err}`);
  t.equal(r.code, 0, `lab up (${topology}) exits 0`);
  t.ok(m, 'prints the summary line');
  t.ok(m && Number(m[1]) === Number(m[2]) && Number(m[2]) > 0, `every ping ok (${m?.[0] ?? 'no summary'})`);
  t.equal(Number(m?.[2]), 64, '4 VMs x 4 pods, both ways, IPv4 and IPv6');
  t.match(r.out, /IPv6 ping matrix/, 'dual stack');
  t.match(r.out, /ping matrix/, 'prints the matrix');
  t.match(r.out, /skeinctl --socket .* status\nNode: +k8s-1/, 'shows skeinctl status host by host');
  t.match(r.out, /npm run lab:down -- --prefix/, 'hints how to remove it');

  // Every host's kernel has the other hosts' blocks and VM /32s, via the fabric.
  const plan = makePlan(topology, true, tor);
  for (const h of plan.hosts) {
    for (const f of [4, 6] as const) {
      const routes = JSON.parse(spawnSync('ip', ['-n', `${prefix}${h.label}`, '-j', `-${f}`, 'route', 'show', 'proto', '171'], { encoding: 'utf8' }).stdout) as { dst: string; gateway?: string }[];
      const remote = expectedRemote(plan, h.name, f);
      t.equal(remote.length, h.kind === 'k8s' ? 5 : 4, `${h.name} IPv${f}: the other blocks and the other hosts' VMs`);
      // Under the ToR, FRR keeps the announcing host as the next hop (same subnet, RFC 4271 5.1.3); a route
      // reflector never changes it (RFC 4456 10): host-to-host traffic goes straight, not through the ToR.
      for (const { dst, via } of remote) t.ok(routes.some((x) => x.dst === dst && x.gateway === via), `${h.name}: ${dst} via ${via}`);
    }
  }

  // Nothing of the lab in the root namespace: none of its links, no route or address in its ranges.
  const rootLinks = (JSON.parse(spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).stdout) as { ifname: string }[]).map((l) => l.ifname);
  const labLinks = new Set([...plan.workloads.map((w) => w.ifname), ...plan.hosts.map((h) => `p-${h.label}`), 'p-tor']);
  t.same(rootLinks.filter((l) => labLinks.has(l)), [], 'no lab link in the root namespace');
  const rootNet = ['route', 'addr'].flatMap((what) => ['-4', '-6'].map((f) => spawnSync('ip', [f, what, 'show'], { encoding: 'utf8' }).stdout)).join('');
  t.notMatch(rootNet, /\b(10\.(10|65|70)\.0\.|fd00:(10|65|70):)/, 'no route or address of the lab in the root namespace');

  const state = JSON.parse(readFileSync(join(stateDir, prefix, 'state.json'), 'utf8')) as State;
  t.equal(state.pids.filter((p) => /^skeind (k8s|os)-/.test(p.name)).length, 4, 'four host skeinds recorded');
  if (topology === 'tor' && tor === 'skein') {
    t.ok(state.pids.some((p) => p.name === 'skeind (ToR)'), 'the ToR\'s skeind recorded');
    t.match(r.out, /=== ToR \(skeind route reflector[^\n]*\n\$ skeinctl --socket .* status\nNode: +tor\n/, 'shows the route reflector\'s status');
    // The reflector's own FIB (it routes too): every block and VM, via the host that announced it.
    const torRoutes = JSON.parse(spawnSync('ip', ['-n', `${prefix}tor`, '-j', '-4', 'route', 'show', 'proto', '171'], { encoding: 'utf8' }).stdout) as { dst: string; gateway?: string }[];
    for (const h of plan.hosts) if (h.block !== undefined) t.ok(torRoutes.some((x) => x.dst === h.block && x.gateway === h.ip), `ToR: ${h.block} via ${h.ip}`);
    for (const w of plan.workloads.filter((x) => x.kind === 'vm')) t.ok(torRoutes.some((x) => x.dst === w.ip && x.gateway === plan.hosts.find((h) => h.name === w.host)!.ip), `ToR: ${w.ip} via ${w.host}`);
  }
  if (datastore === 'etcd') {
    t.ok(state.pids.some((p) => p.name === 'etcd'), 'etcd recorded');
    for (const h of ['k8s-1', 'os-2']) t.match(readFileSync(join(stateDir, prefix, `${h}.yaml`), 'utf8'), /type: etcd/, `${h} reads etcd`);
  }
  t.ok(state.pids.every((p) => alive(p.pid)), 'the lab keeps running after npm start returns');

  const d = await run(['down', ...opts], 30_000);
  t.equal(d.code, 0, 'down exits 0');
  t.same(namespaces(prefix), [], 'no namespace left');
  t.ok(state.pids.every((p) => !alive(p.pid)), 'no process left');
  t.notOk(existsSync(join(stateDir, prefix)), 'state directory removed');
}

t.test('resources validate as Calico documents (no root needed)', async (t) => {
  for (const [topology, tor] of [['mesh', 'frr'], ['tor', 'frr'], ['tor', 'skein']] as const) {
    const plan = makePlan(topology, true, tor);
    const { model, issues } = loadResourcesText(resourcesYaml(plan), 'lab-resources.yaml');
    t.same(issues, [], `${topology}/${tor}: skein's file datastore accepts every document`);
    if (topology === 'tor' && tor === 'skein') {
      const rr = model.nodes().find((n) => n.metadata.name === 'tor');
      t.equal(rr?.metadata.labels?.['route-reflector'], 'true', 'the ToR\'s Node is labelled route-reflector');
      t.equal(rr?.spec.bgp?.routeReflectorClusterID, '224.0.0.1', 'and has a cluster ID');
      t.same(model.bgpPeers().map((p) => [p.spec.nodeSelector?.source, p.spec.peerSelector?.source]), [['all()', "route-reflector == 'true'"]], 'one BGPPeer: every node with the reflectors');
      t.ok(plan.hosts.every((h) => h.asn === 64512), 'iBGP: every host in the cluster AS');
      t.equal(model.workloadEndpoints().length, 8);
      continue;
    }
    t.equal(model.nodes().length, 4);
    t.equal(model.workloadEndpoints().length, 8);
    t.same(model.workloadEndpoints().filter((w) => w.spec.orchestrator === 'openstack').map((w) => w.metadata.namespace), ['openstack', 'openstack', 'openstack', 'openstack']);
    t.same(model.blockAffinities().map((a) => a.spec.node).sort(), ['k8s-1', 'k8s-1', 'k8s-2', 'k8s-2'], 'IPAM blocks (IPv4 and IPv6) only for the Kubernetes hosts');
    t.equal(model.bgpPeers().length, topology === 'tor' ? 2 : 0, 'BGPPeers to the ToR (one per family) only in the ToR topology');
    t.ok(model.nodes().every((n) => n.spec.bgp?.ipv6Address !== undefined), 'every Node has an IPv6 address (the IPv6 mesh)');
    const v4only = loadResourcesText(resourcesYaml(makePlan(topology, false)), 'lab-resources.yaml').model;
    t.ok(v4only.workloadEndpoints().every((w) => w.spec.ipNetworks.length === 1), '--ipv4-only: one address per workload');
    for (const w of plan.workloads) t.match(w.ifname, w.kind === 'pod' ? /^cali[0-9a-f]{11}$/ : /^tap[0-9a-f]{11}$/);
  }
});

t.test('mesh: up, every ping, routes, down', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping'] })) return;
  await upCheckDown(t, 'mesh', 'm');
});

t.test('ToR: eBGP to FRR, every ping, routes, down', async (t) => {
  // FRR's daemons live outside PATH (Debian: /usr/lib/frr); `command -v` takes an absolute path too.
  if (!requires(t, { root: true, commands: ['ip', 'ping', 'vtysh', '/usr/lib/frr/zebra', '/usr/lib/frr/bgpd'] })) return;
  await upCheckDown(t, 'tor', 't');
});

t.test('ToR: skeind as an iBGP route reflector, every ping, routes direct, down', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping'] })) return;
  await upCheckDown(t, 'tor', 's', 'file', 'skein');
});

t.test('etcd datastore: one etcd in the fabric namespace, mesh, every ping, down', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping', 'etcd', 'etcdctl'] })) return;
  await upCheckDown(t, 'mesh', 'e', 'etcd');
});

t.test('down after a lab killed with SIGKILL mid-run', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping'] })) return;
  const { prefix, stateDir, opts } = fresh(t, 'k');
  const child = spawn(process.execPath, [main, 'up', '--topology', 'mesh', ...opts], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const started = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 30_000);
    child.stdout.on('data', () => {
      if (out.includes('skeind started')) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.on('close', () => resolve(false));
  });
  t.ok(started, 'the lab got as far as starting skeind');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('close', r));
  const state = JSON.parse(readFileSync(join(stateDir, prefix, 'state.json'), 'utf8')) as State;
  t.ok(namespaces(prefix).length >= 13, 'namespaces are there after the kill');
  t.ok(state.pids.some((p) => alive(p.pid)), 'skeinds outlive the killed lab');

  const d = await run(['down', ...opts], 30_000);
  t.equal(d.code, 0, 'down exits 0');
  t.same(namespaces(prefix), [], 'no namespace left');
  t.ok(state.pids.every((p) => !alive(p.pid)), 'no process left');

  // And by name alone: namespaces (one with a process in it) but no state file.
  const ns = `${prefix}orphan`;
  spawnSync('ip', ['netns', 'add', ns]);
  const sleeper = spawn('ip', ['netns', 'exec', ns, 'sleep', '60'], { stdio: 'ignore', detached: true });
  sleeper.unref();
  await new Promise((r) => setTimeout(r, 300));
  t.ok(alive(sleeper.pid!), 'a process in an orphaned namespace');
  const d2 = await run(['down', ...opts], 30_000);
  t.equal(d2.code, 0);
  t.same(namespaces(prefix), [], 'orphaned namespace removed by prefix');
  t.notOk(alive(sleeper.pid!), 'its process stopped (found by ip netns pids)');
});

t.test('clear errors: bad options, not root', async (t) => {
  const bad = await run(['up', '--topology', 'ring'], 10_000);
  t.equal(bad.code, 2);
  t.match(bad.err, /^lab: --topology: "ring" is not mesh or tor\n$/);
  for (const [args, msg] of [
    [['--topology', 'tor', '--tor', 'none'], /^lab: --topology tor needs a ToR router/],
    [['--prefix', 'Bad/Name'], /^lab: --prefix: "Bad\/Name" must be/],
    [['--datastore', 'consul'], /^lab: --datastore: "consul" is not file or etcd/],
    [['--frobnicate'], /^lab: unknown argument "--frobnicate"/],
  ] as const) {
    const r = await run(['up', ...args], 10_000);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.err, msg);
  }
  if (process.getuid?.() !== 0) return;
  // A required tool missing (ping is in /usr/bin, outside the lab's own /usr/sbin:/sbin fallback for ip).
  const noPing = spawnSync(process.execPath, [main, 'up', '--topology', 'mesh', '--prefix', `slt${tag}p_`], { encoding: 'utf8', env: { ...process.env, PATH: '/nonexistent' }, timeout: 10_000 });
  t.equal(noPing.status, 1);
  t.match(noPing.stderr, /^lab: required tool "ping" not found in PATH/);
  t.same(namespaces(`slt${tag}p_`), [], 'nothing built');
  // As an unprivileged user: one clear line, nothing built.
  const r = spawnSync(process.execPath, [main, 'up', '--prefix', `slt${tag}u_`], { encoding: 'utf8', uid: 65534, gid: 65534, timeout: 10_000 });
  t.equal(r.status, 1);
  t.match(r.stderr, /^lab: the lab needs root/);
  t.same(namespaces(`slt${tag}u_`), []);
});
