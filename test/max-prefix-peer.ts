// The flooding peer of test/interop/max-prefix-netns.test.ts, a process of its own so it can run inside a network
// namespace (ip netns exec NS node dist/test/max-prefix-peer.js): skein's own speaker originating N /32s in
// 10.128.0.0/9 to one neighbour, reporting on stdout as JSON lines:
//   {"event":"originated","n":N}        once its table is built
//   {"event":"peer","state":...,"info":...}   every session state change (info: the NOTIFICATION it got)
// Environment: NEIGHBOR, ADDR, N. It never reconnects once the neighbour has closed the session (hold down).
import { Speaker } from '../bgp/index.js';
import { emit as out } from './helpers/json-lines.js';

const env = (k: string): string => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} not set`);
  return v;
};
process.stdout.on('error', () => process.exit(0));

const n = Number(env('N'));
const s = new Speaker({
  localAsn: 65001, routerId: env('ADDR'), listenAddress: null, holdTime: 90, connectRetryTime: 1, idleHold: { initial: 3600, max: 3600 },
  peers: [{ address: env('NEIGHBOR'), asn: 64512, sourceAddress: env('ADDR'), families: ['ipv4-unicast'] }],
});
s.on('peer', (e: { state: string; info: string }) => out({ event: 'peer', state: e.state, info: e.info }));
for (let i = 0; i < n; i++) s.originate(`10.${128 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}/32`, { origin: 0 });
out({ event: 'originated', n });
await s.start();
const stop = (): void => void s.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
