// BFD cost: CPU and packets per second of one host's side of N single-hop
// sessions at 100 ms × 3 (the "50 mesh peers at 100 ms"), measured twice:
//  - the product: skein-bfdd (dist/src/skein-bfdd.js, the process that runs
//    skeind's sessions in a deployment), given the sessions over its socket by
//    the same client skeind uses (src/daemon/bfd-companion.ts); its CPU is read
//    from /proc, its packets from the peers' counters;
//  - the driver alone (bgp/bfd/udp.ts in this process, what skeind runs with
//    bfd.companion: off).
// The peers are a second process (this file forked with "peer"), so the
// figure is the cost of one side only. Loopback addresses stand in for the
// peers (127.0.0.1 ↔ 127.0.1.1..N); ports are moved off 3784 so that a BFD
// daemon on the host is not disturbed.
//   node dist/bench/bfd.js [sessions=50] [seconds=10]
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

async function side(role: 'local' | 'peer'): Promise<BfdUdpDriver> {
  const d = new BfdUdpDriver({ ...PORTS, onError: () => {} });
  for (let i = 0; i < n; i++) {
    const key: BfdKey = role === 'local'
      ? { peer: peerAddr(i), local: '127.0.0.1', interface: 'lo', multihop: false }
      : { peer: '127.0.0.1', local: peerAddr(i), interface: 'lo', multihop: false };
    await d.add(key, PARAMS);
  }
  return d;
}

async function waitFor(f: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const localKey = (i: number): BfdKey => ({ peer: peerAddr(i), local: '127.0.0.1', interface: 'lo', multihop: false });

/** user+system CPU seconds of a process, from /proc (fields 14 and 15, in clock ticks of 1/100 s here) */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

if (process.argv[2] === 'peer') {
  const d = await side('peer');
  process.on('message', (m) => {
    if (m === 'count') process.send?.({ sent: d.packetsSent, received: d.packetsReceived, downs: d.manager.sessions().reduce((a, s) => a + s.downCount, 0) });
    else void d.close().then(() => process.exit(0));
  });
  process.send?.('ready');
} else {
  if (n < 1 || n > 250) throw new Error('sessions: 1..250');
  const child = fork(fileURLToPath(import.meta.url), ['peer', String(n)], { stdio: 'inherit' });
  await new Promise<void>((r) => child.once('message', () => r()));
  const count = (): Promise<{ sent: number; received: number; downs: number }> => new Promise((r) => {
    child.once('message', (m) => r(m as { sent: number; received: number; downs: number }));
    child.send('count');
  });

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
  if (downs > 0) process.exitCode = 1;
}
