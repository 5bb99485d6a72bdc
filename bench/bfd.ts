// BFD cost: CPU and packets per second of one process running N single-hop
// sessions at 100 ms × 3 (the "50 mesh peers at 100 ms"). The peers
// are a second process (this file forked with "peer"), so the figure is the
// cost of one side only. Loopback addresses stand in for the peers
// (127.0.0.1 ↔ 127.0.1.1..N); ports are moved off 3784 so that a BFD daemon
// on the host is not disturbed.
//   node dist/bench/bfd.js [sessions=50] [seconds=10]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BfdUdpDriver, type BfdKey, type BfdParams } from '../bgp/index.js';

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

if (process.argv[2] === 'peer') {
  const d = await side('peer');
  process.on('message', () => {
    void d.close().then(() => process.exit(0));
  });
  process.send?.('ready');
} else {
  if (n < 1 || n > 250) throw new Error('sessions: 1..250');
  const local = await side('local');
  const child = fork(fileURLToPath(import.meta.url), ['peer', String(n)], { stdio: 'inherit' });
  await new Promise<void>((r) => child.once('message', () => r()));
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
  console.log(`bfd: ${n} sessions, 100 ms x 3, ${elapsedS.toFixed(1)} s measured in the local process`);
  console.log(`  CPU ${cpuPct.toFixed(2)}% of one core (user ${(cpu.user / 1e3).toFixed(0)} ms, system ${(cpu.system / 1e3).toFixed(0)} ms)`);
  console.log(`  packets/s sent ${((local.packetsSent - sent0) / elapsedS).toFixed(0)}, received ${((local.packetsReceived - recv0) / elapsedS).toFixed(0)}`);
  console.log(`  sessions that went down during the measurement: ${downs}`);
  child.send('stop');
  await local.close();
  await new Promise((r) => child.once('exit', r));
  if (downs > 0) process.exitCode = 1;
}
