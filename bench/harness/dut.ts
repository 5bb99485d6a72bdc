// skein as the device under test of the shared BGP benchmark harness
// (/work/shared/bench, adapter in bench/duts/skein): a Speaker that is a
// route reflector (RFC 4456) with the injector and the listener as passive RR
// clients, as the harness's README asks of every DUT. It lives in a
// subdirectory of bench/ so scripts/bench.mjs, which runs every top-level
// dist/bench/*.js, does not take it for a benchmark.
//
// Environment (exported by the harness): LOCAL_AS, ROUTER_ID, INJ_ADDR,
// INJ_AS, LIS_ADDR, LIS_AS, RUN (the run directory), FIB (only 0: the FIB is
// not programmed by this entry yet).
//
// Files in RUN: `ready` once listening; `rib_count` holds the number of
// prefixes accepted from the injector (Adj-RIB-In, which feeds the Loc-RIB),
// rewritten (write + rename) whenever it changed, at most every 20 ms.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Speaker } from '../../bgp/index.js';

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') {
    process.stderr.write(`skein DUT: environment variable ${name} is not set\n`);
    process.exit(2);
  }
  return v;
}

const run = env('RUN');
if ((process.env['FIB'] ?? '0') !== '0') {
  process.stderr.write('skein DUT: FIB=1 is not supported by this entry yet\n');
  process.exit(2);
}
const localAsn = Number(env('LOCAL_AS'));
const routerId = env('ROUTER_ID');
const inj = env('INJ_ADDR');
const lis = env('LIS_ADDR');

const speaker = new Speaker({
  localAsn,
  routerId,
  listenAddress: '0.0.0.0',
  listenPort: 179,
  peers: [
    { address: inj, asn: Number(process.env['INJ_AS'] ?? localAsn), passive: true, routeReflectorClient: true, families: ['ipv4-unicast'] },
    { address: lis, asn: Number(process.env['LIS_AS'] ?? localAsn), passive: true, routeReflectorClient: true, families: ['ipv4-unicast'] },
  ],
});
speaker.on('log', (l: { level: string; msg: string; peer?: string }) => {
  if (l.level !== 'info') process.stderr.write(`${l.level}: ${l.peer ?? ''} ${l.msg}\n`);
});
speaker.on('peer', (e: { address: string; state: string; info: string }) => {
  process.stderr.write(`peer ${e.address} ${e.state}${e.info ? ` (${e.info})` : ''}\n`);
});

let last = -1;
function publish(): void {
  const p = speaker.peersJson().peers.find((x) => x.address === inj);
  const n = p?.prefixes.accepted ?? 0;
  if (n === last) return;
  last = n;
  const file = join(run, 'rib_count');
  writeFileSync(`${file}.tmp`, `${n}\n`);
  renameSync(`${file}.tmp`, file);
}

await speaker.start();
publish();
setInterval(publish, 20);
writeFileSync(join(run, 'ready'), `${process.pid}\n`);
const stop = (): void => {
  void speaker.stop().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
