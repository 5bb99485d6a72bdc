// Graceful restart against BIRD 2 (RFC 4724), each side in its own namespace.
// - skein as helper: BIRD (graceful restart on) is killed with SIGKILL and started again with -R; skein keeps its
//   routes through the gap, and after BIRD's End-of-RIB sweeps the one BIRD no longer announces. With BIRD's
//   graceful restart off, the routes go at once.
// - skein restarting: the speaker (in a child process) is killed with SIGKILL; BIRD keeps skein's routes (stale)
//   the whole time — polled without a gap — and the new speaker (R bit) refreshes them.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { Bird as SharedBird } from '../helpers/bird.js';
import { AGENT, AgentClient } from '../helpers/agent-client.js';
import type { SpeakerOptions } from '../../bgp/index.js';

const BIRD_AS = 65010;
const SKEIN_AS = 65020;

/** BIRD with the two questions these tests ask of it. */
class Bird extends SharedBird {
  bgpState(): string {
    return /BGP state:\s+(\S+)/.exec(this.birdc('show', 'protocols', 'all', 'sk'))?.[1] ?? '';
  }

  /** Prefixes BIRD holds from skein (protocol sk). */
  fromSkein(): string[] {
    const text = this.birdc('show', 'route', 'protocol', 'sk');
    return [...text.matchAll(/^(\d+\.\d+\.\d+\.\d+\/\d+)\s/gm)].map((m) => m[1] as string).sort();
  }
}

function birdConfig(o: { gr: boolean; statics: string[] }): string {
  return `
router id 10.0.0.1;
protocol device { scan time 1; }
protocol static s4 { ipv4; ${o.statics.map((p) => `route ${p} blackhole;`).join(' ')} }
protocol bgp sk {
  local 10.0.0.1 as ${BIRD_AS};
  neighbor 10.0.0.2 as ${SKEIN_AS};
  hold time 30;
  connect retry time 1;
  error wait time 1, 2;
  graceful restart ${o.gr ? 'on' : 'off'};
  graceful restart time 60;
  ipv4 { import all; export all; };
}
`;
}

function agentConfig(restarting: boolean): SpeakerOptions {
  return {
    localAsn: SKEIN_AS,
    routerId: '10.0.0.2',
    listenAddress: '10.0.0.2',
    listenPort: 179,
    holdTime: 30,
    connectRetryTime: 1,
    idleHold: { initial: 1, max: 2 },
    forwardingState: true,
    restarting,
    peers: [{ address: '10.0.0.1', asn: BIRD_AS, restartTime: 60, families: ['ipv4-unicast'] }],
  };
}

async function setup(t: Test): Promise<{ lab: Lab; nsBird: string; nsSkein: string } | null> {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return null;
  if (!existsSync(AGENT)) {
    t.fail(`${AGENT} is missing: run npm run build first`);
    return null;
  }
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const nsBird = lab.ns('bird');
  const nsSkein = lab.ns('skein');
  const [vb, vs] = lab.link(nsBird, nsSkein);
  lab.addr(nsBird, vb, '10.0.0.1/24');
  lab.addr(nsSkein, vs, '10.0.0.2/24');
  return { lab, nsBird, nsSkein };
}

function spawnAgent(t: Test, ns: string): AgentClient {
  return AgentClient.spawn(t, ns);
}

for (const gr of [true, false]) {
  t.test(`skein as helper: BIRD (graceful restart ${gr ? 'on' : 'off'}) is killed and restarted`, async (t) => {
    const env = await setup(t);
    if (!env) return;
    const bird = new Bird(env.nsBird);
    t.teardown(() => bird.stop());
    await bird.start(birdConfig({ gr, statics: ['10.10.0.0/16', '10.11.0.0/16'] }));
    const agent = spawnAgent(t, env.nsSkein);
    await agent.call('start', { config: agentConfig(false) });
    const both = ['10.10.0.0/16', '10.11.0.0/16'];
    const diag = async (): Promise<string> =>
      `skein: ${JSON.stringify(await agent.peer())}\nroutes: ${JSON.stringify(await agent.prefixes())}\nevents: ${JSON.stringify(agent.events.slice(-10))}\nbird log: ${bird.log.slice(-2000)}`;
    try {
      await until(async () => JSON.stringify(await agent.prefixes()) === JSON.stringify(both), 'skein learns both routes', 30_000, 200);
    } catch (e) {
      t.comment(await diag());
      throw e;
    }

    await bird.kill();
    await until(async () => (await agent.peer())?.state !== 'Established', 'skein sees the session go', 10_000, 100);
    if (!gr) {
      await until(async () => (await agent.prefixes()).length === 0, 'routes flushed at once without graceful restart', 5_000, 100);
      t.pass('no graceful restart: the routes went with the session');
      return;
    }
    // 10.11/16 is gone from BIRD's config when it comes back; 10.10/16 must never leave skein's RIB.
    let lost10 = 0;
    let polls = 0;
    let stop = false;
    const poller = (async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the test while this loop awaits
      while (!stop && polls < 2000) {
        polls++;
        if (!(await agent.prefixes()).includes('10.10.0.0/16')) lost10++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // The gap: BIRD is down for at least 1.5 s and for at least 5 polls of skein's RIB (on a loaded machine a
    // poll can take longer than the gap; what matters is that the poller looked while BIRD was away).
    const gapStart = polls;
    await new Promise((r) => setTimeout(r, 1500));
    await until(() => polls - gapStart >= 5, 'five polls of skein\'s RIB while BIRD is down', 30_000, 50);
    t.same(await agent.prefixes(), both, 'both routes kept (stale) while BIRD is down');
    await bird.start(birdConfig({ gr, statics: ['10.10.0.0/16'] }), { recovery: true });
    try {
      await until(async () => (await agent.peer())?.state === 'Established', 'session back', 30_000, 100);
      await until(async () => JSON.stringify(await agent.prefixes()) === JSON.stringify(['10.10.0.0/16']), 'the route BIRD dropped is swept after its End-of-RIB', 30_000, 100);
    } catch (e) {
      t.comment(await diag());
      throw e;
    } finally {
      stop = true;
      await poller;
    }
    t.ok(polls >= 5, `polled skein's RIB ${polls} times through the restart, at least 5 while BIRD was down`);
    t.equal(lost10, 0, '10.10.0.0/16 never left skein\'s RIB during BIRD\'s restart');
    const logs = JSON.stringify(agent.events);
    t.match(logs, /keeping its routes as stale/, 'skein logged the graceful restart');
    t.match(logs, /1 stale route\(s\) removed \(End-of-RIB\)/, 'the sweep came from BIRD\'s End-of-RIB, not a timer or a flush');
    t.notMatch(logs, /did not preserve forwarding state/, 'BIRD kept the F bit: no flush on the new session');
  });
}

t.test('skein restarting: the speaker is killed with SIGKILL; BIRD keeps its routes and they are refreshed', async (t) => {
  const env = await setup(t);
  if (!env) return;
  const bird = new Bird(env.nsBird);
  t.teardown(() => bird.stop());
  await bird.start(birdConfig({ gr: true, statics: ['10.10.0.0/16'] }));
  const mine = ['10.20.0.0/16', '10.21.0.0/16'];
  let agent = spawnAgent(t, env.nsSkein);
  await agent.call('start', { config: agentConfig(false) });
  for (const p of mine) await agent.call('originate', { prefix: p });
  await until(() => JSON.stringify(bird.fromSkein()) === JSON.stringify(mine), 'BIRD learns skein\'s routes', 30_000, 200);

  let minCount = Infinity;
  let polls = 0;
  let stop = false;
  const poller = (async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the test while this loop awaits
    while (!stop && polls < 2000) {
      polls++;
      minCount = Math.min(minCount, bird.fromSkein().length);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const old = agent.proc;
    const exited = new Promise<void>((r) => old.once('exit', () => r()));
    old.kill('SIGKILL');
    await exited;
    await until(() => bird.bgpState() !== 'Established', 'BIRD sees the session go', 60_000, 100);
    t.same(bird.fromSkein(), mine, 'BIRD keeps skein\'s routes while skein is away');
    t.match(bird.birdc('show', 'protocols', 'all', 'sk'), /Neighbor graceful restart active/, 'BIRD is helping: graceful restart active for skein');
    const gapStart = polls;
    await new Promise((r) => setTimeout(r, 1000));
    await until(() => polls - gapStart >= 5, 'five polls of BIRD while skein is away', 30_000, 50);
    agent = spawnAgent(t, env.nsSkein);
    await agent.call('start', { config: agentConfig(true) });
    for (const p of mine) await agent.call('originate', { prefix: p });
    await until(async () => (await agent.peer())?.state === 'Established', 'skein is back', 30_000, 100);
    await until(async () => (await agent.prefixes()).includes('10.10.0.0/16'), 'skein re-learns BIRD\'s route', 30_000, 100);
    // BIRD's End-of-RIB handling: once it has our End-of-RIB, its stale copies are replaced by the fresh ones.
    await until(() => !/graceful restart active/.test(bird.birdc('show', 'protocols', 'all', 'sk')), 'BIRD ends the graceful restart (our End-of-RIB)', 30_000, 200);
  } finally {
    stop = true;
    await poller;
  }
  t.ok(polls >= 5, `polled BIRD ${polls} times through skein's restart, at least 5 while skein was away`);
  t.equal(minCount, mine.length, 'BIRD\'s count of skein routes never dropped');
  t.same(bird.fromSkein(), mine, 'the refreshed routes are all there');
  await agent.call('stop', {}).catch(() => undefined);
});

// ---------------------------------------------------------------- skeind with its FIB, killed with SIGKILL

const ROOT = join(`${import.meta.dirname}/..`, '..');
const SKEIND = join(ROOT, 'dist/src/skeind.js');
const SKEINCTL = join(ROOT, 'dist/src/skeinctl.js');

/** One node host-a (AS 64512, block 10.65.0.0/26) with BIRD at 10.0.0.9 as a global BGPPeer. */
function skeindResources(): string {
  const docs: unknown[] = [
    { apiVersion: 'projectcalico.org/v3', kind: 'ClusterInformation', metadata: { name: 'default' }, spec: { datastoreReady: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, nodeToNodeMeshEnabled: false } },
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.65.0.0/16', blockSize: 26 } },
    { apiVersion: 'projectcalico.org/v3', kind: 'Node', metadata: { name: 'host-a' }, spec: { bgp: { ipv4Address: '10.0.0.1/24' } } },
    { apiVersion: 'projectcalico.org/v3', kind: 'BlockAffinity', metadata: { name: 'host-a-10-65-0-0-26' }, spec: { node: 'host-a', cidr: '10.65.0.0/26', state: 'confirmed', deleted: 'false' } },
    {
      apiVersion: 'projectcalico.org/v3', kind: 'IPAMBlock', metadata: { name: '10-65-0-0-26' },
      spec: { cidr: '10.65.0.0/26', affinity: 'host:host-a', allocations: new Array(64).fill(null), unallocated: [...Array(64).keys()], attributes: [], sequenceNumber: 1, deleted: false },
    },
    { apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name: 'bird' }, spec: { peerIP: '10.0.0.9', asNumber: BIRD_AS } },
  ];
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

t.test('skeind with its FIB is killed with SIGKILL: BIRD keeps its routes, its kernel keeps BIRD\'s, nothing flaps', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  if (!existsSync(SKEIND)) {
    t.fail(`${SKEIND} is missing: run npm run build first`);
    return;
  }
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skein-gr-skeind-'));
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const nsBird = lab.ns('bird');
  const nsA = lab.ns('a');
  const [vb, va] = lab.link(nsBird, nsA);
  lab.addr(nsBird, vb, '10.0.0.9/24');
  lab.addr(nsA, va, '10.0.0.1/24');

  const bird = new Bird(nsBird);
  t.teardown(() => bird.stop());
  await bird.start(`
router id 10.0.0.9;
protocol device { scan time 1; }
protocol static s4 { ipv4; route 10.10.0.0/16 blackhole; route 10.12.0.0/16 blackhole; }
protocol bgp sk {
  local 10.0.0.9 as ${BIRD_AS};
  neighbor 10.0.0.1 as 64512;
  hold time 30;
  connect retry time 1;
  error wait time 1, 2;
  graceful restart on;
  ipv4 { import all; export all; };
}
`);
  writeFileSync(join(dir, 'resources.yaml'), skeindResources());
  const sock = join(dir, 'a.sock');
  const cfg = join(dir, 'a.yaml');
  writeFileSync(cfg, [
    'nodeName: host-a',
    `datastore: { type: file, path: ${join(dir, 'resources.yaml')} }`,
    `control: { socket: ${sock} }`,
    `metrics: { listen: "127.0.0.1:${30180 + (process.pid % 500)}" }`,
    'log: { level: info }',
    '',
  ].join('\n'));
  const lines: string[] = [];
  const startSkeind = (): ChildProcess => {
    const p = nsSpawn(nsA, 'node', [SKEIND, '--config', cfg]);
    procs.push(p);
    p.stdout?.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    p.stderr?.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
    return p;
  };
  const kernel = (): string => nsExec(nsA, 'ip', ['route', 'show', 'proto', '171']);
  const ready = async (): Promise<boolean> => {
    try {
      const out = nsExec(nsA, 'node', [SKEINCTL, '--socket', sock, 'status', '--json']);
      return (JSON.parse(out) as { ready?: boolean }).ready === true;
    } catch {
      return false;
    }
  };
  const dump = (): void => {
    t.comment(`skeind:\n${lines.slice(-30).join('\n')}\nbird:\n${bird.birdc('show', 'protocols', 'all', 'sk')}\nkernel:\n${kernel()}`);
  };

  let a = startSkeind();
  try {
    await until(() => bird.fromSkein().includes('10.65.0.0/26'), 'BIRD learns skein\'s block', 45_000, 200);
    await until(() => /10\.10\.0\.0\/16 (nhid \d+ )?via 10\.0\.0\.9/.test(kernel()) && /10\.12\.0\.0\/16 (nhid \d+ )?via 10\.0\.0\.9/.test(kernel()), 'skeind installs BIRD\'s routes', 30_000, 200);
    await until(ready, 'skeind ready', 30_000, 250);
  } catch (e) {
    dump();
    throw e;
  }

  let polls = 0;
  let birdLost = 0;
  let kernelLost = 0;
  let stop = false;
  const poller = (async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the test while this loop awaits
    while (!stop && polls < 4000) {
      polls++;
      if (!bird.fromSkein().includes('10.65.0.0/26')) birdLost++;
      const k = kernel();
      // `nhid N` precedes the via of a route through a nexthop object (fib/nexthops.ts)
      if (!/10\.10\.0\.0\/16 (nhid \d+ )?via 10\.0\.0\.9/.test(k) || !/10\.12\.0\.0\/16 (nhid \d+ )?via 10\.0\.0\.9/.test(k)) kernelLost++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const exited = new Promise<void>((r) => a.once('exit', () => r()));
    a.kill('SIGKILL');
    await exited;
    await until(() => bird.bgpState() !== 'Established', 'BIRD sees the session go', 60_000, 100);
    t.match(bird.birdc('show', 'protocols', 'all', 'sk'), /Neighbor graceful restart active/, 'BIRD helps skeind through its restart');
    await new Promise((r) => setTimeout(r, 1000));
    lines.length = 0;
    a = startSkeind();
    await until(ready, 'skeind ready again (FIB reconciled)', 60_000, 250);
    await until(() => !/graceful restart active/.test(bird.birdc('show', 'protocols', 'all', 'sk')), 'BIRD ends the graceful restart', 30_000, 200);
  } catch (e) {
    dump();
    throw e;
  } finally {
    stop = true;
    await poller;
  }
  t.ok(polls > 10, `polled BIRD and the kernel ${polls} times through the restart`);
  t.equal(birdLost, 0, 'BIRD never lost skeind\'s route');
  t.equal(kernelLost, 0, 'the kernel never lost the routes learned from BIRD');
  t.ok(lines.some((l) => l.includes('adopted')), 'the new skeind adopted the kernel routes (so it announced the R bit)');
  t.ok(lines.some((l) => l.includes('fib reconciled')), 'the new skeind reconciled its FIB');
  t.notOk(lines.some((l) => l.includes('not all heard from')), 'the FIB was reconciled on End-of-RIB, not at the deadline');
  t.ok(bird.fromSkein().includes('10.65.0.0/26') && /10\.10\.0\.0\/16 (nhid \d+ )?via 10\.0\.0\.9/.test(kernel()), 'everything is back in place');
});

// ---------------------------------------------------------------- long-lived graceful restart (RFC 9494) with BIRD

function birdLlgrConfig(statics: string[]): string {
  return `
router id 10.0.0.1;
protocol device { scan time 1; }
protocol static s4 { ipv4; ${statics.join(' ')} }
protocol bgp sk {
  local 10.0.0.1 as ${BIRD_AS};
  neighbor 10.0.0.2 as ${SKEIN_AS};
  hold time 30;
  connect retry time 1;
  error wait time 1, 2;
  graceful restart on;
  graceful restart time 1;
  long lived graceful restart on;
  long lived stale time 5;
  ipv4 { import all; export all; };
}
`;
}

t.test('skein as LLGR helper: BIRD is killed; its routes go through GR and LLGR (LLGR_STALE, NO_LLGR), are refreshed, then swept', async (t) => {
  const env = await setup(t);
  if (!env) return;
  const bird = new Bird(env.nsBird);
  t.teardown(() => bird.stop());
  const keep = 'route 10.10.0.0/16 blackhole;';
  const noLlgr = 'route 10.11.0.0/16 blackhole { bgp_community.add((65535, 7)); };';
  await bird.start(birdLlgrConfig([keep, noLlgr]));
  const agent = spawnAgent(t, env.nsSkein);
  const cfg = agentConfig(false);
  await agent.call('start', { config: { ...cfg, peers: [{ ...cfg.peers![0]!, longLivedStaleTime: 600 }] } });
  type Gr = { helper: { phase: string } | null; peer: { longLived: { staleTime: number }[] } | null; longLived: unknown[] };
  const gr = async (): Promise<Gr | undefined> => (await agent.peer() as unknown as { gracefulRestart?: Gr } | undefined)?.gracefulRestart;
  const comms = async (p: string): Promise<string[] | undefined> => (await agent.route(p))?.best.communities;
  const diag = async (): Promise<string> =>
    `skein: ${JSON.stringify(await agent.peer())}\nroutes: ${JSON.stringify(await agent.prefixes())}\nevents: ${JSON.stringify(agent.events.slice(-10))}\nbird log: ${bird.log.slice(-2000)}`;
  try {
    await until(async () => JSON.stringify(await agent.prefixes()) === JSON.stringify(['10.10.0.0/16', '10.11.0.0/16']), 'skein learns both routes', 30_000, 200);
    t.same((await gr())?.peer?.longLived.map((f) => f.staleTime), [5], 'BIRD announced LLGR with a 5 s stale time');

    await bird.kill();
    await until(async () => (await comms('10.10.0.0/16'))?.includes('65535:6') === true, 'LLGR phase: LLGR_STALE on the kept route', 15_000, 100);
    t.same(await agent.prefixes(), ['10.10.0.0/16'], 'the NO_LLGR route went at the start of the LLGR phase');
    t.equal((await gr())?.helper?.phase, 'long-lived', 'peer JSON: long-lived phase');

    await bird.start(birdLlgrConfig([keep]), { recovery: true });
    await until(async () => (await agent.peer())?.state === 'Established', 'session back', 30_000, 100);
    await until(async () => (await gr())?.helper === null, 'BIRD\'s End-of-RIB ends helper mode', 30_000, 100);
    t.same(await comms('10.10.0.0/16'), [], 'the refreshed route has no LLGR_STALE');

    await bird.kill();
    await until(async () => (await comms('10.10.0.0/16'))?.includes('65535:6') === true, 'LLGR phase again', 15_000, 100);
    await until(async () => (await agent.prefixes()).length === 0, 'swept when BIRD\'s 5 s long-lived stale time ends', 20_000, 200);
  } catch (e) {
    t.comment(await diag());
    throw e;
  }
  t.match(JSON.stringify(agent.events), /long-lived stale time ran out/, 'the sweep came from the LLGR timer');
});

t.test('BIRD as LLGR helper: skein is killed; BIRD keeps its routes with LLGR_STALE, then takes the refreshed ones', async (t) => {
  const env = await setup(t);
  if (!env) return;
  const bird = new Bird(env.nsBird);
  t.teardown(() => bird.stop());
  await bird.start(birdLlgrConfig(['route 10.10.0.0/16 blackhole;']));
  const withLlgr = (restarting: boolean): SpeakerOptions => {
    const c = agentConfig(restarting);
    return { ...c, peers: [{ ...c.peers![0]!, restartTime: 1, longLivedStaleTime: 60 }] };
  };
  let agent = spawnAgent(t, env.nsSkein);
  await agent.call('start', { config: withLlgr(false) });
  await agent.call('originate', { prefix: '10.20.0.0/16' });
  const birdComms = (): string => bird.routes('protocol', 'sk').find((r) => r.prefix === '10.20.0.0/16')?.bgp.community ?? '';
  await until(() => bird.fromSkein().includes('10.20.0.0/16'), 'BIRD learns skein\'s route', 30_000, 200);
  t.notMatch(birdComms(), /65535, ?6/, 'fresh: no LLGR_STALE');

  const exited = new Promise<void>((r) => agent.proc.once('exit', () => r()));
  agent.proc.kill('SIGKILL');
  await exited;
  await until(() => /65535, ?6/.test(birdComms()), 'BIRD marks skein\'s route LLGR_STALE after our 1 s restart time', 30_000, 200);
  t.ok(bird.fromSkein().includes('10.20.0.0/16'), 'BIRD keeps the route in the LLGR phase');

  agent = spawnAgent(t, env.nsSkein);
  await agent.call('start', { config: withLlgr(true) });
  await agent.call('originate', { prefix: '10.20.0.0/16' });
  await until(() => bird.bgpState() === 'Established' && !/65535, ?6/.test(birdComms()) && bird.fromSkein().includes('10.20.0.0/16'), 'BIRD takes the refreshed route', 30_000, 200);
  t.pass('refreshed: LLGR_STALE gone in BIRD');
  await agent.call('stop', {}).catch(() => undefined);
});
