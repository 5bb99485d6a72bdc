// A restart of skeind stays hitless with BFD on (issue 18), because the BFD sessions live in skein-bfdd.
// One host namespace runs skeind (file datastore, a BFDConfiguration for its interface "rs*", block 10.65.0.0/26)
// and skein-bfdd; a BIRD 2 ToR peers with it with `bfd on` and graceful restart.
// - kill -9 of skeind, restarted: BIRD's BFD session never leaves Up, BIRD keeps skeind's block the whole time
//   (BIRD sees the TCP session close and helps with graceful restart; BFD gives it no reason to stop helping),
//   skeind's kernel keeps BIRD's route, and the new skeind adopts the running BFD session (polled throughout).
// - kill -9 of skeind AND skein-bfdd (a power loss): BIRD's BFD goes Down, BIRD ends the session because of BFD
//   ("BFD session down"), not its hold timer, and drops skeind's block without graceful-restart retention.
// - bfd.companion: off, kill -9 of skeind: BIRD's BFD goes Down as well: the in-process BFD shares skeind's fate,
//   which is what the companion is for (and shows that the first check could fail).
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { requires } from '../helpers/env.js';
import { Bird } from '../helpers/bird.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

const ROOT = join(`${import.meta.dirname}/..`, '..');
const SKEIND = join(ROOT, 'dist/src/skeind.js');
const SKEINCTL = join(ROOT, 'dist/src/skeinctl.js');
const BFDD = join(ROOT, 'dist/src/skein-bfdd.js');
const BIRD_AS = 65011;
const HOST_AS = 64512;
const BLOCK = '10.65.0.0/26';
const BIRD_NET = '10.10.0.0/16';

const res = (kind: string, name: string, spec: unknown, labels?: Record<string, string>): unknown =>
  ({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name, ...(labels ? { labels } : {}) }, spec });

function resources(): string {
  return [
    res('ClusterInformation', 'default', { datastoreReady: true }),
    res('BGPConfiguration', 'default', { asNumber: HOST_AS, nodeToNodeMeshEnabled: false }),
    res('IPPool', 'pods', { cidr: '10.65.0.0/16', blockSize: 26 }),
    res('Node', 'host-a', { bgp: { ipv4Address: '10.0.0.1/24' } }, { bfd: 'on' }),
    res('BlockAffinity', 'host-a-10-65-0-0-26', { node: 'host-a', cidr: BLOCK, state: 'confirmed', deleted: 'false' }),
    res('IPAMBlock', '10-65-0-0-26', {
      cidr: BLOCK, affinity: 'host:host-a', allocations: new Array(64).fill(null), unallocated: [...Array(64).keys()],
      attributes: [], sequenceNumber: 1, deleted: false,
    }),
    res('BGPPeer', 'bird', { peerIP: '10.0.0.9', asNumber: BIRD_AS }),
    // 300 ms × 10 (3 s) rather than 100 ms × 3: on a loaded test machine a process can sit unscheduled for hundreds of
    // milliseconds, which BFD rightly reads as a dead peer (test/interop/failover-bfd.test.ts makes the same choice).
    res('BFDConfiguration', 'rs', {
      nodeSelector: 'bfd == "on"',
      interfaces: [{ matchPattern: 'rs*', minimumRecvInterval: '300ms', minimumSendInterval: '100ms', idleSendInterval: '1s', multiplier: 10 }],
    }),
  ].map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

const BIRD_CONF = `
router id 10.0.0.9;
protocol device { scan time 1; }
protocol static s4 { ipv4; route ${BIRD_NET} blackhole; }
protocol bfd { interface "*" { min rx interval 300 ms; min tx interval 100 ms; multiplier 10; }; }
protocol bgp sk {
  local 10.0.0.9 as ${BIRD_AS};
  neighbor 10.0.0.1 as ${HOST_AS};
  hold time 240;
  connect retry time 1;
  error wait time 1, 2;
  graceful restart on;
  bfd on;
  ipv4 { import all; export all; };
}
`;

interface Env {
  readonly lab: Lab;
  readonly bird: Bird;
  readonly nsHost: string;
  readonly dir: string;
  readonly lines: string[];
  readonly procs: ChildProcess[];
  startSkeind(): ChildProcess;
  startBfdd(): ChildProcess;
  kernel(): string;
  ready(): boolean;
  /** `skeinctl bfd --json`'s sessions */
  bfdSessions(): { peer: string; state: string; upCount: number; downCount: number; runsIn: string }[];
  birdBfd(): string;
  fromSkein(): string[];
  dump(): void;
}

async function setup(t: Test, companion: 'required' | 'off'): Promise<Env | null> {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return null;
  for (const f of [SKEIND, BFDD]) {
    if (!existsSync(f)) {
      t.fail(`${f} is missing: run npm run build first`);
      return null;
    }
  }
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skein-bfd-restart-'));
  const procs: ChildProcess[] = [];
  const nsBird = lab.ns('rsb');
  const nsHost = lab.ns('rsh');
  const bird = new Bird(nsBird);
  t.teardown(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await bird.stop().catch(() => undefined);
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  lab.link(nsHost, nsBird, 'rsbird', 'rshost');
  lab.addr(nsHost, 'rsbird', '10.0.0.1/24');
  lab.addr(nsBird, 'rshost', '10.0.0.9/24');
  await bird.start(BIRD_CONF);

  writeFileSync(join(dir, 'resources.yaml'), resources());
  const sock = join(dir, 'a.sock');
  const bfdSock = join(dir, 'bfd.sock');
  const cfg = join(dir, 'a.yaml');
  writeFileSync(cfg, [
    'nodeName: host-a',
    `datastore: { type: file, path: ${join(dir, 'resources.yaml')} }`,
    `control: { socket: ${sock} }`,
    `metrics: { listen: "127.0.0.1:${31180 + (process.pid % 500)}" }`,
    `bfd: { companion: ${companion}, socket: ${bfdSock} }`,
    'log: { level: info }',
    '',
  ].join('\n'));
  const lines: string[] = [];
  const spawnLogged = (tag: string, args: string[]): ChildProcess => {
    const p = nsSpawn(nsHost, 'node', args);
    procs.push(p);
    p.stdout?.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean).map((l) => `${tag} ${l}`)));
    p.stderr?.on('data', (d: Buffer) => lines.push(`${tag} stderr: ${d.toString()}`));
    return p;
  };
  const kernel = (): string => nsExec(nsHost, 'ip', ['route', 'show', 'proto', '171']);
  return {
    lab, bird, nsHost, dir, lines, procs,
    startSkeind: () => spawnLogged('skeind', [SKEIND, '--config', cfg]),
    startBfdd: () => spawnLogged('bfdd', [BFDD, '--socket', bfdSock]),
    kernel,
    bfdSessions: () => {
      try {
        return (JSON.parse(nsExec(nsHost, 'node', [SKEINCTL, '--socket', sock, 'bfd', '--json'])) as { sessions: { peer: string; state: string; upCount: number; downCount: number; runsIn: string }[] }).sessions;
      } catch {
        return [];
      }
    },
    ready: () => {
      try {
        return (JSON.parse(nsExec(nsHost, 'node', [SKEINCTL, '--socket', sock, 'status', '--json'])) as { ready?: boolean }).ready === true;
      } catch {
        return false;
      }
    },
    // "10.0.0.1   rshost   Up   12:00:00.000   0.300   3.000"
    birdBfd: () => /^10\.0\.0\.1\s+\S+\s+(\S+)/m.exec(bird.birdc('show', 'bfd', 'sessions'))?.[1] ?? '',
    fromSkein: () => [...bird.birdc('show', 'route', 'protocol', 'sk').matchAll(/^(\d+\.\d+\.\d+\.\d+\/\d+)\s/gm)].map((m) => m[1] as string),
    dump: () => t.comment(`log:\n${lines.slice(-40).join('\n')}\nbird:\n${bird.birdc('show', 'protocols', 'all', 'sk')}\n${bird.birdc('show', 'bfd', 'sessions')}\nkernel:\n${kernel()}`),
  };
}

/** BIRD's route in the kernel through BIRD (`nhid N` comes first when fib/ writes it through a nexthop object). */
function viaBird(kernel: string): boolean {
  return new RegExp(`^${BIRD_NET.replace(/[./]/g, '\\$&')} (?:nhid \\d+ )?via 10\\.0\\.0\\.9 `, 'm').test(kernel);
}

async function killed(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  await exited;
}

/** Everything up: BGP Established both ways, BFD Up at BIRD, the routes in place, skeind ready. */
async function upAndRunning(env: Env): Promise<void> {
  try {
    await until(() => env.fromSkein().includes(BLOCK), 'BIRD learns skeind\'s block', 60_000, 200);
    await until(() => viaBird(env.kernel()), 'skeind installs BIRD\'s route', 30_000, 200);
    await until(() => env.birdBfd() === 'Up', 'BIRD\'s BFD session Up', 30_000, 200);
    await until(() => env.ready(), 'skeind ready', 30_000, 250);
  } catch (e) {
    env.dump();
    throw e;
  }
}

t.test('kill -9 of skeind with skein-bfdd running: BIRD\'s BFD stays Up and nothing is lost anywhere', async (t) => {
  const env = await setup(t, 'required');
  if (!env) return;
  env.startBfdd();
  let a = env.startSkeind();
  await upAndRunning(env);
  t.ok(env.lines.some((l) => l.includes('bfd runs in skein-bfdd')), 'skeind uses the companion');
  t.match(env.bird.birdc('show', 'bfd', 'sessions'), /10\.0\.0\.1/, 'BIRD has a BFD session with the host');

  let polls = 0;
  let bfdNotUp = 0;
  let birdLost = 0;
  let kernelLost = 0;
  const states = new Set<string>();
  let stop = false;
  const poller = (async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the test while this loop awaits
    while (!stop && polls < 4000) {
      polls++;
      const s = env.birdBfd();
      states.add(s);
      if (s !== 'Up') bfdNotUp++;
      if (!env.fromSkein().includes(BLOCK)) birdLost++;
      if (!viaBird(env.kernel())) kernelLost++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await killed(a);
    await until(() => !/BGP state:\s+Established/.test(env.bird.birdc('show', 'protocols', 'all', 'sk')), 'BIRD sees the BGP session go', 60_000, 100);
    t.match(env.bird.birdc('show', 'protocols', 'all', 'sk'), /Neighbor graceful restart active/, 'BIRD helps with graceful restart');
    // Away for 5 s and for at least five polls (a loaded machine polls slowly): several BFD Detection Times (3 s).
    const gapStart = polls;
    await new Promise((r) => setTimeout(r, 5000));
    await until(() => polls - gapStart >= 5, 'five polls while skeind is away', 30_000, 50);
    a = env.startSkeind();
    await until(() => env.ready(), 'skeind ready again', 60_000, 250);
    await until(() => !/graceful restart active/.test(env.bird.birdc('show', 'protocols', 'all', 'sk')), 'BIRD ends the graceful restart', 30_000, 200);
    await until(() => env.lines.some((l) => l.includes('session adopted')), 'the companion hands the running session to the new skeind', 30_000, 200);
  } catch (e) {
    env.dump();
    throw e;
  } finally {
    stop = true;
    await poller;
  }
  t.ok(polls >= 5, `polled BIRD and the kernel ${polls} times through the restart`);
  t.equal(bfdNotUp, 0, `BIRD's BFD session never left Up (states seen: ${[...states].join(', ')})`);
  t.equal(birdLost, 0, 'BIRD never lost skeind\'s block');
  t.equal(kernelLost, 0, 'skeind\'s kernel never lost BIRD\'s route');
  t.notMatch(env.bird.birdc('show', 'protocols', 'all', 'sk'), /BFD session down/, 'BIRD never ended the session for BFD');
  t.notOk(env.lines.some((l) => l.includes('bfd session down')), 'the new skeind saw no BFD Down');
  t.ok(env.fromSkein().includes(BLOCK) && env.birdBfd() === 'Up', 'everything in place afterwards');
  const shown = await until(() => env.bfdSessions().find((s) => s.peer === '10.0.0.9' && s.state === 'Up'), 'skeinctl bfd of the new skeind shows the adopted session Up', 15_000, 250).catch(() => undefined);
  t.ok(shown, `skeinctl bfd shows the session Up through the companion (${JSON.stringify(env.bfdSessions())})`);
  t.same(shown && { up: shown.upCount, down: shown.downCount }, { up: 1, down: 0 }, 'the same session as before the restart: up once, never down');
  t.equal(shown?.runsIn, 'skein-bfdd', 'skeinctl bfd says the companion runs it');
  t.match(nsExec(env.nsHost, 'node', [SKEINCTL, '--socket', join(env.dir, 'a.sock'), 'bfd']), /RUNS IN[\s\S]*10\.0\.0\.9 .* skein-bfdd/, 'and in its table');
  void a;
});

t.test('kill -9 of skeind and skein-bfdd (power loss): BIRD detects it by BFD and drops the routes', async (t) => {
  const env = await setup(t, 'required');
  if (!env) return;
  const b = env.startBfdd();
  const a = env.startSkeind();
  await upAndRunning(env);
  await Promise.all([killed(a), killed(b)]);
  try {
    await until(() => env.birdBfd() !== 'Up', 'BIRD\'s BFD leaves Up', 30_000, 100);
    await until(() => !env.fromSkein().includes(BLOCK), 'BIRD drops skeind\'s block', 30_000, 100);
  } catch (e) {
    env.dump();
    throw e;
  }
  // The hold time is 240 s: only BFD can have ended the session this early, and BIRD says so.
  t.match(env.bird.birdc('show', 'protocols', 'all', 'sk'), /BFD session down/, 'BIRD ended the session because of BFD');
  t.notMatch(env.bird.birdc('show', 'protocols', 'all', 'sk'), /Neighbor graceful restart active/, 'no graceful-restart retention after a BFD Down');
});

t.test('bfd.companion: off: kill -9 of skeind takes BFD down with it (what the companion prevents)', async (t) => {
  const env = await setup(t, 'off');
  if (!env) return;
  const a = env.startSkeind();
  await upAndRunning(env);
  t.ok(env.lines.some((l) => l.includes('bfd runs in skeind (bfd.companion: off)')), 'skeind runs BFD itself');
  t.same(env.bfdSessions().map((s) => s.runsIn), ['skeind'], 'and skeinctl bfd says so');
  await killed(a);
  try {
    await until(() => env.birdBfd() !== 'Up', 'BIRD\'s BFD leaves Up', 30_000, 100);
    await until(() => !env.fromSkein().includes(BLOCK), 'BIRD drops skeind\'s block', 30_000, 100);
  } catch (e) {
    env.dump();
    throw e;
  }
  t.match(env.bird.birdc('show', 'protocols', 'all', 'sk'), /BFD session down/, 'BIRD ended the session because of BFD');
});
