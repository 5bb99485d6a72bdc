// The lab's other data centres (root, end to end through the lab CLI, real skeind, BIRD 2 and FRR):
// - BIRD 2 as the ToR (eBGP to every host, its kernel protocol filling the ToR's FIB);
// - racks, each its own segment, AS and ToR, the ToRs iBGP peers over a spine: with one AS per rack (FRR ToRs),
//   and with racks sharing an AS (BIRD ToRs), once with numAllowedLocalASNumbers (every ping passes) and once
//   without (the hosts drop the other racks' routes as AS loops: the knob is what makes it work);
// - a mixed cluster: one host runs BIRD 2 configured as Calico's confd would, the others skeind, routes both ways.
// Without root: the resources of every shape load in skein's file datastore, and BIRD accepts every rendered
// configuration (`bird -p`). Each lab has its own prefix and state directory and is removed at teardown.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectedDropped, expectedRemote, makePlan, type Plan, type PlanOptions, type TorKind, type Topology } from '../../src/lab/topology.js';
import { resourcesYaml } from '../../src/lab/resources.js';
import { birdHostConf, birdTorConf, frrConf } from '../../src/lab/router-conf.js';
import { loadResourcesText } from '../../config/index.js';
import { requires } from '../helpers/env.js';
import { runCommand, type RunResult } from '../helpers/run.js';

const root = join(`${import.meta.dirname}/..`, '..');
const main = join(root, 'dist/src/lab/main.js');
const skeinctl = join(root, 'dist/src/skeinctl.js');
const tag = (process.pid % 1296).toString(36);
let runs = 0;

const run = (args: string[], timeoutMs: number): Promise<RunResult> => runCommand(process.execPath, [main, ...args], { timeoutMs });
const FRR = ['vtysh', '/usr/lib/frr/zebra', '/usr/lib/frr/bgpd'];

function namespaces(prefix: string): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}

interface Route { dst: string; gateway?: string; type?: string; protocol?: string; nexthops?: { gateway: string }[] }

function routes(ns: string, f: 4 | 6, ...filter: string[]): Route[] {
  return JSON.parse(spawnSync('ip', ['-n', ns, '-j', `-${f}`, 'route', 'show', ...filter], { encoding: 'utf8' }).stdout || '[]') as Route[];
}

/** The BGP rows of `birdc show protocols`: name and the info column (Established, Active, ...). */
function birdBgp(sock: string): { name: string; state: string }[] {
  const out = spawnSync('birdc', ['-s', sock, 'show', 'protocols'], { encoding: 'utf8', timeout: 10_000 }).stdout as string | null ?? ''; // null when birdc cannot be run
  return out.split('\n').flatMap((l) => {
    const m = /^(\S+)\s+BGP\s+\S+\s+\S+\s+(?:\d{4}-\d\d-\d\d\s+)?\S+\s+(\S+)/.exec(l);
    return m ? [{ name: m[1]!, state: m[2]! }] : [];
  });
}

function ping(ns: string, to: string): boolean {
  return spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W2', to], { timeout: 10_000 }).status === 0;
}

interface PeerJson { address: string; asn: number; state: string; prefixes: { received: number; accepted: number } }

function peers(sock: string): PeerJson[] {
  const r = spawnSync(process.execPath, [skeinctl, '--socket', sock, 'peers', '--json'], { encoding: 'utf8', timeout: 10_000 });
  try {
    return (JSON.parse(r.stdout) as { peers: PeerJson[] }).peers;
  } catch {
    return [];
  }
}

/** Polls until `probe` holds, at most `timeoutMs` (bounded in count too); true if it did. */
async function waitFor(probe: () => boolean, timeoutMs = 15_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / 200) + 1; i++) {
    if (probe()) return true;
    if (Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return probe();
}

interface Lab { prefix: string; dir: string; out: string; code: number | null; plan: Plan }

/** Builds one lab (its own prefix and state directory, removed at teardown) and checks the common outcome. */
async function labUp(t: Test, letter: string, args: string[], topology: Topology, tor: TorKind, opts: PlanOptions): Promise<Lab> {
  const prefix = `slt${tag}${letter}${(runs++).toString(36)}_`;
  const stateDir = mkdtempSync(join(tmpdir(), 'skein-lab-test-'));
  const common = ['--prefix', prefix, '--state-dir', stateDir];
  t.teardown(async () => {
    if (namespaces(prefix).length > 0) await run(['down', ...common], 30_000);
    rmSync(stateDir, { recursive: true, force: true });
  });
  const r = await run(['up', ...args, ...common], 90_000);
  if (r.code !== 0) t.comment(`lab output:\n${r.out}\n${r.err}`);
  t.equal(r.code, 0, `lab up ${args.join(' ')} exits 0`);
  t.match(r.out, /IPv6 ping matrix/, 'dual stack: the IPv6 matrix too');
  return { prefix, dir: join(stateDir, prefix), out: r.out, code: r.code, plan: makePlan(topology, true, tor, opts) };
}

async function labDown(t: Test, lab: Lab): Promise<void> {
  const d = await run(['down', '--prefix', lab.prefix, '--state-dir', join(lab.dir, '..')], 30_000);
  t.equal(d.code, 0, 'down exits 0');
  t.same(namespaces(lab.prefix), [], 'no namespace left');
}

/** Every ping of the lab's matrix passed: 4 VMs x 4 pods, both ways, IPv4 and IPv6. */
function everyPing(t: Test, lab: Lab): void {
  const m = /^\[.*\] lab: (\d+)\/(\d+) pings ok$/m.exec(lab.out);
  t.ok(m && m[1] === '64' && m[2] === '64', `every ping ok (${m?.[0] ?? 'no summary'})`);
}

/** Every host has the routes it should, through the next hop it should (the announcing host, or its ToR). */
function routesAsPlanned(t: Test, lab: Lab, proto = (_h: string): string => '171'): void {
  for (const h of lab.plan.hosts) {
    for (const f of [4, 6] as const) {
      const have = routes(`${lab.prefix}${h.label}`, f, 'proto', proto(h.name));
      for (const { dst, via } of expectedRemote(lab.plan, h.name, f)) {
        const r = have.find((x) => x.dst === dst);
        const hops = r === undefined ? [] : r.gateway !== undefined ? [r.gateway] : (r.nexthops ?? []).map((n) => n.gateway);
        t.ok(hops.includes(via), `${h.name}: ${dst} via ${via} (${hops.join(', ') || 'absent'})`);
      }
    }
  }
}

t.test('every lab shape: resources load, BIRD accepts every rendered configuration (no root needed)', async (t) => {
  const shapes: [string, Topology, TorKind, PlanOptions][] = [
    ['bird tor', 'tor', 'bird', {}],
    ['racks distinct', 'tor', 'frr', { racks: 2 }],
    ['racks shared', 'tor', 'bird', { racks: 2, rackAs: 'shared' }],
    ['racks shared, knob off', 'tor', 'bird', { racks: 2, rackAs: 'shared', allowOwnAs: 0 }],
    ['4 racks', 'tor', 'bird', { racks: 4 }],
    ['mixed', 'mesh', 'frr', { birdHosts: ['k8s-1', 'os-1'] }],
  ];
  const dir = mkdtempSync(join(tmpdir(), 'skein-lab-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bird = requires(t, { commands: ['bird'] });
  for (const [what, topology, tor, opts] of shapes) {
    const plan = makePlan(topology, true, tor, opts);
    const { model, issues } = loadResourcesText(resourcesYaml(plan), `${what}.yaml`);
    t.same(issues, [], `${what}: skein's file datastore accepts every document`);
    if (opts.racks !== undefined) {
      const racks = new Set(plan.hosts.map((h) => h.rack));
      t.equal(racks.size, opts.racks, `${what}: every rack has a host`);
      t.equal(plan.tors.length, opts.racks, `${what}: a ToR per rack`);
      for (const n of model.nodes()) {
        const h = plan.hosts.find((x) => x.name === n.metadata.name)!;
        t.equal(n.metadata.labels.rack, h.rack, `${what}: ${h.name} labelled rack=${h.rack!}`);
        t.equal(n.spec.bgp?.asNumber, opts.rackAs === 'shared' ? 65001 : 65001 + 'abcd'.indexOf(h.rack!), `${what}: ${h.name}'s AS`);
      }
      const torPeers = model.bgpPeers().filter((p) => p.spec.peerIP !== undefined);
      t.equal(torPeers.length, opts.racks * 2, `${what}: each rack's hosts peer with their ToR, per family`);
      const knob = opts.allowOwnAs ?? (opts.rackAs === 'shared' ? 1 : undefined);
      t.ok(torPeers.every((p) => p.spec.numAllowedLocalASNumbers === (knob === 0 ? undefined : knob)), `${what}: numAllowedLocalASNumbers ${String(knob)}`);
      t.equal(model.bgpConfiguration('default')?.spec.nodeToNodeMeshEnabled, false, `${what}: no cluster-wide mesh`);
    }
    if (!bird) continue;
    const confs: [string, string][] = plan.tors.map((x) => [x.name, tor === 'bird' ? birdTorConf(plan, x) : '']);
    for (const h of plan.hosts.filter((x) => x.bird)) confs.push([h.name, birdHostConf(plan, h)]);
    for (const [name, conf] of confs) {
      if (conf === '') continue;
      const file = join(dir, `${what.replace(/\W/g, '_')}-${name}.conf`);
      writeFileSync(file, conf);
      const p = spawnSync('bird', ['-p', '-c', file], { encoding: 'utf8', timeout: 10_000 });
      t.equal(p.status, 0, `${what}: bird -p accepts ${name}'s configuration ${p.stderr.trim()}`);
    }
    if (tor === 'frr' && plan.racks > 0) {
      t.match(frrConf(plan, plan.tors[0]), /neighbor 10\.10\.255\.2 next-hop-self/, `${what}: the ToRs pass routes to each other with next-hop-self`);
    }
  }
  const mixedPlan = makePlan('mesh', true, 'frr', { birdHosts: ['k8s-1'] });
  const mixed = birdHostConf(mixedPlan, mixedPlan.hosts[0]!);
  t.match(mixed, /route 10\.65\.0\.0\/26 blackhole;/, 'the BIRD host blackholes its block');
  t.match(mixed, /protocol bgp Mesh_10_10_0_12 from bgp_template_v4 \{[^}]*passive on;/, 'passive towards a higher address (Calico\'s rule)');
  t.notMatch(mixed, /protocol bgp Mesh_10_10_0_11 /, 'no session to itself');
});

t.test('BIRD 2 as the ToR: eBGP to every host, every ping, routes direct, the ToR\'s FIB routes too', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping', 'bird', 'birdc'] })) return;
  const lab = await labUp(t, 'b', ['--topology', 'tor', '--tor', 'bird'], 'tor', 'bird', {});
  everyPing(t, lab);
  // BIRD keeps the announcing host as the next hop towards hosts on the same segment (RFC 4271 5.1.3).
  routesAsPlanned(t, lab);
  const sessions = birdBgp(join(lab.dir, 'tor.bird.ctl'));
  t.same(sessions.map((s) => s.name).sort(), ['k8s_1_v4', 'k8s_1_v6', 'k8s_2_v4', 'k8s_2_v6', 'os_1_v4', 'os_1_v6', 'os_2_v4', 'os_2_v6'], 'birdc show protocols: a session per host and family');
  t.ok(sessions.every((s) => s.state === 'Established'), `every host Established (${sessions.map((s) => `${s.name} ${s.state}`).join(', ')})`);
  t.match(lab.out, /=== ToR tor \(BIRD 2[^\n]*\n\$ birdc -s \S+ show protocols\n/, 'the lab shows BIRD\'s protocols');
  // The ToR's own FIB, written by BIRD's kernel protocol: traffic through the ToR goes where it should.
  const tor = `${lab.prefix}tor`;
  for (const f of [4, 6] as const) {
    const fib = routes(tor, f, 'proto', 'bird');
    for (const h of lab.plan.hosts) {
      const mine = [f === 4 ? h.block : h.block6, ...lab.plan.workloads.filter((w) => w.kind === 'vm' && w.host === h.name).map((w) => (f === 4 ? w.ip : w.ip6))];
      for (const dst of mine) if (dst !== undefined) t.ok(fib.some((r) => r.dst === dst && r.gateway === (f === 4 ? h.ip : h.ip6)), `ToR FIB IPv${f}: ${dst} via ${h.name}`);
    }
  }
  for (const w of lab.plan.workloads) t.ok(ping(tor, w.ip) && ping(tor, w.ip6), `the ToR reaches ${w.name} through its FIB (IPv4 and IPv6)`);
  await labDown(t, lab);
});

t.test('racks with one AS each (FRR ToRs, a spine between them): every ping, rack routes direct, others via the ToR', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping', ...FRR] })) return;
  const lab = await labUp(t, 'r', ['--topology', 'tor', '--tor', 'frr', '--racks', '2'], 'tor', 'frr', { racks: 2 });
  everyPing(t, lab);
  t.match(lab.out, /k8s-1 10\.10\.1\.11 fd00:10:1::11 \(rack a, AS 65001\), k8s-2 10\.10\.2\.12 fd00:10:2::12 \(rack b, AS 65002\)/, 'hosts in their racks\' segments and ASes');
  routesAsPlanned(t, lab);
  // The other rack is behind this rack's ToR, which reaches it over the spine through the other ToR.
  const torA = `${lab.prefix}tor-a`;
  const k8s2 = lab.plan.hosts.find((h) => h.name === 'k8s-2')!;
  t.ok(routes(torA, 4, 'proto', 'bgp').some((r) => r.dst === k8s2.block && r.gateway === '10.10.255.2'), 'tor-a: rack b\'s block via tor-b over the spine');
  for (const h of lab.plan.hosts) {
    const ps = peers(join(lab.dir, `${h.name}.sock`));
    t.equal(ps.length, 4, `${h.name}: the other host of its rack and its ToR, per family`);
    t.ok(ps.every((p) => p.state === 'Established'), `${h.name}: every session Established`);
    t.ok(ps.filter((p) => p.asn === 65000).every((p) => p.prefixes.accepted > 0), `${h.name}: routes accepted from the ToR (distinct AS, no loop)`);
  }
  await labDown(t, lab);
});

t.test('racks sharing an AS (BIRD ToRs): with numAllowedLocalASNumbers every ping passes', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping', 'bird', 'birdc'] })) return;
  const lab = await labUp(t, 's', ['--topology', 'tor', '--tor', 'bird', '--racks', '2', '--rack-as', 'shared'], 'tor', 'bird', { racks: 2, rackAs: 'shared' });
  everyPing(t, lab);
  t.match(lab.out, /racks share AS 65001, numAllowedLocalASNumbers 1/);
  routesAsPlanned(t, lab);
  for (const rack of ['a', 'b']) {
    const sessions = birdBgp(join(lab.dir, `tor-${rack}.bird.ctl`));
    t.equal(sessions.length, 6, `tor-${rack}: its two hosts and the other ToR, per family`);
    t.ok(sessions.every((s) => s.state === 'Established'), `tor-${rack}: every session Established`);
  }
  for (const h of lab.plan.hosts) {
    const tor = peers(join(lab.dir, `${h.name}.sock`)).filter((p) => p.asn === 65000);
    t.ok(tor.length === 2 && tor.every((p) => p.prefixes.accepted > 0), `${h.name}: routes with its own AS in the path accepted from the ToR`);
  }
  await labDown(t, lab);
});

t.test('racks sharing an AS without numAllowedLocalASNumbers: the other racks\' routes are dropped as loops', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping', 'bird', 'birdc'] })) return;
  const opts: PlanOptions = { racks: 2, rackAs: 'shared', allowOwnAs: 0 };
  const lab = await labUp(t, 'n', ['--topology', 'tor', '--tor', 'bird', '--racks', '2', '--rack-as', 'shared', '--allow-own-as', '0'], 'tor', 'bird', opts);
  t.match(lab.out, /^\[.*\] lab: 32\/32 pings ok$/m, 'every ping within a rack passes');
  t.match(lab.out, /^\[.*\] lab: 32\/32 pings across racks fail, as the AS loop check demands$/m, 'every ping across racks fails');
  routesAsPlanned(t, lab);
  for (const h of lab.plan.hosts) {
    const sock = join(lab.dir, `${h.name}.sock`);
    const gone = [4, 6].flatMap((f) => expectedDropped(lab.plan, h.name, f as 4 | 6));
    t.equal(gone.length, 6, `${h.name}: the other rack's block and VMs, per family`);
    // The routes did reach the host (the ToR sent them: received), and none was taken (own AS in the path).
    const got = await waitFor(() => {
      const tor = peers(sock).filter((p) => p.asn === 65000);
      return tor.length === 2 && tor.every((p) => p.prefixes.received >= 3);
    });
    t.ok(got, `${h.name}: the ToR sent the other rack's routes`);
    t.ok(peers(sock).filter((p) => p.asn === 65000).every((p) => p.prefixes.accepted === 0), `${h.name}: and every route from the ToR was dropped`);
    const have = new Set([...routes(`${lab.prefix}${h.label}`, 4), ...routes(`${lab.prefix}${h.label}`, 6)].map((r) => r.dst));
    t.same(gone.filter((d) => have.has(d)), [], `${h.name}: none of the other rack's routes in the kernel`);
  }
  await labDown(t, lab);
});

t.test('a mixed cluster: k8s-1 runs BIRD 2 as Calico configures it, the others skeind; routes flow both ways', async (t) => {
  if (!requires(t, { root: true, commands: ['ip', 'ping', 'bird', 'birdc'] })) return;
  const lab = await labUp(t, 'x', ['--topology', 'mesh', '--bird-hosts', 'k8s-1'], 'mesh', 'frr', { birdHosts: ['k8s-1'] });
  everyPing(t, lab);
  // BIRD's routes on k8s-1 are proto bird; skein's on the others proto 171.
  routesAsPlanned(t, lab, (h) => (h === 'k8s-1' ? 'bird' : '171'));
  const sock = join(lab.dir, 'k8s-1.bird.ctl');
  const mesh = birdBgp(sock);
  t.same(mesh.map((s) => s.name).sort(), ['Mesh_10_10_0_12', 'Mesh_10_10_0_21', 'Mesh_10_10_0_22', 'Mesh_fd00_10__12', 'Mesh_fd00_10__21', 'Mesh_fd00_10__22'], 'BIRD: Calico\'s mesh sessions');
  t.ok(mesh.every((s) => s.state === 'Established'), `BIRD: every mesh session Established (${mesh.map((s) => s.state).join(', ')})`);
  const k8s1 = `${lab.prefix}k8s-1`;
  t.ok(routes(k8s1, 4, 'proto', 'bird').some((r) => r.dst === '10.65.0.0/26' && r.type === 'blackhole'), 'BIRD host: its block blackholed');
  for (const h of lab.plan.hosts.filter((x) => x.name !== 'k8s-1')) {
    const ps = peers(join(lab.dir, `${h.name}.sock`));
    t.ok(ps.some((p) => p.address === '10.10.0.11' && p.state === 'Established') && ps.some((p) => p.address === 'fd00:10::11' && p.state === 'Established'), `${h.name}: skeind's sessions with the BIRD host Established`);
    // Calico's export: the block aggregate, nothing inside it.
    for (const f of [4, 6] as const) {
      const have = routes(`${lab.prefix}${h.label}`, f, 'proto', '171');
      const pods = lab.plan.workloads.filter((w) => w.host === 'k8s-1').map((w) => (f === 4 ? w.ip : w.ip6));
      t.same(have.filter((r) => pods.includes(r.dst)).map((r) => r.dst), [], `${h.name} IPv${f}: no /32 inside the BIRD host's block`);
    }
  }
  // Live: a pod on the BIRD host (Felix's route, covered by the aggregate), and a pod on a skein host with an
  // address borrowed from the BIRD host's block (skein announces the /32, BIRD installs it over its blackhole).
  const common = ['--prefix', lab.prefix, '--state-dir', join(lab.dir, '..')];
  const a = await run(['add-pod', '--host', 'k8s-1', '--name', 'pod-1c', ...common], 30_000);
  t.equal(a.code, 0, `add-pod on the BIRD host ${a.err}`);
  t.ok(await waitFor(() => ping(`${lab.prefix}vm-2a`, '10.65.0.4') && ping(`${lab.prefix}vm-2a`, 'fd00:65::4')), 'a VM on a skein host reaches the new pod on the BIRD host');
  const b = await run(['add-pod', '--host', 'k8s-2', '--name', 'pod-2c', '--ip', '10.65.0.5', '--ip6', 'fd00:65::5', ...common], 30_000);
  t.equal(b.code, 0, `add-pod with a borrowed address ${b.err}`);
  t.ok(await waitFor(() => routes(k8s1, 4, 'proto', 'bird').some((r) => r.dst === '10.65.0.5' && r.gateway === '10.10.0.12')), 'the BIRD host learned the borrowed /32 from skein');
  t.ok(await waitFor(() => ping(`${lab.prefix}pod-1a`, '10.65.0.5') && ping(`${lab.prefix}pod-1a`, 'fd00:65::5')), 'a pod on the BIRD host reaches it (IPv4 and IPv6)');
  await labDown(t, lab);
});

t.test('clear errors for the new options', async (t) => {
  for (const [args, msg] of [
    [['--racks', '2', '--topology', 'mesh'], /^lab: --racks needs --topology tor with --tor frr or bird/],
    [['--racks', '2', '--tor', 'skein'], /^lab: --racks needs --topology tor with --tor frr or bird/],
    [['--racks', '7'], /^lab: --racks: "7" is not 2-4/],
    [['--rack-as', 'shared'], /^lab: --rack-as and --allow-own-as need --racks/],
    [['--racks', '2', '--tor', 'bird', '--allow-own-as', '11'], /^lab: --allow-own-as: "11" is not 0-10/],
    [['--bird-hosts', 'k8s-1', '--topology', 'tor'], /^lab: --bird-hosts: a mixed cluster runs the node-to-node mesh/],
    [['--bird-hosts', 'k8s-9', '--topology', 'mesh'], /^lab: no host k8s-9 \(hosts: k8s-1, k8s-2, os-1, os-2\)/],
    [['--tor', 'quagga'], /^lab: --tor: "quagga" is not frr, bird, skein or none/],
  ] as const) {
    const r = await run(['up', ...args, '--prefix', `slt${tag}z_`], 10_000);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.err, msg);
  }
  t.same(namespaces(`slt${tag}z_`), [], 'nothing built');
});
