// skein's Speaker against BIRD 2, each in its own namespace, over a veth with
// IPv4 and IPv6 addresses: one session over IPv4 carrying both families
// (MP-BGP), as iBGP and as eBGP. Routes, attributes and withdrawals are
// checked on both sides, through birdc and through the speaker's own JSON.
import t from 'tap';
import { existsSync } from 'node:fs';
import { requires } from '../helpers/env.js';
import { Lab, until } from '../helpers/netns.js';
import { Bird, type BirdRoute } from '../helpers/bird.js';
import { AGENT, AgentClient } from '../helpers/agent-client.js';


/** The speaker-agent child: JSON commands in, answers out. */
const BIRD_AS = 65010;

function birdConfig(skeinAs: number): string {
  const ibgp = skeinAs === BIRD_AS;
  // Attributes for the routes BIRD originates, set on export so both sides can check them.
  const tag = `
      if net = 10.10.0.0/16 || net = fd10::/48 then {
        bgp_med = 33;
        bgp_community.add((65010, 1));
        bgp_large_community.add((65010, 2, 3));
        ${ibgp ? 'bgp_local_pref = 150;' : ''}
      }
      accept;`;
  return `
router id 10.0.0.1;
protocol device { scan time 1; }
protocol static s4 { ipv4; route 10.10.0.0/16 blackhole; route 10.11.0.0/16 blackhole; }
protocol static s6 { ipv6; route fd10::/48 blackhole; }
protocol bgp sk {
  local 10.0.0.1 as ${BIRD_AS};
  neighbor 10.0.0.2 as ${skeinAs};
  ${ibgp ? 'direct;' : ''}
  hold time 30;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 { import all; export filter { ${tag} }; ${ibgp ? 'gateway direct;' : ''} };
  ipv6 { import all; export filter { ${tag} }; next hop address fd00::1; ${ibgp ? 'gateway direct;' : ''} };
}
`;
}

const bgpRoute = (rs: BirdRoute[], prefix: string): BirdRoute | undefined => rs.find((r) => r.prefix === prefix && r.from === 'sk');

for (const mode of ['iBGP', 'eBGP'] as const) {
  t.test(`BIRD 2 as ${mode} peer`, async (t) => {
    if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
    if (!existsSync(AGENT)) {
      t.fail(`${AGENT} is missing: run npm run build first`);
      return;
    }
    const skeinAs = mode === 'iBGP' ? BIRD_AS : 65020;
    const lab = new Lab();
    t.teardown(() => lab.destroy());
    const nsBird = lab.ns('bird');
    const nsSkein = lab.ns('skein');
    const [vb, vs] = lab.link(nsBird, nsSkein);
    lab.addr(nsBird, vb, '10.0.0.1/24');
    lab.addr(nsBird, vb, 'fd00::1/64');
    lab.addr(nsSkein, vs, '10.0.0.2/24');
    lab.addr(nsSkein, vs, 'fd00::2/64');

    const bird = new Bird(nsBird);
    t.teardown(() => bird.stop());
    await bird.start(birdConfig(skeinAs));

    const agent = AgentClient.spawn(t, nsSkein);
    await agent.call('start', {
      config: {
        localAsn: skeinAs,
        routerId: '10.0.0.2',
        listenAddress: '10.0.0.2',
        listenPort: 179,
        holdTime: 30,
        connectRetryTime: 2,
        idleHold: { initial: 1, max: 4 },
        peers: [{ address: '10.0.0.1', asn: BIRD_AS, nextHop6: 'fd00::2' }],
      },
    });
    const mine = { localPref: 300, med: 44, communities: [skeinAs * 65536 + 5], largeCommunities: [[skeinAs, 6, 7]] };
    await agent.call('originate', { prefix: '10.20.0.0/16', attrs: mine });
    await agent.call('originate', { prefix: 'fd20::/48', attrs: mine });
    await agent.call('originate', { prefix: '10.21.0.0/16' });

    const diag = async (): Promise<string> =>
      `BIRD:\n${bird.protocol('sk').text}\nskein: ${JSON.stringify(await agent.peer())}\nagent events: ${JSON.stringify(agent.events.slice(-20))}\nbird log: ${bird.log.slice(-2000)}`;
    try {
      await until(() => bird.protocol('sk').bgpState === 'Established', 'BIRD sees the session Established', 30_000, 200);
      await until(async () => (await agent.peer())?.state === 'Established', 'skein sees the session Established', 10_000, 100);
      await until(
        async () => {
          const p = bird.protocol('sk');
          const s = await agent.peer();
          return p.channels.ipv4?.imported === 2 && p.channels.ipv6?.imported === 1 && s?.prefixes.accepted === 3;
        },
        'routes both ways',
        20_000,
        200,
      );
    } catch (e) {
      t.comment(await diag());
      throw e;
    }

    const proto = bird.protocol('sk');
    t.equal(proto.channels.ipv4?.state, 'UP', 'BIRD: IPv4 channel up');
    t.equal(proto.channels.ipv6?.state, 'UP', 'BIRD: IPv6 channel up on the same session');
    const peer = await agent.peer();
    t.equal(peer?.state, 'Established');
    t.same(peer?.families, ['ipv4-unicast', 'ipv6-unicast'], 'skein: both families negotiated');
    t.equal(peer?.asn, BIRD_AS);
    // what each side says it sent is what the other says it holds
    t.equal(peer?.prefixes.advertised, (proto.channels.ipv4?.imported ?? 0) + (proto.channels.ipv6?.imported ?? 0), 'skein advertised = BIRD imported');
    t.equal(peer?.prefixes.accepted, (proto.channels.ipv4?.exported ?? 0) + (proto.channels.ipv6?.exported ?? 0), 'skein accepted = BIRD exported');

    // skein → BIRD
    const b4 = bgpRoute(bird.routes('table', 'master4'), '10.20.0.0/16');
    const b6 = bgpRoute(bird.routes('table', 'master6'), 'fd20::/48');
    t.ok(b4, 'BIRD has 10.20.0.0/16 from skein');
    t.ok(b6, 'BIRD has fd20::/48 from skein');
    t.equal(b4?.bgp.med, '44', 'MED of our own route survives');
    t.equal(b4?.bgp.community, `(${skeinAs},5)`, 'community');
    t.equal(b4?.bgp.large_community, `(${skeinAs}, 6, 7)`, 'large community');
    t.equal(b4?.bgp.as_path ?? '', mode === 'iBGP' ? '' : '65020', 'AS path');
    t.equal(b4?.bgp.next_hop, '10.0.0.2', 'IPv4 next hop is our session address');
    t.match(b6?.bgp.next_hop ?? '', /fd00::2/, 'IPv6 next hop is our configured IPv6 address');
    // over eBGP our LOCAL_PREF of 300 is stripped and BIRD shows its own default of 100
    t.equal(b4?.bgp.local_pref, mode === 'iBGP' ? '300' : '100', mode === 'iBGP' ? 'LOCAL_PREF passes over iBGP' : 'LOCAL_PREF stripped over eBGP');

    // BIRD → skein
    const s4 = await agent.route('10.10.0.0/16');
    const s6 = await agent.route('fd10::/48');
    t.same(s4?.best.from, '10.0.0.1');
    t.same(s4?.best.nextHops, ['10.0.0.1']);
    t.same(s6?.best.nextHops.slice(0, 1), ['fd00::1'], 'IPv6 next hop from MP_REACH');
    t.same(s4?.best.asPath, mode === 'iBGP' ? [] : [BIRD_AS]);
    t.equal(s4?.best.med, 33);
    t.same(s4?.best.communities, ['65010:1']);
    t.same(s4?.best.largeCommunities, ['65010:2:3']);
    t.equal(s4?.best.localPref, mode === 'iBGP' ? 150 : 100, mode === 'iBGP' ? 'LOCAL_PREF from iBGP kept' : 'eBGP: our default LOCAL_PREF');
    t.equal(s6?.best.med, 33, 'IPv6 route attributes too');

    // withdrawals, skein → BIRD
    await agent.call('withdraw', { prefix: '10.20.0.0/16' });
    await agent.call('withdraw', { prefix: 'fd20::/48' });
    await until(() => !bgpRoute(bird.routes('table', 'master4'), '10.20.0.0/16') && !bgpRoute(bird.routes('table', 'master6'), 'fd20::/48'), 'BIRD drops our withdrawn routes', 10_000, 200);
    t.ok(bgpRoute(bird.routes('table', 'master4'), '10.21.0.0/16'), 'the other route stays at BIRD');
    // withdrawals, BIRD → skein
    bird.birdc('disable', 's6');
    bird.birdc('disable', 's4');
    await until(async () => !(await agent.route('10.10.0.0/16')) && !(await agent.route('fd10::/48')), 'skein drops BIRD\'s withdrawn routes', 10_000, 200);
    const after = await agent.peer();
    const p2 = bird.protocol('sk');
    t.equal(after?.prefixes.accepted, 0, 'skein holds nothing from BIRD');
    t.equal(p2.channels.ipv4?.imported, 1, 'BIRD holds our one remaining route');
    t.equal(after?.prefixes.advertised, 1);
    t.equal(after?.state, 'Established', 'the session stayed up throughout');
    t.equal(p2.bgpState, 'Established');

    await agent.call('stop', { message: 'interop test done' });
    await until(() => /Administrative shutdown|Received: Administrative shutdown|interop test done/i.test(bird.protocol('sk').text), 'BIRD shows our shutdown', 10_000, 200).catch(
      async (e: unknown) => {
        t.comment(await diag().catch(() => bird.protocol('sk').text));
        throw e;
      },
    );
    t.pass('BIRD received Cease / Administrative Shutdown');
  });
}
