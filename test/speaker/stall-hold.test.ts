// A stall of this process is not a peer's silence (issue 15): after the event loop was blocked past the hold time,
// the KEEPALIVEs that arrived meanwhile are read before the hold timer is judged, the stall is logged with its
// length, and the session stays up. A peer that really went silent is still cut (Hold Timer Expired) afterwards.
// The peer is a separate process (plain Node, bytes made here), so it keeps sending while this process is blocked;
// it runs no hold timer of its own, so our stall cannot make it close the session either. Loopback only, no root.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { IPV4_UNICAST, Speaker, buildCapabilities, encodeMessage, parseIpv4, type Message } from '../../bgp/index.js';
import { loopbackNet } from '../helpers/loopback.js';
import { until } from '../helpers/netns.js';
import { RAW_CTX } from '../helpers/raw-peer.js';

const PORT = 17400 + (process.pid % 200);
const addr = loopbackNet();
const HOLD = 3;

/** Block the event loop, as a long synchronous task would. */
function block(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* busy */
  }
}

// The child: connect from `local`, send OPEN, then a KEEPALIVE every `every` ms until told "silent" on stdin; print
// the type and hex of each message received.
const CHILD = `
const net = require('node:net');
const [host, port, local, open, ka, every] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), localAddress: local }, () => {
  s.write(Buffer.from(open, 'hex'));
  let timer = setInterval(() => s.write(Buffer.from(ka, 'hex')), Number(every));
  process.stdin.on('data', (d) => { if (String(d).includes('silent')) { clearInterval(timer); console.log('went silent'); } });
});
let buf = Buffer.alloc(0);
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 19) {
    const len = buf.readUInt16BE(16);
    if (buf.length < len) break;
    console.log('rx ' + buf[18] + ' ' + buf.subarray(0, len).toString('hex'));
    buf = buf.subarray(len);
  }
});
s.on('close', () => { console.log('closed'); process.exit(0); });
s.on('error', (e) => console.log('error ' + e.message));
`;

t.test('a stall longer than the hold time: pending KEEPALIVEs are read first, the stall is logged, the session stays up', async (t) => {
  const logs: string[] = [];
  const stalls: number[] = [];
  const s = new Speaker({
    localAsn: 65001,
    routerId: '10.0.0.1',
    listenAddress: addr(1),
    listenPort: PORT,
    holdTime: HOLD,
    peers: [{ address: addr(2), port: PORT, asn: 65002, passive: true }],
  });
  s.on('log', (e: { msg: string }) => logs.push(e.msg));
  s.on('stall', (e: { ms: number }) => stalls.push(e.ms));
  await s.start();
  t.teardown(() => s.stop({ message: 'test over' }));

  const open: Message = { type: 'OPEN', version: 4, myAs: 65002, holdTime: HOLD, bgpId: parseIpv4('10.0.0.2'), capabilities: buildCapabilities({ localAs: 65002, families: [IPV4_UNICAST] }) };
  const hex = (m: Message): string => encodeMessage(m, RAW_CTX).toString('hex');
  const child = spawn(process.execPath, ['-e', CHILD, addr(1), String(PORT), addr(2), hex(open), hex({ type: 'KEEPALIVE' }), '300'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => child.kill());
  const received: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => received.push(l));
  const notifications = (): string[] => received.filter((l) => l.startsWith('rx 3 '));

  await until(() => s.peerInfo(addr(2))?.state === 'Established', 'session up', 15_000);
  t.pass('Established with hold time 3 s');

  // The loop is blocked for well over the hold time; the peer keeps sending KEEPALIVEs into our socket meanwhile.
  block(HOLD * 1000 + 2500);
  // Give the timers and reads their turn (several hold intervals: an expiry would show by then).
  const until2 = Date.now() + 2 * HOLD * 1000;
  while (Date.now() < until2 && notifications().length === 0 && s.peerInfo(addr(2))?.state === 'Established') await new Promise((r) => setTimeout(r, 100));
  t.same(notifications(), [], 'no NOTIFICATION sent to a peer that kept talking');
  t.equal(s.peerInfo(addr(2))?.state, 'Established', 'the session is still up');
  t.notOk(logs.some((l) => /Hold Timer Expired/i.test(l)), 'no hold timer expiry logged');
  t.equal(stalls.length, 1, 'one stall reported');
  t.ok((stalls[0] ?? 0) >= 1000, `its length is measured (${Math.round(stalls[0] ?? 0)} ms)`);
  t.ok(logs.some((l) => /this process stalled for \d+ ms/.test(l)), 'logged as a stall of this process, with its length');

  // A peer that really goes silent is still cut, stall or not.
  child.stdin.write('silent\n');
  await until(() => received.includes('went silent'), 'peer silent', 5_000);
  block(HOLD * 1000 + 1500);
  await until(() => notifications().length > 0, 'Hold Timer Expired for the silent peer', 4 * HOLD * 1000);
  const n = notifications()[0] ?? '';
  t.equal(n.slice(n.indexOf(' ', 3) + 1 + 38, n.indexOf(' ', 3) + 1 + 42), '0400', 'NOTIFICATION Hold Timer Expired (4/0)');
});
