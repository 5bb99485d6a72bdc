// BFD cost: CPU and packets per second of one host's side of N single-hop
// sessions at 100 ms × 3 (the issue's "50 mesh peers at 100 ms"), measured on
// three sides in one run:
//  - the product: skein-bfdd (dist/src/skein-bfdd.js, the process that runs
//    skeind's sessions in a deployment), given the sessions over its socket by
//    the same client skeind uses (src/daemon/bfd-companion.ts); its CPU is read
//    from /proc, its packets from the peers' counters;
//  - the driver alone (bgp/bfd/udp.ts in this process, what skeind runs with
//    bfd.companion: off);
//  - BIRD 2 (`protocol bfd`, the same N sessions and timers) as the reference:
//    its CPU from /proc over the same window, its packets from the peers'
//    counters, as for skein-bfdd.
// The peers are a second process (this file started with "peer"), so the
// figure is the cost of one side only. For skein, loopback addresses stand in
// for the peers (127.0.0.1 ↔ 127.0.1.1..N); ports are moved off 3784 so that a
// BFD daemon on the host is not disturbed.
// BIRD cannot be measured that way: BIRD 2.0.12 refuses a 127/8 neighbor
// ("Invalid remote address 127.0.1.1%lo": it classes 127/8 as host scope, and
// a single-hop neighbor must be on a link), it does not let its peer addresses
// be addresses of its own interface (host scope again), and it binds 3784/4784
// on the wildcard address, which the peers' sockets bound to 3784 (RFC 5881
// §4: BIRD only sends there) cannot share in one namespace. So BIRD runs in a
// network namespace of its own and the peers in a second one, joined by a veth
// pair, on the benchmarking range 198.18.0.0/24 (RFC 2544): BIRD 198.18.0.1,
// the peers 198.18.0.2..N+1, the real ports inside the namespaces only. Both
// namespaces are created here and deleted at the end, also on failure.
// The peers run the same driver and timers in all three measurements. BIRD
// spaces its packets at 75–90% of the interval (proto/bfd/bfd.c), skein at
// 75–100% (RFC 5880 §6.8.7 allows both), so BIRD sends about 6% more.
//   node dist/bench/bfd.js [sessions=50] [seconds=10]     (BIRD's part needs root)
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BfdUdpDriver, type BfdKey, type BfdParams } from '../bgp/index.js';
import { CompanionTransport } from '../src/daemon/bfd-companion.js';
import { createLogger } from '../src/log.js';

const PARAMS: BfdParams = { desiredMinTxUs: 100_000, requiredMinRxUs: 100_000, idleTxUs: 1_000_000, detectMult: 3 };
const PORTS = { singleHopPort: 23784, multihopPort: 24784 };
const n = Number(process.argv[process.argv[2] === 'peer' ? 3 : 2] ?? 50);
const seconds = Number(process.argv[3] ?? 10);
const peerAddr = (i: number): string => `127.0.1.${i + 1}`;

/** BIRD's side of the reference (in its own namespace) and the peers' addresses on the other end of the veth pair */
const BIRD_ADDR = '198.18.0.1';
const birdPeerAddr = (i: number): string => `198.18.0.${i + 2}`;

/**
 * One side of the N sessions: 'local' and 'peer' are the skein measurements (loopback, moved ports); 'bird-peer' is
 * the peers of BIRD's reference, inside their namespace on the real ports (BIRD sends to 3784 only, RFC 5881 §4).
 */
async function side(role: 'local' | 'peer' | 'bird-peer', iface = 'lo'): Promise<BfdUdpDriver> {
  const d = new BfdUdpDriver({ ...(role === 'bird-peer' ? {} : PORTS), onError: () => {} });
  for (let i = 0; i < n; i++) {
    const key: BfdKey = role === 'local'
      ? { peer: peerAddr(i), local: '127.0.0.1', interface: 'lo', multihop: false }
      : role === 'peer'
        ? { peer: '127.0.0.1', local: peerAddr(i), interface: 'lo', multihop: false }
        : { peer: BIRD_ADDR, local: birdPeerAddr(i), interface: iface, multihop: false };
    await d.add(key, PARAMS);
  }
  return d;
}

async function waitFor(f: () => boolean, what: string, ms: number, refresh?: () => Promise<void>): Promise<void> {
  const end = Date.now() + ms;
  await refresh?.();
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, refresh ? 200 : 50));
    await refresh?.();
  }
}

const localKey = (i: number): BfdKey => ({ peer: peerAddr(i), local: '127.0.0.1', interface: 'lo', multihop: false });

/** user+system CPU seconds of a process, from /proc (fields 14 and 15, in clock ticks of 1/100 s here) */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Counters {
  sent: number;
  received: number;
  downs: number;
  up: number;
}

interface Result {
  side: string;
  cpuPct: number;
  sentPps: number;
  recvPps: number;
  downs: number;
}

/** the peers' packet and session counters, asked over the IPC channel */
function countOf(c: ChildProcess): Promise<Counters> {
  return new Promise((r) => {
    c.once('message', (m) => r(m as Counters));
    c.send('count');
  });
}

/** why BIRD's reference cannot run here, or null */
function birdMissing(): string | null {
  const v = spawnSync('bird', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (v.error) return `bird is not installed (${(v.error as NodeJS.ErrnoException).code ?? 'no code'})`;
  const version = /BIRD version (\S+)/.exec(`${v.stdout}${v.stderr}`)?.[1] ?? '';
  if (!version.startsWith('2.')) return `bird is not BIRD 2 (${version || 'no version printed'})`;
  if (process.getuid?.() !== 0) return 'not root (the network namespaces need it)';
  return null;
}

function ip(args: string[], input?: string): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000, ...(input !== undefined ? { input } : {}) });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
}

const running = (p: ChildProcess | null): p is ChildProcess => p !== null && p.exitCode === null && p.signalCode === null;

async function exited(p: ChildProcess | null, ms: number): Promise<void> {
  if (!running(p)) return;
  await new Promise<void>((r) => {
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      r();
    }, ms);
    p.once('exit', () => {
      clearTimeout(timer);
      r();
    });
  });
}

/** `birdc show bfd sessions`: how many rows are Up ("198.18.0.2  skbfd1b  Up  00:00:01.000  0.100  0.300") */
function birdUp(sock: string): number {
  const r = spawnSync('birdc', ['-s', sock, 'show', 'bfd', 'sessions'], { encoding: 'utf8', timeout: 10_000 });
  return String(r.stdout).split('\n').filter((l) => /^198\.18\.0\.\d+\s+\S+\s+Up\s/.test(l.trim())).length;
}

/**
 * BIRD 2 with the same N single-hop sessions at the same timers, against the same driver as peers. BIRD's side is in
 * namespace <tag>-bird (198.18.0.1 on a veth), the peers in <tag>-peers (198.18.0.2..N+1 on the other end); nothing
 * in the root namespace is touched and both namespaces are deleted at the end, also on failure or Ctrl-C.
 */
async function birdReference(): Promise<Result> {
  const tag = `skbfd${process.pid}`;
  const nsB = `${tag}-bird`;
  const nsP = `${tag}-peers`;
  const vB = `${tag}b`;
  const vP = `${tag}p`;
  const dir = mkdtempSync(join(tmpdir(), 'skein-bench-bfd-bird-'));
  const sock = join(dir, 'bird.ctl');
  let bird: ChildProcess | null = null;
  let peers: ChildProcess | null = null;
  let birdLog = '';
  const cleanup = (): void => {
    for (const p of [peers, bird]) if (running(p)) p.kill('SIGKILL');
    for (const ns of [nsB, nsP]) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('exit', cleanup);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    ip(['netns', 'add', nsB]);
    ip(['netns', 'add', nsP]);
    ip(['-n', nsB, 'link', 'set', 'lo', 'up']);
    ip(['-n', nsP, 'link', 'set', 'lo', 'up']);
    ip(['-n', nsB, 'link', 'add', vB, 'type', 'veth', 'peer', 'name', vP, 'netns', nsP]);
    ip(['-n', nsB, 'addr', 'add', `${BIRD_ADDR}/24`, 'dev', vB]);
    ip(['-n', nsP, '-batch', '-'], Array.from({ length: n }, (_, i) => `addr add ${birdPeerAddr(i)}/24 dev ${vP}\n`).join(''));
    ip(['-n', nsB, 'link', 'set', vB, 'up']);
    ip(['-n', nsP, 'link', 'set', vP, 'up']);

    const conf = join(dir, 'bird.conf');
    writeFileSync(conf, [
      'log stderr all;',
      `router id ${BIRD_ADDR};`,
      'protocol device {}',
      'protocol bfd {',
      `  interface "${vB}" { min rx interval 100 ms; min tx interval 100 ms; idle tx interval 1 s; multiplier 3; };`,
      ...Array.from({ length: n }, (_, i) => `  neighbor ${birdPeerAddr(i)} dev "${vB}" local ${BIRD_ADDR};`),
      '}',
      '',
    ].join('\n'));
    const pidFile = join(dir, 'bird.pid');
    bird = spawn('ip', ['netns', 'exec', nsB, 'bird', '-f', '-c', conf, '-s', sock, '-P', pidFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    bird.stderr?.on('data', (d: Buffer) => {
      birdLog = (birdLog + d.toString()).slice(-4000);
    });
    const b = bird;
    await waitFor(() => {
      if (!running(b)) throw new Error(`bird exited: ${birdLog}`);
      try {
        return Number(readFileSync(pidFile, 'utf8').trim()) > 0;
      } catch {
        return false;
      }
    }, 'BIRD started', 10_000);
    // `ip netns exec` execs bird and `bird -f` does not fork, so this is the process the CPU is read from
    const birdPid = Number(readFileSync(pidFile, 'utf8').trim());

    peers = spawn('ip', ['netns', 'exec', nsP, process.execPath, fileURLToPath(import.meta.url), 'peer', String(n), 'bird', vP], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
    const p = peers;
    await new Promise<void>((resolve, reject) => {
      p.once('message', () => resolve());
      p.once('exit', (code) => reject(new Error(`the peers' process exited (${code})`)));
    });
    let peersUp = 0;
    await waitFor(() => birdUp(sock) === n && peersUp === n, `${n} sessions Up in BIRD and in the peers`, 30_000, async () => {
      peersUp = (await countOf(p)).up;
    });
    await new Promise((r) => setTimeout(r, 1500)); // settle, as for skein-bfdd
    const c0 = await countOf(p);
    const cpu0 = cpuOf(birdPid);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = cpuOf(birdPid) - cpu0;
    const c1 = await countOf(p);
    const elapsedS = (performance.now() - t0) / 1000;
    const version = /BIRD (\S+) ready/.exec(String(spawnSync('birdc', ['-s', sock, 'show', 'status'], { encoding: 'utf8', timeout: 10_000 }).stdout))?.[1] ?? '2';
    const r: Result = { side: `BIRD ${version} (the reference)`, cpuPct: (cpu / elapsedS) * 100, sentPps: (c1.received - c0.received) / elapsedS, recvPps: (c1.sent - c0.sent) / elapsedS, downs: c1.downs - c0.downs };
    console.log(`  BIRD ${version}, the reference (protocol bfd in its own namespace, peers over a veth; CPU from /proc, 10 ms ticks): CPU ${r.cpuPct.toFixed(2)}% of one core; ` +
      `packets/s sent ${r.sentPps.toFixed(0)}, received ${r.recvPps.toFixed(0)} (the peers' counters); downs seen by the peers ${r.downs}`);
    return r;
  } finally {
    if (running(peers)) peers.send('stop');
    await exited(peers, 5000);
    if (running(bird)) bird.kill('SIGTERM');
    await exited(bird, 5000);
    cleanup();
    process.off('exit', cleanup);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (process.argv[2] === 'peer') {
  const d = await side(process.argv[4] === 'bird' ? 'bird-peer' : 'peer', process.argv[5]);
  process.on('message', (m) => {
    if (m === 'count') {
      const sessions = d.manager.sessions();
      process.send?.({ sent: d.packetsSent, received: d.packetsReceived, downs: sessions.reduce((a, s) => a + s.downCount, 0), up: sessions.filter((s) => s.state === 'Up').length });
    }
    else void d.close().then(() => process.exit(0));
  });
  process.send?.('ready');
} else {
  if (n < 1 || n > 250) throw new Error('sessions: 1..250');
  const child = fork(fileURLToPath(import.meta.url), ['peer', String(n)], { stdio: 'inherit' });
  await new Promise<void>((r) => child.once('message', () => r()));
  const count = (): Promise<Counters> => countOf(child);
  const results: Result[] = [];

  // 1. the product: skein-bfdd, given the sessions as skeind gives them
  const dir = mkdtempSync(join(tmpdir(), 'skein-bench-bfd-'));
  const sock = join(dir, 'bfd.sock');
  const bfddJs = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'skein-bfdd.js');
  const bfdd = spawn(process.execPath, [bfddJs, '--socket', sock, '--log-level', 'warn', '--single-hop-port', String(PORTS.singleHopPort), '--multihop-port', String(PORTS.multihopPort)], { stdio: 'inherit' });
  try {
    const client = new CompanionTransport(sock, createLogger({ level: 'warn' }), () => {});
    for (let i = 0; i < 100; i++) {
      try {
        await client.connect(500);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (let i = 0; i < n; i++) await client.add(localKey(i), PARAMS);
    await waitFor(() => client.sessions().length === n && client.sessions().every((s) => s.state === 'Up'), `${n} sessions Up in skein-bfdd`, 30_000);
    await new Promise((r) => setTimeout(r, 1500)); // settle (the client's view refreshes periodically)
    const c0 = await count();
    const cpu0 = cpuOf(bfdd.pid!);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = cpuOf(bfdd.pid!) - cpu0;
    const c1 = await count();
    const elapsedS = (performance.now() - t0) / 1000;
    console.log(`bfd: ${n} sessions, 100 ms x 3, ${elapsedS.toFixed(1)} s measured`);
    console.log(`  skein-bfdd (the product; CPU from /proc, 10 ms ticks): CPU ${((cpu / elapsedS) * 100).toFixed(2)}% of one core; ` +
      `packets/s sent ${((c1.received - c0.received) / elapsedS).toFixed(0)}, received ${((c1.sent - c0.sent) / elapsedS).toFixed(0)} (the peers' counters); ` +
      `downs seen by the peers ${c1.downs - c0.downs}`);
    results.push({ side: 'skein-bfdd (the product)', cpuPct: (cpu / elapsedS) * 100, sentPps: (c1.received - c0.received) / elapsedS, recvPps: (c1.sent - c0.sent) / elapsedS, downs: c1.downs - c0.downs });
    if (c1.downs - c0.downs > 0) process.exitCode = 1;
    await client.close();
  } finally {
    bfdd.kill('SIGTERM');
    await new Promise((r) => (bfdd.exitCode !== null ? r(undefined) : bfdd.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
  // skein-bfdd's SIGTERM sent AdminDown: let the peers see it before the in-process driver takes the same keys
  await new Promise((r) => setTimeout(r, 1000));

  // 2. the driver alone, in this process
  const local = await side('local');
  const allUp = (): boolean => local.manager.sessions().every((s) => s.state === 'Up' && !s.pollActive);
  await waitFor(allUp, `${n} sessions Up`, 30_000);
  await new Promise((r) => setTimeout(r, 1000)); // settle
  const sent0 = local.packetsSent;
  const recv0 = local.packetsReceived;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const elapsedS = (performance.now() - t0) / 1000;
  const downs = local.manager.sessions().reduce((a, s) => a + s.downCount, 0);
  const cpuPct = ((cpu.user + cpu.system) / 1e6 / elapsedS) * 100;
  console.log(`  the driver alone in one process (bfd.companion: off): CPU ${cpuPct.toFixed(2)}% of one core (user ${(cpu.user / 1e3).toFixed(0)} ms, system ${(cpu.system / 1e3).toFixed(0)} ms); ` +
    `packets/s sent ${((local.packetsSent - sent0) / elapsedS).toFixed(0)}, received ${((local.packetsReceived - recv0) / elapsedS).toFixed(0)}; ` +
    `sessions that went down during the measurement: ${downs}`);
  child.send('stop');
  await local.close();
  await new Promise((r) => child.once('exit', r));
  results.push({ side: 'the driver alone (companion off)', cpuPct, sentPps: (local.packetsSent - sent0) / elapsedS, recvPps: (local.packetsReceived - recv0) / elapsedS, downs });
  if (downs > 0) process.exitCode = 1;

  // 3. BIRD 2, the reference, in namespaces of its own (see the top of this file)
  const skip = birdMissing();
  if (skip) console.log(`  BIRD 2 reference skipped: ${skip}`);
  else {
    try {
      const r = await birdReference();
      results.push(r);
      if (r.downs > 0) process.exitCode = 1;
    } catch (e) {
      console.log(`  BIRD 2 reference failed: ${(e as Error).message}`);
      process.exitCode = 1;
    }
  }

  console.log(`side by side (one host's side of ${n} sessions, 100 ms x 3, ${seconds} s each; packets from the peers' counters except the driver alone's own):`);
  console.log(`  ${'side'.padEnd(34)}${'CPU % of one core'.padStart(18)}${'packets/s sent'.padStart(16)}${'received'.padStart(10)}${'downs'.padStart(7)}`);
  for (const r of results) {
    console.log(`  ${r.side.padEnd(34)}${r.cpuPct.toFixed(2).padStart(18)}${r.sentPps.toFixed(0).padStart(16)}${r.recvPps.toFixed(0).padStart(10)}${String(r.downs).padStart(7)}`);
  }
}
