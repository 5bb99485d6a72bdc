// Prefix metrics per family: a dual-stack session (both unicast families on one session, skein's default) reports
// each family's counts under its own label. The sampler used to set the session's totals under every family label,
// so a peer sending 3 IPv4 and 2 IPv6 routes showed 5 under ipv4-unicast and 5 under ipv6-unicast (summed over
// families by a dashboard: 10). Two real speakers over loopback, the real sampler and the Prometheus registry.
import t from 'tap';
import type { Speaker } from '../../bgp/index.js';
import { MetricsSampler } from '../../src/daemon/sampler.js';
import type { RouteTable } from '../../src/daemon/routes.js';
import { ReadinessGate } from '../../src/http.js';
import { Metrics } from '../../src/metrics.js';
import { loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';
import { until } from '../helpers/netns.js';

const PORT = 24351;
const addr = loopbackNet();
const speakers: Speaker[] = [];
t.teardown(async () => {
  for (const s of speakers) await s.stop({ message: 'test over' });
});

/** The value of one series in a scrape; undefined when absent. */
function series(body: string, name: string, peer: string, family: string): number | undefined {
  const m = new RegExp(`^${name}\\{peer="${peer.replace(/\./g, '\\.')}",family="${family}"\\} (\\S+)$`, 'm').exec(body);
  return m === null ? undefined : Number(m[1]);
}

/** One sample of a speaker into fresh metrics (no FIB: the sampler reads the speaker alone). */
async function sampled(s: Speaker): Promise<string> {
  const metrics = new Metrics({ defaultMetrics: false });
  const routes = { open: false, size: 0 } as unknown as RouteTable; // read only for skein_fib_routes without a FIB
  new MetricsSampler({ metrics, readiness: new ReadinessGate(), fib: undefined, routes, speaker: () => s }).sample();
  return (await metrics.scrape()).body;
}

t.test('a dual-stack session: each family counted under its own label, not the total under both', async (t) => {
  const a = loopbackSpeaker(addr, PORT, 1, 65001, [{ address: addr(2), port: PORT, asn: 65002 }], { nextHop6: 'fd00::1' });
  const b = loopbackSpeaker(addr, PORT, 2, 65002, [{ address: addr(1), port: PORT, asn: 65001 }], { nextHop6: 'fd00::2' });
  speakers.push(a, b);
  await a.start();
  await b.start();
  for (const p of ['10.61.1.0/24', '10.61.2.0/24', '10.61.3.0/24', 'fd00:61:1::/64', 'fd00:61:2::/64']) a.originate(p);
  const held = (): number => b.peersJson().peers[0]?.prefixes.accepted ?? 0;
  t.ok(await until(() => held() === 5, 'B holds the 5 routes', 20_000, 50), 'B holds 3 IPv4 and 2 IPv6 routes from A');
  const bp = b.peersJson().peers[0]!;
  t.same([...bp.families].sort(), ['ipv4-unicast', 'ipv6-unicast'], 'one session carries both families');

  const atB = await sampled(b);
  const pa = addr(1);
  t.equal(series(atB, 'skein_bgp_prefixes_accepted', pa, 'ipv4-unicast'), 3, 'accepted, IPv4: 3');
  t.equal(series(atB, 'skein_bgp_prefixes_accepted', pa, 'ipv6-unicast'), 2, 'accepted, IPv6: 2');
  t.equal(series(atB, 'skein_bgp_prefixes_received', pa, 'ipv4-unicast'), 3, 'received, IPv4: 3');
  t.equal(series(atB, 'skein_bgp_prefixes_received', pa, 'ipv6-unicast'), 2, 'received, IPv6: 2');
  t.not(series(atB, 'skein_bgp_prefixes_accepted', pa, 'ipv6-unicast'), 5, 'the total is not shown under a family label');
  // the families add up to the session's totals that `skeinctl peers` shows
  t.equal(bp.prefixes.accepted, 5, 'the session total stays 5');
  t.same(bp.prefixesByFamily, {
    'ipv4-unicast': { received: 3, accepted: 3, advertised: 0 },
    'ipv6-unicast': { received: 2, accepted: 2, advertised: 0 },
  }, 'B\'s per-family counts for A (B sends A nothing back: A is the routes\' origin AS)');

  const atA = await sampled(a);
  const pb = addr(2);
  t.equal(series(atA, 'skein_bgp_prefixes_advertised', pb, 'ipv4-unicast'), 3, 'advertised by A, IPv4: 3');
  t.equal(series(atA, 'skein_bgp_prefixes_advertised', pb, 'ipv6-unicast'), 2, 'advertised by A, IPv6: 2');
  t.equal(series(atA, 'skein_bgp_prefixes_accepted', pb, 'ipv4-unicast'), 0, 'A accepted nothing from B');

  // A withdrawal moves only its own family: accepted IPv6 drops, IPv4 does not, and received (cumulative) stays.
  a.withdraw('fd00:61:2::/64');
  t.ok(await until(() => held() === 4, 'B drops the withdrawn route', 20_000, 50), 'the IPv6 route is withdrawn at B');
  const after = await sampled(b);
  t.equal(series(after, 'skein_bgp_prefixes_accepted', pa, 'ipv6-unicast'), 1, 'accepted, IPv6: 1 after the withdrawal');
  t.equal(series(after, 'skein_bgp_prefixes_accepted', pa, 'ipv4-unicast'), 3, 'accepted, IPv4: still 3');
  t.equal(series(after, 'skein_bgp_prefixes_received', pa, 'ipv6-unicast'), 2, 'received stays cumulative');
  t.equal(series(await sampled(a), 'skein_bgp_prefixes_advertised', pb, 'ipv6-unicast'), 1, 'advertised by A, IPv6: 1');
});
