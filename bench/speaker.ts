// Speaker throughput over loopback, 1,000,000 IPv4 prefixes (PREFIXES= to change):
// - inject: a raw TCP peer writes pre-encoded UPDATEs (1000 attribute sets,
//   packed as many prefixes per UPDATE as fit) into a Speaker; timed from
//   Established to every prefix in the Loc-RIB, then the withdrawal of all of them.
// - relay: one Speaker originates the prefixes once the session is up and
//   another learns them (export, packing, backpressure and import all in the
//   path); dump: the same with the table originated before the session comes
//   up (the initial table dump of RibCore.peerUp), at DUMP_PREFIXES and twice that.
// Each phase runs in its own process (peak RSS is per phase). The reference,
// measured in the same run: decodeMessage() over the very bytes injected, the
// floor for the receiving side.
//
// Run: npm run bench speaker (or: npm run build && node dist/bench/speaker.js)
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_CONTEXT,
  Speaker,
  buildCapabilities,
  decodeMessage,
  encodeMessage,
  packUpdates,
  packWithdrawals,
  parseIpv4,
  prefix4,
  type PathAttributes,
  type PrefixList,
} from '../bgp/index.js';

const N = Number(process.env.PREFIXES ?? 1_000_000);
const SETS = 1000;
const RECEIVER = '127.0.43.1';
const SENDER = '127.0.43.2';

function attrs(i: number): PathAttributes {
  return { origin: 0, asPath: [{ type: 2, asns: [65001, 64000 + (i % 500), 3000 + i] }], nextHop: SENDER, med: i, communities: [65001 * 65536 + i] };
}

/** prefix k: the k-th /24 from 16.0.0.0 */
const pfx = (k: number): number => prefix4(((16 << 24) >>> 0) + k * 256, 24);

function feed(): { updates: Buffer[]; withdrawals: Buffer[] } {
  const per = Math.ceil(N / SETS);
  const updates: Buffer[] = [];
  const all: number[] = [];
  for (let s = 0; s < SETS; s++) {
    const prefixes: number[] = [];
    for (let k = s * per; k < Math.min(N, (s + 1) * per); k++) prefixes.push(pfx(k));
    all.push(...prefixes);
    const list: PrefixList = { afi: 1, safi: 1, prefixes, pathIds: null };
    updates.push(...packUpdates(attrs(s), list, DEFAULT_CONTEXT));
  }
  const withdrawals = packWithdrawals({ afi: 1, safi: 1, prefixes: all, pathIds: null }, DEFAULT_CONTEXT);
  return { updates, withdrawals };
}

const ms = (a: bigint, b: bigint): number => Number(b - a) / 1e6;
const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;
const rate = (n: number, msec: number): string => `${((n / msec) * 1000 / 1e6).toFixed(2)}M prefixes/s`;

async function until(fn: () => boolean, what: string, timeoutMs = 600_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function writeAll(s: net.Socket, bufs: Buffer[]): Promise<void> {
  for (const b of bufs) {
    if (!s.write(b)) await new Promise((r) => s.once('drain', r));
  }
}

async function inject(): Promise<void> {
  const { updates, withdrawals } = feed();
  const bytes = updates.reduce((n, b) => n + b.length, 0);
  // reference: decoding the same bytes, nothing else
  let t = process.hrtime.bigint();
  let count = 0;
  for (const b of updates) {
    const m = decodeMessage(b, DEFAULT_CONTEXT);
    if (m.type === 'UPDATE') count += m.nlri.prefixes.length;
  }
  const decodeMs = ms(t, process.hrtime.bigint());
  if (count !== N) throw new Error(`feed holds ${count} prefixes, expected ${N}`);

  const rx = new Speaker({ localAsn: 65000, routerId: '10.0.0.1', listenAddress: RECEIVER, listenPort: 0, holdTime: 240, peers: [{ address: SENDER, asn: 65001, passive: true }] });
  await rx.start();
  const s = net.connect({ host: RECEIVER, port: rx.port, localAddress: SENDER, noDelay: true });
  await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
  s.on('data', () => {}); // the receiver's OPEN and KEEPALIVEs: read and ignored
  s.write(encodeMessage({ type: 'OPEN', version: 4, myAs: 65001, holdTime: 240, bgpId: parseIpv4('10.0.0.2'), capabilities: buildCapabilities({ localAs: 65001, families: [0x101] }) }));
  s.write(encodeMessage({ type: 'KEEPALIVE' }));
  await until(() => rx.peerInfo(SENDER)?.state === 'Established', 'Established', 10_000);
  t = process.hrtime.bigint();
  await writeAll(s, updates);
  await until(() => rx.rib.locSize >= N, 'all prefixes in the Loc-RIB');
  const inMs = ms(t, process.hrtime.bigint());
  t = process.hrtime.bigint();
  await writeAll(s, withdrawals);
  await until(() => rx.rib.locSize === 0, 'all prefixes withdrawn');
  const outMs = ms(t, process.hrtime.bigint());
  const rss = process.resourceUsage().maxRSS;
  console.log(`inject: ${N} prefixes in ${updates.length} UPDATEs (${(bytes / 1048576).toFixed(1)} MiB)`);
  console.log(`  reference decodeMessage of the same bytes: ${decodeMs.toFixed(0)} ms (${rate(N, decodeMs)})`);
  console.log(`  Established -> all in Loc-RIB:            ${inMs.toFixed(0)} ms (${rate(N, inMs)})`);
  console.log(`  withdrawal of all:                         ${outMs.toFixed(0)} ms (${rate(N, outMs)})`);
  console.log(`  peak RSS (incl. the injector's feed):      ${mib(rss)}`);
  s.destroy();
  await rx.stop();
}

/** Two speakers in one process; tx originates n prefixes before (dump) or after (live) the session comes up. */
async function relay(n: number, mode: 'live' | 'dump'): Promise<void> {
  const rx = new Speaker({ localAsn: 65000, routerId: '10.0.0.1', listenAddress: RECEIVER, listenPort: 0, holdTime: 240 });
  const tx = new Speaker({ localAsn: 65001, routerId: '10.0.0.2', listenAddress: null, holdTime: 240 });
  await rx.start();
  await tx.start();
  const originate = (): void => {
    for (let k = 0; k < n; k++) tx.rib.originate(pfx(k), { origin: 0, communities: [65001 * 65536 + (k % SETS)] });
    tx.withdraw('15.0.0.0/24'); // never originated: only schedules the speaker's flush
  };
  if (mode === 'dump') originate();
  const t0 = process.hrtime.bigint();
  rx.addPeer({ address: SENDER, asn: 65001, passive: true });
  tx.addPeer({ address: RECEIVER, port: rx.port, asn: 65000, sourceAddress: SENDER, nextHop4: SENDER });
  await until(() => rx.peerInfo(SENDER)?.state === 'Established' && tx.peerInfo(RECEIVER)?.state === 'Established', 'Established', 10_000);
  // The sender's table dump (RibCore.peerUp) runs in the turn its session becomes
  // Established, before the wait above ends: the dump is timed from addPeer.
  let t = mode === 'dump' ? t0 : process.hrtime.bigint();
  if (mode === 'live') originate();
  await until(() => rx.rib.locSize >= n, 'all prefixes at the receiver');
  const inMs = ms(t, process.hrtime.bigint());
  const updates = rx.peerInfo(SENDER)?.counters.messagesIn.UPDATE ?? 0;
  t = process.hrtime.bigint();
  for (let k = 0; k < n; k++) tx.rib.withdrawOrigin(pfx(k));
  tx.withdraw('15.0.0.0/24');
  await until(() => rx.rib.locSize === 0, 'all prefixes withdrawn at the receiver');
  const outMs = ms(t, process.hrtime.bigint());
  const rss = process.resourceUsage().maxRSS;
  if (mode === 'live') {
    console.log(`relay: Speaker -> Speaker, session up first, then ${n} prefixes originated (${SETS} attribute sets, ${updates} UPDATEs)`);
    console.log(`  originate -> all in the receiver's RIB:     ${inMs.toFixed(0)} ms (${rate(n, inMs)})`);
  } else {
    console.log(`dump: ${n} prefixes originated first, then the session comes up (${updates} UPDATEs)`);
    console.log(`  addPeer -> all in the receiver's RIB:       ${inMs.toFixed(0)} ms (${rate(n, inMs)})`);
  }
  console.log(`  withdrawal of all (sender RIB to receiver): ${outMs.toFixed(0)} ms (${rate(n, outMs)})`);
  console.log(`  peak RSS (both speakers, one process):      ${mib(rss)}`);
  await tx.stop();
  await rx.stop();
}

const phase = process.argv[2];
if (phase === 'inject') await inject();
else if (phase === 'relay') await relay(N, 'live');
else if (phase === 'dump') await relay(Number(process.argv[3]), 'dump');
else {
  const self = fileURLToPath(import.meta.url);
  // The table dump on Established is run at two smaller sizes: its time grows with
  // the square of the table (RibCore.peerUp copies the Loc-RIB into the peer's
  // PrefixMaps in hash order, see the report), and 1M would take minutes.
  const dump = Number(process.env.DUMP_PREFIXES ?? 50_000);
  for (const args of [['inject'], ['relay'], ['dump', String(dump)], ['dump', String(2 * dump)]]) {
    const r = spawnSync(process.execPath, [self, ...args], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}
