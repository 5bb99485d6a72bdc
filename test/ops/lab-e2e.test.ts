// The lab end to end (root): `node dist/src/lab/main.js up` builds the namespaces and runs the real skeind on
// every host; it must print and exit 0 with every VM<->pod ping ok, every host must have the other hosts' blocks
// and VM /32s in its kernel, and `down` must remove every namespace and process — also after a lab killed with
// SIGKILL mid-run. Each run uses its own namespace prefix and state directory, so a developer's lab is untouched.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePlan, type TorKind, type Topology } from '../../src/lab/topology.js';
import { resourcesYaml } from '../../src/lab/resources.js';
import { loadResourcesText } from '../../config/index.js';
import { requires } from '../helpers/env.js';
import { alive, downAndCheck, freshLab, LAB_MAIN as main, labNamespaces as namespaces, runLab as run, upAndCheck, type FreshLab, type LabState as State } from '../helpers/lab.js';

const tag = (process.pid % 1296).toString(36);
let runs = 0;

/** A fresh prefix and state directory; whatever is left is removed at teardown. */
function fresh(t: Test, letter: string): FreshLab {
  return freshLab(t, `slt${tag}${letter}${(runs++).toString(36)}_`);
}

async function upCheckDown(t: Test, topology: Topology, letter: string, datastore: 'file' | 'etcd' = 'file', tor: TorKind = 'frr'): Promise<void> {
  const lab = fresh(t, letter);
  const state = await upAndCheck(t, lab, topology, datastore, tor);
  if (state) await downAndCheck(t, lab, state);
}

t.test('resources validate as Calico documents (no root needed)', async (t) => {
  for (const [topology, tor] of [['mesh', 'frr'], ['tor', 'frr'], ['tor', 'skein']] as const) {
    const plan = makePlan(topology, true, tor);
    const { model, issues } = loadResourcesText(resourcesYaml(plan), 'lab-resources.yaml');
    t.same(issues, [], `${topology}/${tor}: skein's file datastore accepts every document`);
    if (topology === 'tor' && tor === 'skein') {
      const rr = model.nodes().find((n) => n.metadata.name === 'tor');
      t.equal(rr?.metadata.labels['route-reflector'], 'true', 'the ToR\'s Node is labelled route-reflector');
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

// The two other shapes of `npm start` — the skein route reflector ToR (file datastore) and the mesh with etcd — get
// the same checks in test/ops/lab-live, on the labs it then changes live (one `up` each instead of two).

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
