// Recursive next hops against real BIRD 2 peers and the kernel (issue 15; RFC 4271 §9.1.2.1; the engine side is
// test/engine/engine-nexthop-recursive.test.ts). skeind in a namespace with two eBGP peers, A and B. B announces
// 10.90.6.0/24 with its loopback 198.51.100.7 as next hop, which no route of skein's host covers, and
// 198.51.100.0/24 itself with its own address: skein resolves the first through the second (a route in its
// Loc-RIB) and installs it via 10.0.2.2, and it forwards (ping). When B withdraws the covering route the path is
// unusable: out of the kernel, withdrawn from A. Then another routing daemon on skein's host — a BIRD with a kernel
// protocol, no BGP — writes 198.51.100.0/24 via 10.0.2.2 into the kernel (proto bird): skeind reads the routes of
// every protocol but its own and follows kernel changes over rtnetlink (its poll is set to an hour here, so only
// the monitor can notice), and the prefix is installed again; when that daemon stops and its route goes, so does
// skein's. The loop case: B also announces 10.97.0.0/24 with a next hop inside it; that path is unusable
// ('recursive-loop'), A's path for the prefix is installed instead and nothing flaps.
import t from 'tap';
import { recursiveNextHops } from '../helpers/nexthop-recursive.js';

t.test('skeind resolves next hops through BGP routes and other daemons\' kernel routes, one level, loop-safe', (t) => recursiveNextHops(t, {
  v: 4,
  tag: 'nr',
  metricsPort: 29981,
  REC: '10.90.6.0/24',
  REC_NH: '198.51.100.7',
  REC_HOST: '10.90.6.1',
  COVER: '198.51.100.0/24',
  LOOP: '10.97.0.0/24',
  LOOP_NH: '10.97.0.1',
  hostA: '10.0.1.1',
  peerA: '10.0.1.2',
  hostB: '10.0.2.1',
  peerB: '10.0.2.2',
  pool: '10.64.0.0/10',
}));
