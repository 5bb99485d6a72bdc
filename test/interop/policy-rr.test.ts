// A skein route reflector (RFC 4456) under Calico's export policy, with two BIRD 2 clients in their own
// namespaces, over IPv4 and IPv6 sessions: each client announces a pool route, a route outside every pool and a
// default route, per family. The reflector reflects the pool routes between the clients and nothing else (bird_ipam.cfg.template: a route reflector still
// exports only what lies in a pool, whoever it learned it from).
import t from 'tap';
import { existsSync } from 'node:fs';
import { requires } from '../helpers/env.js';
import { Lab, until } from '../helpers/netns.js';
import { Bird } from '../helpers/bird.js';
import { AGENT, AgentClient } from '../helpers/agent-client.js';
import { formatIssue, loadResourcesText } from '../../config/index.js';
import { compileNodePolicy, peerRules } from '../../src/controller/policy.js';

const AS = 65100;
const ip = (n: number, host: number): string => `10.9.${n}.${host}`;

const RESOURCES = `
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: { name: default }
spec: { asNumber: ${AS}, nodeToNodeMeshEnabled: false }
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: { name: rr }
spec: { bgp: { ipv4Address: 10.9.0.1/16, routeReflectorClusterID: 10.9.9.8 } }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: pods }
spec: { cidr: 10.65.0.0/16, blockSize: 26 }
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: pods6 }
spec: { cidr: "fd65::/48", blockSize: 122 }
`;
const ip6 = (n: number, host: number): string => `fd09:${n}::${host}`;

t.test('skein reflects pool routes between BIRD clients, and nothing else (IPv4 and IPv6)', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  if (!existsSync(AGENT)) return t.fail(`${AGENT} is missing: run npm run build first`);
  const loaded = loadResourcesText(RESOURCES, 'rr.yaml');
  const errors = loaded.issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map(formatIssue).join('\n'));
  const rules = peerRules(compileNodePolicy(loaded.model, 'rr'), []);

  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const hub = lab.ns('prr');
  const birds: Bird[] = [];
  for (const n of [1, 2]) {
    const ns = lab.ns(`pc${n}`);
    const [h, s] = lab.link(hub, ns);
    lab.addr(hub, h, `${ip(n, 1)}/24`);
    lab.addr(ns, s, `${ip(n, 2)}/24`);
    lab.addr(hub, h, `${ip6(n, 1)}/64`);
    lab.addr(ns, s, `${ip6(n, 2)}/64`);
    const bird = new Bird(ns);
    t.teardown(() => bird.stop());
    birds.push(bird);
    await bird.start(`router id ${ip(n, 2)};
protocol device { scan time 1; }
protocol static s4 { ipv4; route 10.65.${n}.0/26 blackhole; route 192.0.2.${n * 16}/28 blackhole; route 0.0.0.0/0 blackhole; }
protocol static s6 { ipv6; route fd65::${n}:0/122 blackhole; route 2001:db8:${n}::/48 blackhole; route ::/0 blackhole; }
protocol static toclients { ipv4; route 10.9.0.0/16 via ${ip(n, 1)}; }
protocol static toclients6 { ipv6; route fd09::/16 via ${ip6(n, 1)}; }
protocol bgp refl {
  local ${ip(n, 2)} as ${AS};
  neighbor ${ip(n, 1)} as ${AS};
  hold time 30;
  connect retry time 1;
  ipv4 { import all; export where proto = "s4"; gateway recursive; };
}
protocol bgp refl6 {
  local ${ip6(n, 2)} as ${AS};
  neighbor ${ip6(n, 1)} as ${AS};
  hold time 30;
  connect retry time 1;
  ipv6 { import all; export where proto = "s6"; gateway recursive; };
}
`);
  }
  const rr = AgentClient.spawn(t, hub);
  await rr.call('start', {
    config: {
      localAsn: AS, listenPort: 179, holdTime: 30, connectRetryTime: 1, idleHold: { initial: 1, max: 2 },
      routerId: '10.9.0.1', clusterId: '10.9.9.8', listenAddress: '::',
      peers: [
        ...[1, 2].map((n) => ({ address: ip(n, 2), asn: AS, passive: true, routeReflectorClient: true, families: ['ipv4-unicast'], rules })),
        ...[1, 2].map((n) => ({ address: ip6(n, 2), asn: AS, passive: true, routeReflectorClient: true, families: ['ipv6-unicast'], rules })),
      ],
    },
  });
  const fromRr = (b: Bird): string[] => b.routes('table', 'master4').filter((r) => r.from === 'refl').map((r) => r.prefix).sort();
  const fromRr6 = (b: Bird): string[] => b.routes('table', 'master6').filter((r) => r.from === 'refl6').map((r) => r.prefix).sort();
  try {
    await until(async () => {
      const ps = await rr.peers();
      return ps.length === 4 && ps.every((p) => p.state === 'Established' && p.prefixes.accepted === 3);
    }, 'both clients Established over IPv4 and IPv6, 3 routes each', 30_000, 200);
    await until(() => fromRr(birds[0]!).length === 1 && fromRr(birds[1]!).length === 1, 'each client has the other\'s pool route', 15_000, 200);
    await until(() => fromRr6(birds[0]!).length === 1 && fromRr6(birds[1]!).length === 1, 'each client has the other\'s IPv6 pool route', 15_000, 200);
  } catch (e) {
    t.comment(`${birds[0]?.protocol('refl').text}\n${JSON.stringify(await rr.peers())}`);
    throw e;
  }
  // let any wrong route arrive before asserting absence: the End-of-RIB has come and gone by now
  await new Promise((r) => setTimeout(r, 1000));
  t.same(fromRr(birds[0]!), ['10.65.2.0/26'], 'client 1: client 2\'s pool route only (not 192.0.2.32/28, not its default)');
  t.same(fromRr(birds[1]!), ['10.65.1.0/26'], 'client 2: client 1\'s pool route only');
  const r = birds[0]!.routes('10.65.2.0/26').find((x) => x.from === 'refl');
  t.equal(r?.bgp.originator_id, ip(2, 2), 'reflected: ORIGINATOR_ID is client 2');
  t.equal(r?.bgp.cluster_list, '10.9.9.8', 'and our cluster ID is in CLUSTER_LIST');
  t.same(fromRr6(birds[0]!), ['fd65::2:0/122'], 'IPv6, client 1: client 2\'s pool route only (not 2001:db8:2::/48, not ::/0)');
  t.same(fromRr6(birds[1]!), ['fd65::1:0/122'], 'IPv6, client 2: client 1\'s pool route only');
  const r6 = birds[0]!.routes('fd65::2:0/122').find((x) => x.from === 'refl6');
  t.equal(r6?.bgp.originator_id, ip(2, 2), 'IPv6 reflected: ORIGINATOR_ID is client 2 (its router id)');
  t.equal(r6?.bgp.cluster_list, '10.9.9.8', 'and our cluster ID is in CLUSTER_LIST');
  t.match(r6?.bgp.next_hop ?? '', ip6(2, 2), 'next hop unchanged: client 2\'s address');
  const peers = await rr.peers();
  t.same(peers.map((p) => p.prefixes.advertised), [1, 1, 1, 1], 'the reflector advertised one route to each client per family');
});
