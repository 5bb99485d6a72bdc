// The lab CLI (dist/src/lab/main.js) as the lab tests drive it: a fresh prefix and state directory per lab, `up`
// with every check of a finished lab (exit 0, every ping, the summary, every host's kernel routes, nothing in the
// root namespace, the recorded processes), and `down` with its checks. Shared by test/ops/lab-e2e and test/ops/lab-live so
// that a lab shape that both need is built once: lab-live runs its live changes on the lab it has just checked
// (a lab `up` is 25–35 s of the CI run).
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive } from '../../src/lab/system.js';
import { expectedRemote, makePlan, type TorKind, type Topology } from '../../src/lab/topology.js';
import { runCommand, type RunResult } from './run.js';

const root = join(import.meta.dirname, '..', '..');
export const LAB_MAIN = join(root, 'dist/src/lab/main.js');

export const runLab = (args: string[], timeoutMs: number): Promise<RunResult> => runCommand(process.execPath, [LAB_MAIN, ...args], { timeoutMs });

export function labNamespaces(prefix: string): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}

// the lab's own test of a process (a zombie counts as gone), so that `down` and the test agree
export { alive };

export interface LabState { pids: { name: string; pid: number }[]; namespaces: string[] }
export interface FreshLab { prefix: string; stateDir: string; opts: string[] }

/** A lab prefix and state directory of its own; whatever is left is removed at teardown, also after a failure. */
export function freshLab(t: Test, prefix: string, stateDirStem = 'skein-lab-test-'): FreshLab {
  const stateDir = mkdtempSync(join(tmpdir(), stateDirStem));
  const opts = ['--prefix', prefix, '--state-dir', stateDir];
  t.teardown(async () => {
    if (labNamespaces(prefix).length > 0) await runLab(['down', ...opts], 30_000);
    rmSync(stateDir, { recursive: true, force: true });
  });
  return { prefix, stateDir, opts };
}

/**
 * `lab up` and every check of the running lab. Returns the recorded state for downAndCheck, or undefined when the
 * lab did not come up (the failures are recorded; there is nothing to go on with).
 */
export async function upAndCheck(t: Test, lab: FreshLab, topology: Topology, datastore: 'file' | 'etcd' = 'file', tor: TorKind = 'frr'): Promise<LabState | undefined> {
  const { prefix, stateDir, opts } = lab;
  const r = await runLab(['up', '--topology', topology, ...(topology === 'tor' ? ['--tor', tor] : []), '--datastore', datastore, ...opts], 90_000);
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
  if (r.code !== 0) return undefined;

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

  const state = JSON.parse(readFileSync(join(stateDir, prefix, 'state.json'), 'utf8')) as LabState;
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
  return state;
}

/** `lab down`: exit 0, no namespace, none of the recorded processes, no state directory left. */
export async function downAndCheck(t: Test, lab: FreshLab, state: LabState): Promise<void> {
  const d = await runLab(['down', ...lab.opts], 30_000);
  t.equal(d.code, 0, 'down exits 0');
  t.same(labNamespaces(lab.prefix), [], 'no namespace left');
  t.ok(state.pids.every((p) => !alive(p.pid)), 'no process left');
  t.notOk(existsSync(join(lab.stateDir, lab.prefix)), 'state directory removed');
}
