// The cost of logging and of the per-message metrics calls, beside a reference measured in the same run:
// a bare JSON.stringify of the same line (what any JSON logger must at least do).
// Run: npm run build && node dist/bench/daemon-log.js
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';

let bytes = 0;
const sink = (l: string): void => {
  bytes += l.length;
};
const log = createLogger({ level: 'info', sink }).child({ component: 'bgp', peer: '192.0.2.11' });
const fields = { prefix: '10.65.1.0/26', nextHop: '192.0.2.11', asPath: [64512, 65000], localPref: 100 };

function time(name: string, n: number, f: (i: number) => void): void {
  for (let i = 0; i < 10_000; i++) f(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${name.padEnd(52)} ${ns.toFixed(1).padStart(8)} ns/op`);
}

time('log.debug at level info (disabled)', 10_000_000, () => log.debug('route added', fields));
time('log.info, 4 fields + 2 bound, redaction on', 1_000_000, () => log.info('route added', fields));
time('reference: JSON.stringify of the same line', 1_000_000, () =>
  sink(JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'route added', component: 'bgp', peer: '192.0.2.11', ...fields })));
const m = new Metrics({ defaultMetrics: false });
time('metrics.messageIn (64 peers)', 1_000_000, (i) => m.messageIn(`192.0.2.${i & 63}`, 'UPDATE'));
time('metrics.peerState (64 peers)', 1_000_000, (i) => m.peerState(`192.0.2.${i & 63}`, i & 1 ? 'Established' : 'Active'));
console.log(`(${bytes} bytes of log lines written to a counting sink)`);
