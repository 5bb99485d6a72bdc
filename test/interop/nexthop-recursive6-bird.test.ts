// IPv6 recursive next hops against real BIRD 2 peers and the kernel (issue 15; RFC 4271 §9.1.2.1, RFC 2545; the
// engine side is test/engine/engine-nexthop-recursive6.test.ts; the IPv4 one is test/interop/nexthop-recursive-bird.test.ts, which
// this follows step by step). skeind in a namespace with two eBGP peers over IPv6 sessions, A and B. B announces
// 2001:db8:90::/48 with its loopback 2001:db8:ff::7 as next hop, which no route of skein's host covers, and
// 2001:db8:ff::/64 itself with its own address: skein resolves the first through the second (a Loc-RIB route) and
// installs it via fd00:2::2, and it forwards (ping). When B withdraws the covering route the path is unusable: out
// of the kernel, withdrawn from A. Then another routing daemon on skein's host (BIRD with a kernel protocol only)
// writes 2001:db8:ff::/64 via fd00:2::2 (proto bird): skeind follows the kernel over rtnetlink (its poll is an hour
// here) and installs the prefix again; when that daemon stops, skein's route goes too. The loop case: B announces
// 2001:db8:97::/48 with a next hop inside it; that path is 'recursive-loop', A's path is installed and nothing flaps.
import t from 'tap';
import { recursiveNextHops } from '../helpers/nexthop-recursive.js';

t.test('skeind resolves IPv6 next hops through BGP routes and other daemons\' kernel routes, one level, loop-safe', (t) => recursiveNextHops(t, {
  v: 6,
  tag: 'nr6',
  metricsPort: 29982,
  REC: '2001:db8:90::/48',
  REC_NH: '2001:db8:ff::7',
  REC_HOST: '2001:db8:90::1',
  COVER: '2001:db8:ff::/64',
  LOOP: '2001:db8:97::/48',
  LOOP_NH: '2001:db8:97::1',
  hostA: 'fd00:1::1',
  peerA: 'fd00:1::2',
  hostB: 'fd00:2::1',
  peerB: 'fd00:2::2',
  pool: '2001:db8:80::/41',
}));
