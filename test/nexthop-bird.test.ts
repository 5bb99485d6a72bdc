// Bad next hops from a real peer, against the real kernel (issue 15): skeind in a namespace with two BIRD 2 eBGP
// peers. BIRD "good" announces each test prefix with a working next hop (itself) and a long AS_PATH; BIRD "bad"
// announces the same prefixes with a shorter AS_PATH (it would win) and a next hop that is unresolvable, skein's own
// address, or inside the prefix itself (resolvable only through the route), plus one prefix nobody else has.
// Asserted: the kernel keeps the working route (never replaced by the bad path), the bad-only prefix is neither
// installed nor advertised to the other peer, and `skeinctl routes` shows each bad path as unusable with its reason.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from './helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from './helpers/netns.js';
import { runCommand } from './helpers/run.js';
import { Bird } from './helpers/bird.js';

const root = join(import.meta.dirname, '..');
const skeind = join(root, 'dist/src/skeind.js');
const skeinctl = join(root, 'dist/src/skeinctl.js');

const CASES = [
  { prefix: '10.90.1.0/24', nh: '203.0.113.9', code: 'unresolvable' },
  { prefix: '10.90.2.0/24', nh: '10.0.2.1', code: 'own-address' },
  { prefix: '10.90.3.0/24', nh: '10.90.3.1', code: 'unresolvable' }, // only through the route itself
] as const;
const BAD_ONLY = '10.90.5.0/24';

const birdGood = `
router id 10.0.1.2;
protocol device { scan time 1; }
protocol static s4 { ipv4; ${CASES.map((c) => `route ${c.prefix} blackhole;`).join(' ')} }
protocol bgp sk {
  local 10.0.1.2 as 65010; neighbor 10.0.1.1 as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export filter { bgp_path.prepend(65010); bgp_path.prepend(65010); accept; }; };
}
`;

const birdBad = `
router id 10.0.2.2;
protocol device { scan time 1; }
protocol static s4 { ipv4; ${CASES.map((c) => `route ${c.prefix} blackhole;`).join(' ')} route ${BAD_ONLY} blackhole; }
protocol bgp sk {
  local 10.0.2.2 as 65020; neighbor 10.0.2.1 as 64512;
  hold time 30; connect retry time 2; error wait time 1, 5;
  ipv4 {
    import all;
    next hop keep;
    export filter {
      ${CASES.map((c) => `if net = ${c.prefix} then bgp_next_hop = ${c.nh};`).join('\n      ')}
      if net = ${BAD_ONLY} then bgp_next_hop = 203.0.113.9;
      accept;
    };
  };
}
`;

function resources(): string {
  const docs = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'nh-a' }, spec: { bgp: { ipv4Address: '10.0.1.1/24' } } },
    // The test's prefixes lie in an IP pool: Calico's export filter passes pool routes on between peers (no transit
    // otherwise), which is what lets the bad peer get the working path from skein.
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'nh-pool' }, spec: { cidr: '10.90.0.0/16', ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'good' }, spec: { peerIP: '10.0.1.2', asNumber: 65010 } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'bad' }, spec: { peerIP: '10.0.2.2', asNumber: 65020 } },
  ];
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

interface KRoute { dst: string; gateway?: string; protocol?: string }
interface CtlPath { from: string; nextHops: string[]; usable?: boolean; unusableReason?: string | null; unusableCode?: string | null }
interface CtlRoute { prefix: string; installed: boolean; best: CtlPath | null; paths: CtlPath[] }

t.test('skeind with BIRD peers: bad next hops kept but unusable, working kernel routes kept, nothing bad advertised', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skein-nh-'));
  const procs: ChildProcess[] = [];
  const lines: string[] = [];
  t.teardown(() => {
    for (const d of procs) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const ns = lab.ns('nhsk');
  const nsGood = lab.ns('nhg');
  const nsBad = lab.ns('nhb');
  const [sg, g] = lab.link(ns, nsGood);
  const [sb, b] = lab.link(ns, nsBad);
  lab.addr(ns, sg, '10.0.1.1/24');
  lab.addr(nsGood, g, '10.0.1.2/24');
  lab.addr(ns, sb, '10.0.2.1/24');
  lab.addr(nsBad, b, '10.0.2.2/24');

  const good = new Bird(nsGood);
  const bad = new Bird(nsBad);
  t.teardown(async () => {
    await good.stop();
    await bad.stop();
  });
  await good.start(birdGood);
  await bad.start(birdBad);

  const resFile = join(dir, 'resources.yaml');
  writeFileSync(resFile, resources());
  const sock = join(dir, 'ctl.sock');
  const cfg = join(dir, 'skeind.yaml');
  writeFileSync(cfg, ['nodeName: nh-a', `datastore: { type: file, path: ${resFile} }`, `control: { socket: ${sock} }`, 'metrics: { listen: "127.0.0.1:29979" }', 'log: { level: info }', ''].join('\n'));
  const daemon = nsSpawn(ns, 'node', [skeind, '--config', cfg]);
  procs.push(daemon);
  daemon.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  daemon.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));

  const ctl = async (...args: string[]): Promise<string> => {
    const r = await runCommand('node', [skeinctl, '--socket', sock, ...args], { timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`skeinctl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
    return r.out;
  };
  const routes = async (): Promise<CtlRoute[]> => (JSON.parse(await ctl('routes', '--json')) as { routes: CtlRoute[] }).routes;
  const kernel = (): KRoute[] => JSON.parse(nsExec(ns, 'ip', ['-j', 'route', 'show', 'table', 'main'])) as KRoute[];
  const diag = (): void => {
    t.comment(`skeind log (last lines):\n${lines.slice(-30).join('\n')}`);
    t.comment(`good BIRD:\n${good.protocol('sk').text}\nbad BIRD:\n${bad.protocol('sk').text}`);
  };

  try {
    // Both BIRDs' paths for every prefix in skein's table.
    const rs = await until(async () => {
      const r = await routes();
      // BIRD 2.0.12 does not send a next hop equal to the neighbour's own address (it is left out there), so that
      // case may arrive with one path only; the others must have both
      const ok = CASES.every((c) => (r.find((x) => x.prefix === c.prefix)?.paths.length ?? 0) === (c.code === 'own-address' ? 1 : 2) || c.code === 'own-address')
        && CASES.every((c) => r.some((x) => x.prefix === c.prefix)) && r.some((x) => x.prefix === BAD_ONLY);
      return ok ? r : undefined;
    }, 'both peers\' paths in skein', 60_000, 300);
    for (const c of CASES) {
      const r = rs!.find((x) => x.prefix === c.prefix)!;
      t.equal(r.best?.from, '10.0.1.2', `${c.prefix}: the working path is best despite its longer AS_PATH`);
      t.equal(r.best?.usable, true);
      const badPath = r.paths.find((p) => p.from === '10.0.2.2');
      if (c.code === 'own-address' && badPath === undefined) {
        t.comment(`${c.prefix}: BIRD did not send next hop ${c.nh} (our own address); covered by test/engine-nexthop`);
        continue;
      }
      t.same(badPath?.nextHops, [c.nh], `${c.prefix}: BIRD sent next hop ${c.nh}`);
      t.equal(badPath?.usable, false, `${c.prefix}: the bad path is kept but unusable`);
      t.equal(badPath?.unusableCode, c.code, `${c.prefix}: ${c.code}`);
      t.match(badPath?.unusableReason, new RegExp(c.nh.replace(/\./g, '\\.')), 'the reason names the next hop');
    }
    const only = rs!.find((x) => x.prefix === BAD_ONLY)!;
    t.equal(only.best?.usable, false, `${BAD_ONLY}: its only path is unusable`);
    t.equal(only.installed, false, `${BAD_ONLY}: not installed`);

    // The kernel: the working routes via the good peer; the bad-only prefix absent; nothing via a bad next hop.
    const k = await until(() => {
      const kr = kernel();
      return CASES.every((c) => kr.some((x) => x.dst === c.prefix && x.gateway === '10.0.1.2')) ? kr : undefined;
    }, 'working routes in the kernel', 20_000, 200);
    t.pass('each prefix is in the kernel via the good peer');
    t.notOk(k!.some((x) => x.dst === BAD_ONLY), `${BAD_ONLY} not in the kernel`);
    t.notOk(k!.some((x) => x.gateway !== undefined && ['203.0.113.9', '10.0.2.1', '10.90.3.1'].includes(x.gateway)), 'no kernel route via a bad next hop');

    // Advertisements: the good peer never hears of the bad-only prefix; the bad peer gets the good path.
    await until(() => bad.routes().some((r) => r.prefix === CASES[0].prefix && r.from === 'sk'), 'bad BIRD gets the working path from skein', 20_000, 300);
    const atBad = bad.routes().find((r) => r.prefix === CASES[0].prefix && r.from === 'sk');
    t.match(JSON.stringify(atBad), /65010/, 'what skein advertises is the good peer\'s path');
    t.notOk(good.routes().some((r) => r.prefix === BAD_ONLY), `${BAD_ONLY} never advertised to the good peer`);
    t.notOk(good.routes().some((r) => r.from === 'sk' && CASES.some((c) => c.prefix === r.prefix)), 'the good peer gets nothing back for its own prefixes');

    // The text view shows the reason.
    const text = await ctl('routes', CASES[0].prefix);
    t.match(text, /unusable: next hop 203\.0\.113\.9 is not resolvable/, 'skeinctl routes shows why');

    // The host gets 203.0.113.0/24 as a connected subnet (not through BGP): the bad-only prefix becomes usable, is
    // installed and advertised. (A next hop resolvable only through a remote route is usable too, but the kernel
    // refuses a gateway that is not on a link: skein does not yet install recursive next hops.)
    nsExec(ns, 'ip', ['addr', 'add', '203.0.113.1/24', 'dev', sb]);
    await until(() => kernel().some((x) => x.dst === BAD_ONLY && x.gateway === '203.0.113.9'), `${BAD_ONLY} installed once its next hop resolves`, 30_000, 300);
    t.pass(`${BAD_ONLY} installed once its next hop is on a connected subnet`);
    await until(() => good.routes().some((r) => r.prefix === BAD_ONLY && r.from === 'sk'), `${BAD_ONLY} advertised to the good peer`, 20_000, 300);
    t.pass('and advertised');
    t.ok(lines.some((l) => /next-hop reachability read from the kernel/.test(l)), 'the feed logged its reads');
  } catch (e) {
    diag();
    throw e;
  }
});
