// The BGP side of bench/control.ts, in a process of its own so its work does not disturb the measuring process:
// an injector that announces N IPv4 /24s to skeind, and a keeper with a 9 s hold time whose session must stay up
// while skeind answers 200 table dumps. Reports on stdout, one JSON object per line:
//   {"event":"peer","who":"keeper","state":"Established",...}  every session state change
//   {"event":"originated","n":N}                                once the injector holds its table
// Environment: ROLE (injector | keeper: one process each, so the injector's work never delays the keeper's
// KEEPALIVEs), SKEIND_ADDR, SKEIND_PORT, ADDR, N.
import { Speaker } from '../../bgp/index.js';

const e = (k: string, d?: string): string => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} not set`);
  return v;
};
const skeind = e('SKEIND_ADDR');
const port = Number(e('SKEIND_PORT'));
const n = Number(e('N', '1000000'));
// the bench process reads our stdout; if it is gone, so is our purpose
process.stdout.on('error', () => process.exit(0));
const out = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);

function speaker(who: string, addr: string, asn: number, holdTime: number): Speaker {
  const s = new Speaker({
    localAsn: asn, routerId: addr, listenAddress: null, holdTime, connectRetryTime: 1, idleHold: { initial: 1, max: 2 },
    peers: [{ address: skeind, port, asn: 64512, sourceAddress: addr, families: ['ipv4-unicast'], holdTime }],
  });
  s.on('peer', (ev: { state: string; from: string; info: string }) => out({ event: 'peer', who, state: ev.state, from: ev.from, info: ev.info }));
  s.on('log', (l: { level: string; msg: string }) => {
    if (l.level !== 'info') out({ event: 'log', who, level: l.level, msg: l.msg });
  });
  return s;
}

const role = e('ROLE');
const sp = role === 'keeper' ? speaker('keeper', e('ADDR'), 65003, 9) : speaker('injector', e('ADDR'), 65001, 90);
if (role !== 'keeper') {
  for (let i = 0; i < n; i++) sp.originate(`${20 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}.0/24`, { origin: 0 });
  out({ event: 'originated', n });
}
await sp.start();
const stop = (): void => {
  void sp.stop().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
