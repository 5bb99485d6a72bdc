// Route reflection (RFC 4456) against BIRD 2, each daemon in its own
// namespace, the reflector in the middle with a veth to each client:
// 1. BIRD is the reflector (`rr client`, `rr cluster id`), two skein clients;
// 2. skein is the reflector, BIRD and a skein speaker are its clients.
import t from 'tap';
import { existsSync } from 'node:fs';
import { requires } from '../helpers/env.js';
import { Lab, until } from '../helpers/netns.js';
import { Bird } from '../helpers/bird.js';
import { AGENT, AgentClient } from '../helpers/agent-client.js';
import type { SpeakerOptions } from '../../bgp/index.js';

type Teardown = { teardown: (fn: () => unknown) => void };
const AS = 65100;

/** The speaker-agent child: JSON commands in, answers out. */
/** Hub (reflector) namespace with a veth to each of two spokes: 10.9.N.1 (hub) — 10.9.N.2 (spoke N). */
function star(t: Teardown) {
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const hub = lab.ns('rr');
  const spokes = [1, 2].map((n) => {
    const ns = lab.ns(`c${n}`);
    const [h, s] = lab.link(hub, ns);
    lab.addr(hub, h, `10.9.${n}.1/24`);
    lab.addr(ns, s, `10.9.${n}.2/24`);
    return ns;
  });
  return { hub, spokes: spokes as [string, string] };
}

async function agent(t: Teardown, ns: string, config: SpeakerOptions): Promise<AgentClient> {
  const a = AgentClient.spawn(t, ns);
  await a.call('start', { config });
  return a;
}

const base = { localAsn: AS, listenPort: 179, holdTime: 30, connectRetryTime: 1, idleHold: { initial: 1, max: 2 } };
const ip = (n: number, host: number): string => `10.9.${n}.${host}`;
/** BIRD prints a cluster list / originator id as dotted quads. */
const up = (a: AgentClient) => async () => (await a.peers()).every((p) => p.state === 'Established');

t.test('BIRD 2 as the reflector, two skein clients', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  if (!existsSync(AGENT)) return t.fail(`${AGENT} is missing: run npm run build first`);
  const { hub, spokes } = star(t);
  const bird = new Bird(hub);
  t.teardown(() => bird.stop());
  const client = (n: number) => `
protocol bgp c${n} {
  local ${ip(n, 1)} as ${AS};
  neighbor ${ip(n, 2)} as ${AS};
  rr client;
  rr cluster id 10.9.9.9;
  passive on;
  direct;
  hold time 30;
  ipv4 { import all; export all; gateway direct; };
}`;
  await bird.start(`router id 10.9.0.1;\nprotocol device { scan time 1; }\n${client(1)}\n${client(2)}\n`);
  const clients = await Promise.all(
    [1, 2].map((n) =>
      agent(t, spokes[n - 1] as string, { ...base, routerId: ip(n, 2), listenAddress: ip(n, 2), peers: [{ address: ip(n, 1), asn: AS, families: ['ipv4-unicast'] }] }),
    ),
  );
  await clients[0]?.call('originate', { prefix: '10.51.0.0/16' });
  await clients[1]?.call('originate', { prefix: '10.52.0.0/16' });
  const diag = () => `${bird.protocol('c1').text}\n${bird.protocol('c2').text}\n${bird.log.slice(-1000)}`;
  try {
    await until(async () => (await up(clients[0] as AgentClient)()) && (await up(clients[1] as AgentClient)()), 'both clients Established', 30_000, 200);
    await until(async () => (await clients[0]?.route('10.52.0.0/16')) && (await clients[1]?.route('10.51.0.0/16')), 'each client has the other\'s route', 15_000, 200);
  } catch (e) {
    t.comment(diag());
    throw e;
  }
  const r1 = await clients[0]?.route('10.52.0.0/16');
  t.same(r1?.best.nextHops, [ip(2, 2)], 'BIRD reflected with the next hop unchanged (client 2)');
  t.equal(r1?.best.from, ip(1, 1), 'learned from the reflector');
  t.same(r1?.paths.length, 1, 'exactly one path');
  t.notOk(await clients[0]?.route('10.51.0.0/16').then((r) => r?.best.from !== 'local' && r !== undefined), 'its own route did not come back');
  const mine = (await clients[0]?.peers())?.[0];
  t.equal(mine?.prefixes.accepted, 1, 'client 1 accepted one route');
});

t.test('skein as the reflector, BIRD 2 and a skein speaker as clients', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  if (!existsSync(AGENT)) return t.fail(`${AGENT} is missing: run npm run build first`);
  const { hub, spokes } = star(t);
  const rr = await agent(t, hub, {
    ...base,
    routerId: '10.9.0.1',
    clusterId: '10.9.9.8',
    listenAddress: '0.0.0.0',
    peers: [1, 2].map((n) => ({ address: ip(n, 2), asn: AS, passive: true, routeReflectorClient: true, families: ['ipv4-unicast'] as const })),
  });
  const bird = new Bird(spokes[0]);
  t.teardown(() => bird.stop());
  await bird.start(`router id ${ip(1, 2)};
protocol device { scan time 1; }
protocol static s4 { ipv4; route 10.61.0.0/16 blackhole; }
# the other client's next hop resolves through the reflector's side (recursive, as iBGP does)
protocol static toclients { ipv4; route 10.9.0.0/16 via ${ip(1, 1)}; }
protocol bgp refl {
  local ${ip(1, 2)} as ${AS};
  neighbor ${ip(1, 1)} as ${AS};
  hold time 30;
  connect retry time 1;
  ipv4 { import all; export where net = 10.61.0.0/16; gateway recursive; };
}
`);
  const other = await agent(t, spokes[1], { ...base, routerId: ip(2, 2), listenAddress: ip(2, 2), peers: [{ address: ip(2, 1), asn: AS, families: ['ipv4-unicast'] }] });
  await other.call('originate', { prefix: '10.62.0.0/16' });
  try {
    await until(async () => (await up(rr)()) && bird.protocol('refl').bgpState === 'Established', 'sessions Established', 30_000, 200);
    await until(async () => (await other.route('10.61.0.0/16')) && bird.routes('10.62.0.0/16').some((r) => r.from === 'refl'), 'reflected both ways', 15_000, 200);
  } catch (e) {
    t.comment(`${bird.protocol('refl').text}\n${JSON.stringify(await rr.peers())}`);
    throw e;
  }
  const atBird = bird.routes('10.62.0.0/16').find((r) => r.from === 'refl');
  t.equal(atBird?.bgp.originator_id, ip(2, 2), 'BIRD sees ORIGINATOR_ID = the skein client');
  t.equal(atBird?.bgp.cluster_list, '10.9.9.8', 'BIRD sees our CLUSTER_ID in CLUSTER_LIST');
  t.equal(atBird?.bgp.next_hop, ip(2, 2), 'next hop unchanged');
  const atOther = await other.route('10.61.0.0/16');
  t.same(atOther?.best.nextHops, [ip(1, 2)], 'the skein client gets BIRD\'s route with BIRD\'s next hop');
  t.equal(atOther?.best.from, ip(2, 1));
  // BIRD's own route is not reflected back to it (and it would drop it by ORIGINATOR_ID)
  t.notOk(bird.routes('10.61.0.0/16').some((r) => r.from === 'refl'), 'BIRD does not get its own route back');
});
