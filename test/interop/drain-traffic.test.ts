// Planned maintenance loses nothing (issue 18, RFC 8326): the BIRD ToR of test/helpers/drain-lab.ts pings the
// address both hosts answer, every 50 ms, while h1 is stopped for good (SIGTERM with bgp.shutdownDrainSeconds 3):
// h1 drains, the ToR moves to h2 while h1's session is still up, h1 ends its session with Cease / Administrative
// Shutdown and exits 0, the host leaves (its address goes), and not one ping is lost. Then the same stop without the key (a restart, graceful restart
// keeps h1's route at the ToR): pings are lost, which shows the first half could have failed.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { ANYCAST, drainLab, pinger, SERVICE, SKEINCTL, SKEIND } from '../helpers/drain-lab.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { runCommand } from '../helpers/run.js';

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
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the test while this loop awaits
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

// The same with skein as the receiving side: h3 (skeind) peers with h1 and h2, which both announce one IPAM block
// (10.65.5.0/26, affine to both, as an anycast block would be), and pings 10.65.5.1, which both answer. When h1 stops
// with the drain, h3's own decision must rank h1's path lowest (RFC 8326 §4.2) and its kernel must use h2 alone
// before h1's session ends.
t.test('skein as the receiver: its kernel leaves the draining host before the session ends; no ping lost', async (t) => {
  if (!requires(t, { root: true, commands: ['ping'] })) return;
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'skein-drain-rx-'));
  const procs: ChildProcess[] = [];
  const logs: Record<string, string[]> = { h1: [], h2: [], h3: [] };
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const ns = { h1: lab.ns('r1'), h2: lab.ns('r2'), h3: lab.ns('r3') };
  lab.link(ns.h1, ns.h3, 'rxa', 'rxh1');
  lab.link(ns.h2, ns.h3, 'rxb', 'rxh2');
  lab.addr(ns.h1, 'rxa', '10.44.1.1/24');
  lab.addr(ns.h3, 'rxh1', '10.44.1.3/24');
  lab.addr(ns.h2, 'rxb', '10.44.2.2/24');
  lab.addr(ns.h3, 'rxh2', '10.44.2.3/24');
  nsExec(ns.h3, 'ip', ['addr', 'add', '10.44.0.3/32', 'dev', 'lo']);
  for (const [h, gw] of [['h1', '10.44.1.3'], ['h2', '10.44.2.3']] as const) {
    nsExec(ns[h], 'ip', ['addr', 'add', '10.65.5.1/32', 'dev', 'lo']);
    nsExec(ns[h], 'ip', ['route', 'add', '10.44.0.3/32', 'via', gw]);
  }
  const res = (kind: string, name: string, spec: unknown): string => `---\n${JSON.stringify({ apiVersion: 'projectcalico.org/v3', kind, metadata: { name }, spec })}\n`;
  const resFile = join(dir, 'resources.yaml');
  writeFileSync(resFile, [
    res('ClusterInformation', 'default', { datastoreReady: true }),
    res('BGPConfiguration', 'default', { asNumber: 64512, nodeToNodeMeshEnabled: false }),
    res('IPPool', 'pool4', { cidr: '10.65.0.0/16', blockSize: 26 }),
    res('Node', 'h1', { bgp: { ipv4Address: '10.44.1.1/24' } }),
    res('Node', 'h2', { bgp: { ipv4Address: '10.44.2.2/24' } }),
    res('Node', 'h3', { bgp: { ipv4Address: '10.44.1.3/24' } }),
    res('BlockAffinity', 'h1-10-65-5-0-26', { node: 'h1', cidr: '10.65.5.0/26', state: 'confirmed', deleted: 'false' }),
    res('BlockAffinity', 'h2-10-65-5-0-26', { node: 'h2', cidr: '10.65.5.0/26', state: 'confirmed', deleted: 'false' }),
    res('BGPPeer', 'h1-h3', { node: 'h1', peerIP: '10.44.1.3', asNumber: 64512, sourceAddress: 'None' }),
    res('BGPPeer', 'h2-h3', { node: 'h2', peerIP: '10.44.2.3', asNumber: 64512, sourceAddress: 'None' }),
    res('BGPPeer', 'h3-h1', { node: 'h3', peerIP: '10.44.1.1', asNumber: 64512, sourceAddress: 'None' }),
    res('BGPPeer', 'h3-h2', { node: 'h3', peerIP: '10.44.2.2', asNumber: 64512, sourceAddress: 'None' }),
  ].join(''));
  const sock = (h: string): string => join(dir, `${h}.sock`);
  const start = (h: 'h1' | 'h2' | 'h3', drainSeconds: number): ChildProcess => {
    const cfg = join(dir, `${h}.yaml`);
    writeFileSync(cfg, [`nodeName: ${h}`, `datastore: { type: file, path: ${resFile}, debounce: 50ms }`, `control: { socket: ${sock(h)} }`,
      'metrics: { listen: "" }', `bgp: { shutdownDrainSeconds: ${drainSeconds} }`, 'log: { level: info }', ''].join('\n'));
    const p = nsSpawn(ns[h], 'node', [SKEIND, '--config', cfg]);
    p.stdout!.on('data', (d: Buffer) => logs[h]!.push(...d.toString().split('\n').filter(Boolean)));
    p.stderr!.on('data', (d: Buffer) => logs[h]!.push(`stderr: ${d.toString()}`));
    procs.push(p);
    return p;
  };
  const ctl = async (h: string, ...args: string[]): Promise<Record<string, unknown>> => {
    const r = await runCommand('node', [SKEINCTL, '--socket', sock(h), ...args, '--json'], { timeoutMs: 40_000 });
    if (r.code !== 0) throw new Error(`skeinctl ${args.join(' ')} on ${h}: exit ${r.code}: ${r.err}`);
    return JSON.parse(r.out) as Record<string, unknown>;
  };
  /** h3's kernel route to the block: its gateways */
  const via = (): string[] => {
    const r = (JSON.parse(nsExec(ns.h3, 'ip', ['-j', 'route', 'show', '10.65.5.0/26'])) as { gateway?: string; nexthops?: { gateway: string }[] }[])[0];
    return r === undefined ? [] : r.gateway !== undefined ? [r.gateway] : (r.nexthops ?? []).map((n) => n.gateway).sort();
  };
  const h3Established = async (): Promise<string[]> =>
    ((await ctl('h3', 'status').catch(() => ({ peers: [] }))).peers as { address: string; state: string }[]).filter((p) => p.state === 'Established').map((p) => p.address).sort();
  const h1 = start('h1', 3);
  start('h2', 0);
  start('h3', 0);
  try {
    await until(async () => (await h3Established()).length === 2, 'h3 has both sessions', 60_000, 300);
    await until(async () => ((await ctl('h3', 'routes', '10.65.5.0/26')).routes as { paths: unknown[] }[])[0]?.paths.length === 2, 'h3 has both paths to the block', 20_000, 200);
    await until(() => via().includes('10.44.1.1'), 'h3\'s kernel uses h1 (alone or with h2)', 20_000, 100);
    t.comment(`before: h3's kernel routes the block via ${via().join(', ')}`);

    let movedWhileUp: boolean | undefined;
    let polls = 0;
    let watching = true;
    const watcher = (async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the test while this loop awaits
      while (watching && polls < 2000) {
        polls++;
        const v = via();
        if (movedWhileUp === undefined && v.length === 1 && v[0] === '10.44.2.2') movedWhileUp = (await h3Established()).includes('10.44.1.1');
        await sleep(50);
      }
    })();
    const ping = nsSpawn(ns.h3, 'ping', ['-n', '-I', '10.44.0.3', '-i', '0.05', '-c', '600', '-w', '60', '-W', '1', '10.65.5.1']);
    let out = '';
    ping.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
    const pingDone = new Promise<void>((r) => ping.once('exit', () => r()));
    await sleep(1000);
    const exited = new Promise<number | null>((r) => h1.once('exit', (code) => r(code)));
    h1.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(30_000).then(() => 'timeout' as const)]);
    nsExec(ns.h1, 'ip', ['addr', 'del', '10.65.5.1/32', 'dev', 'lo']); // the host leaves
    await sleep(1500);
    ping.kill('SIGINT');
    await pingDone;
    watching = false;
    await watcher;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    const sent = Number(m?.[1] ?? 0), received = Number(m?.[2] ?? 0);
    t.equal(code, 0, 'h1 exits 0 after the drain');
    t.ok(sent >= 40, `pings sent throughout (${sent})`);
    t.equal(sent - received, 0, `no ping lost: ${received}/${sent} answered`);
    t.equal(movedWhileUp, true, 'h3\'s kernel used h2 alone while h1\'s session was still up (polled)');
    t.ok(polls >= 5, `h3's kernel route polled ${polls} times`);
    t.same(via(), ['10.44.2.2'], 'after: h2 only');
    await until(async () => !(await h3Established()).includes('10.44.1.1'), 'h3 sees h1 gone', 10_000, 100);
    // (the INFO column has moved on to h3's reconnect attempts by now: the log keeps the NOTIFICATION)
    t.ok(logs.h3!.some((l) => /Administrative Shutdown/i.test(l) && /RFC 8326/.test(l)), 'h3 logged Cease / Administrative Shutdown with the RFC 8203 text');
  } catch (e) {
    t.comment(`h1:\n${logs.h1!.slice(-25).join('\n')}\nh3:\n${logs.h3!.slice(-25).join('\n')}`);
    throw e;
  }
});
