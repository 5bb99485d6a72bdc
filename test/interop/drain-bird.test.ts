// RFC 8326 graceful shutdown against a real BIRD 2 ToR (lab: test/helpers/drain-lab.ts): `skeinctl drain` on h1 makes
// BIRD see h1's route with GRACEFUL_SHUTDOWN (65535,0) and LOCAL_PREF 0 and move to h2's path (its kernel too);
// `skeinctl undrain` brings BIRD back to h1 with the community gone, and neither side's session was reset. The other
// direction: a route BIRD sends with the community is held by skein as LOCAL_PREF 0 (RFC 8326 §4.2).
import t from 'tap';
import { requires } from '../helpers/env.js';
import { drainLab, GSHUT_NET, SERVICE } from '../helpers/drain-lab.js';
import { until } from '../helpers/netns.js';

interface Peer { address: string; state: string; since: string }
interface Path { from: string; localPref: number; communities: string[] }

t.test('BIRD sees the drain and moves to the other path; undrain moves it back without a session reset', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc', 'ping'] })) return;
  const lab = await drainLab(t, 'drain-bird');
  lab.startHost('h1', 0);
  lab.startHost('h2', 0);
  const fromH1 = (): { community: string; localPref: string; primary: boolean } | undefined => {
    const r = lab.bird.routes(SERVICE).find((x) => x.from === 'h1');
    return r ? { community: r.bgp.community ?? '', localPref: r.bgp.local_pref ?? '', primary: r.primary } : undefined;
  };
  const peerH1 = async (): Promise<Peer | undefined> => ((await lab.ctl('h1', 'status')).peers as Peer[])[0];
  try {
    await lab.waitUp();
    const before = fromH1();
    t.equal(before?.primary, true, 'BIRD uses h1\'s path (lower router ID)');
    t.notMatch(before?.community ?? '', /65535, ?0/, 'without the community');
    const normalPref = before?.localPref ?? '';
    t.not(normalPref, '0');
    const sinces = { bird: lab.birdSince('h1'), skein: (await peerH1())?.since };
    t.not(sinces.bird, '', 'BIRD shows when the session came up');

    // Honoured on receipt: the route BIRD marks arrives at LOCAL_PREF 0 (BIRD sent its default 100).
    await until(async () => ((await lab.ctl('h1', 'routes', GSHUT_NET)).routes as unknown[]).length === 1, 'h1 learns the marked route', 20_000, 200);
    const marked = ((await lab.ctl('h1', 'routes', GSHUT_NET)).routes as { best: Path }[])[0]!.best;
    t.same({ localPref: marked.localPref, communities: marked.communities }, { localPref: 0, communities: ['65535:0'] }, 'skein ranks a GRACEFUL_SHUTDOWN route lowest (LOCAL_PREF 0)');

    // Drain. (How long until the ToR's kernel moved is printed, not asserted.)
    const t0 = performance.now();
    const d = await lab.ctl('h1', 'drain', '--seconds', '2');
    t.equal(d.state, 'draining');
    await until(() => lab.torVia() === '10.43.2.1', 'the ToR\'s kernel moves to h2', 20_000, 10);
    t.comment(`skeinctl drain -> the ToR's kernel routes through h2 after ${Math.round(performance.now() - t0)} ms (skeinctl start-up included)`);
    await until(() => /65535, ?0/.test(fromH1()?.community ?? ''), 'BIRD sees GRACEFUL_SHUTDOWN on h1\'s route', 20_000, 100);
    const drained = fromH1();
    t.equal(drained?.localPref, '0', 'LOCAL_PREF 0 (iBGP, RFC 8326 §4.1)');
    t.equal(drained?.primary, false, 'BIRD no longer uses h1\'s path');
    t.equal(lab.bird.routes(SERVICE).find((x) => x.primary)?.from, 'h2', 'BIRD uses h2\'s');
    await until(() => lab.torVia() === '10.43.2.1', 'the ToR\'s kernel routes through h2', 20_000, 100);
    t.equal((await lab.ctl('h1', 'drain', '--wait')).state, 'drained');
    t.match((await lab.ctlText('h1', 'status')).out, /Graceful shutdown:\s+drained/, 'skeinctl status shows it');
    t.equal((await peerH1())?.state, 'Established', 'the session stays up while drained');

    // Undrain.
    t.equal((await lab.ctl('h1', 'undrain')).state, 'off');
    await until(() => fromH1()?.primary === true, 'BIRD back on h1\'s path', 20_000, 100);
    t.notMatch(fromH1()?.community ?? '', /65535, ?0/, 'the community gone');
    t.equal(fromH1()?.localPref, normalPref, `LOCAL_PREF ${normalPref} again`);
    await until(() => lab.torVia() === '10.43.1.1', 'the ToR\'s kernel routes through h1 again', 20_000, 100);
    // must NOT: a session reset anywhere
    t.equal(lab.birdSince('h1'), sinces.bird, 'BIRD\'s session with h1 was never re-established');
    t.equal((await peerH1())?.since, sinces.skein, 'nor skein\'s');
    t.equal(lab.bird.protocol('h2').bgpState, 'Established');
  } catch (e) {
    lab.diag(t);
    throw e;
  }
});
