// Planned maintenance loses nothing (issue 18, RFC 8326): the BIRD ToR of test/helpers/drain-lab.ts pings the
// address both hosts answer, every 50 ms, while h1 is stopped for good (SIGTERM with bgp.shutdownDrainSeconds 3):
// h1 drains, the ToR moves to h2 while h1's session is still up, h1 ends its session with Cease / Administrative
// Shutdown and exits 0, the host leaves (its address goes), and not one ping is lost. Then the same stop without the key (a restart, graceful restart
// keeps h1's route at the ToR): pings are lost, which shows the first half could have failed.
import t from 'tap';
import { requires } from './helpers/env.js';
import { ANYCAST, drainLab, pinger, SERVICE } from './helpers/drain-lab.js';
import { nsExec, until } from './helpers/netns.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('pings through a host that drains and stops: none lost with a second path; lost without the drain', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc', 'ping'] })) return;
  const lab = await drainLab(t, 'drain-traffic');
  lab.startHost('h1', 3);
  lab.startHost('h2', 0);
  const exited = (name: 'h1' | 'h2'): Promise<number | null> => {
    const p = lab.daemon(name)!;
    return p.exitCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code)));
  };
  // The host leaves once skeind has stopped: what it served goes with it (its anycast address; its namespace and
  // link stay, so the ToR's view of the link is not what decides).
  const leave = (): void => void nsExec(lab.ns.h1, 'ip', ['addr', 'del', `${ANYCAST}/32`, 'dev', 'lo']);
  try {
    await lab.waitUp();
    // sanity: the path works before anything happens
    const warm = pinger(lab.tor, 20, 10);
    await sleep(1200);
    const w = await warm.stop();
    t.ok(w.received > 0 && w.received === w.sent, `pings answered before the drain (${w.received}/${w.sent})`);

    // 1. SIGTERM with the drain: watch where the ToR routes and whether h1's session is up at that moment.
    let movedWhileUp: boolean | undefined;
    let polls = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching && polls < 2000) {
        polls++;
        if (movedWhileUp === undefined && lab.torVia() === '10.43.2.1') movedWhileUp = lab.bird.protocol('h1').bgpState === 'Established';
        await sleep(50);
      }
    })();
    const ping = pinger(lab.tor, 600, 60);
    await sleep(1000);
    const code = exited('h1');
    lab.daemon('h1')!.kill('SIGTERM');
    const c = await Promise.race([code, sleep(30_000).then(() => 'timeout' as const)]);
    leave();
    await sleep(1500); // pings after h1 is gone
    const r = await ping.stop();
    watching = false;
    await watcher;
    t.equal(c, 0, 'h1 exits 0 after the drain');
    t.ok(r.sent >= 40, `pings were sent throughout (${r.sent})`);
    t.equal(r.sent - r.received, 0, `no ping lost: ${r.received}/${r.sent} answered`);
    t.equal(movedWhileUp, true, 'the ToR moved to h2 while h1\'s session was still up (polled)');
    t.ok(polls >= 5, `the ToR's route was polled ${polls} times`);
    await until(() => lab.bird.protocol('h1').bgpState !== 'Established', 'BIRD sees h1 gone', 10_000, 100);
    t.match(lab.bird.protocol('h1').text, /Administrative shutdown|graceful shutdown \(RFC 8326\)/i, 'BIRD got Cease / Administrative Shutdown');
    t.equal(lab.bird.routes(SERVICE).filter((x) => x.from === 'h1').length, 0, 'and holds no stale route from h1');

    // 2. The control: h1 back without the key, stopped the same way. Graceful restart keeps its route at the ToR,
    // which still forwards to it: pings are lost.
    nsExec(lab.ns.h1, 'ip', ['addr', 'add', `${ANYCAST}/32`, 'dev', 'lo']);
    lab.startHost('h1', 0);
    await lab.waitUp();
    const ping2 = pinger(lab.tor, 600, 60);
    await sleep(1000);
    const code2 = exited('h1');
    lab.daemon('h1')!.kill('SIGTERM');
    t.equal(await Promise.race([code2, sleep(30_000).then(() => 'timeout' as const)]), 0, 'h1 exits 0 (no drain)');
    leave();
    await sleep(2000);
    const r2 = await ping2.stop();
    t.ok(r2.sent - r2.received > 0, `without the drain pings are lost: ${r2.received}/${r2.sent} answered`);
    t.equal(lab.torVia(), '10.43.1.1', 'the ToR still routes to the stopped h1 (graceful restart)');
  } catch (e) {
    lab.diag(t);
    throw e;
  }
});
