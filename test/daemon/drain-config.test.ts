// RFC 8326 graceful shutdown, the operator's side (src/daemon/drain.ts): skein.yaml's bgp.shutdownDrainSeconds is
// validated and applied on reload; `skeinctl drain` makes both mesh peers rank this node's routes lowest (the
// community and LOCAL_PREF 0 reach every peer at once, without other traffic to flush them), `skeinctl undrain`
// takes it back without resetting a session; a stop with the key set drains, then ends the sessions with Cease /
// Administrative Shutdown so peers drop the routes at once, while a stop without it still leaves them to graceful
// restart. Three daemons in this process on 127.0.0.1-3, FIB off (no root needed).
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDaemonConfig, parseDaemonConfig } from '../../config/index.js';
import { Daemon } from '../../src/daemon.js';
import { runCtlCommand, type CtlIo } from '../../src/ctl/index.js';
import type { DrainJson } from '../../src/control/types.js';
import { until } from '../helpers/netns.js';

t.test('bgp.shutdownDrainSeconds: whole seconds or a duration, 0..3600; anything else named', (t) => {
  const cfg = (v: string): number => parseDaemonConfig(`bgp: { shutdownDrainSeconds: ${v} }\n`, '/x/skein.yaml', {}).bgp.shutdownDrainSeconds;
  t.equal(parseDaemonConfig('nodeName: a\n', '/x/skein.yaml', {}).bgp.shutdownDrainSeconds, 0, 'default 0: a stop does not drain');
  t.equal(cfg('30'), 30);
  t.equal(cfg('"45"'), 45, 'a number in a string');
  t.equal(cfg('1m'), 60, 'a duration');
  t.equal(cfg('0'), 0);
  t.equal(cfg('3600'), 3600, 'the upper bound');
  for (const bad of ['-1', '1.5', '3601', '2h', 'true', 'abc', '1500ms', '[30]']) {
    t.throws(() => cfg(bad), /skein\.yaml:1:\d+: bgp\.shutdownDrainSeconds: .*0 to 3600|skein\.yaml:1:\d+: bgp\.shutdownDrainSeconds: /, `${bad} rejected, naming the key`);
  }
  t.throws(() => parseDaemonConfig('bgp: { shutdownDrainSecond: 30 }\n', '/x/skein.yaml', {}), /did you mean "shutdownDrainSeconds"/, 'a typo gets a suggestion');
  t.end();
});

interface Node { name: string; ip: string; block: string }
const NODES: Node[] = [
  { name: 'node-1', ip: '127.0.0.1', block: '10.65.0.0/26' },
  { name: 'node-2', ip: '127.0.0.2', block: '10.65.0.64/26' },
  { name: 'node-3', ip: '127.0.0.3', block: '10.65.0.128/26' },
];

function clusterYaml(port: number): string {
  const docs = [
    'kind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: true }',
    `kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 64512, listenPort: ${port}, bindMode: NodeIP }`,
    'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.65.0.0/16, blockSize: 26 }',
    ...NODES.flatMap((n) => [
      `kind: Node\nmetadata: { name: ${n.name} }\nspec: { bgp: { ipv4Address: ${n.ip}/8 } }`,
      `kind: BlockAffinity\nmetadata: { name: ${n.name}-${n.block.replace(/[./]/g, '-')} }\nspec: { node: ${n.name}, cidr: ${n.block}, state: confirmed, deleted: "false" }`,
    ]),
  ];
  return docs.map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join('');
}

const GSHUT = '65535:0';

t.test('three daemons: drain and undrain over skeinctl, the key applied on reload, a draining stop ends sessions with Cease', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-drain-cfg-'));
  mkdirSync(join(dir, 'run'));
  const port = 33000 + (process.pid % 2000);
  const res = join(dir, 'resources.yaml');
  writeFileSync(`${res}.tmp`, clusterYaml(port));
  renameSync(`${res}.tmp`, res);
  const daemons: Daemon[] = [];
  const logs: string[][] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.stop('test over');
    rmSync(dir, { recursive: true, force: true });
  });
  const yaml = (n: Node, extra: string[] = []): string => `${[
    `nodeName: ${n.name}`, `datastore: { type: file, path: ${res}, debounce: 20ms }`, 'fib: { enabled: false }',
    `control: { socket: ${join(dir, 'run', `${n.name}.sock`)} }`, 'metrics: { listen: "" }', 'log: { level: info }',
    `stateDirectory: ${join(dir, n.name)}`, ...extra,
  ].join('\n')}\n`;
  for (const n of NODES) {
    mkdirSync(join(dir, n.name));
    const file = join(dir, `${n.name}.yaml`);
    writeFileSync(file, yaml(n));
    const lines: string[] = [];
    logs.push(lines);
    const d = new Daemon(loadDaemonConfig(file, {}), { logSink: (l) => lines.push(l), env: {} });
    daemons.push(d);
    await d.start();
  }
  const [d1, d2, d3] = daemons as [Daemon, Daemon, Daemon];
  const ctl = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const io: CtlIo = { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env: {}, now: () => new Date() };
    const code = await runCtlCommand(['--socket', join(dir, 'run', 'node-1.sock'), ...argv], io);
    return { code, out, err };
  };
  /** node-1's block as `viewer` has it: the path from node-1 */
  const seen = (viewer: Daemon): { localPref: number; communities: string[] } | undefined => {
    const r = viewer.routesJson(NODES[0]!.block).routes[0];
    const p = r?.paths.find((x) => x.from === '127.0.0.1');
    return p ? { localPref: p.localPref, communities: p.communities } : undefined;
  };
  const conn = (d: Daemon, peer: string): number | null =>
    (d.speaker!.peersJson().peers.find((p) => p.address === peer) as { connection: number | null } | undefined)?.connection ?? null;

  try {
    for (const d of daemons) {
      await until(() => d.peers().length === 2 && d.peers().every((p) => p.state === 'Established'), `${d.cfg.nodeName}: both mesh peers Established`, 30_000, 50);
    }
    await until(() => seen(d2) !== undefined && seen(d3) !== undefined, 'node-2 and node-3 learn node-1\'s block', 10_000, 50);
    // Calico's mesh routes carry LOCAL_PREF 2^31-1 minus the normal route priority (confd's SetMetricForBGPRoutes)
    const normal = seen(d2)!.localPref;
    t.ok(normal > 0, `before: an ordinary path (LOCAL_PREF ${normal})`);
    t.same(seen(d2)?.communities, [], 'without the community');
    t.equal(d1.status().drain?.state, 'off');
    t.equal(d1.status().drain?.shutdownDrainSeconds, 0);
    const conns = { c2: conn(d1, '127.0.0.2'), c3: conn(d1, '127.0.0.3'), on2: conn(d2, '127.0.0.1'), on3: conn(d3, '127.0.0.1') };

    // The key on reload: applied live, not reported as needing a restart, sessions kept.
    writeFileSync(d1.cfg.file, yaml(NODES[0]!, ['bgp: { shutdownDrainSeconds: 2 }']));
    const rr = await d1.reload();
    t.ok(rr.changes?.includes('bgp.shutdownDrainSeconds: 0 -> 2'), `reload reports the change: ${JSON.stringify(rr.changes)}`);
    t.notOk(rr.changes?.some((c) => c.startsWith('bgp changed')), 'not reported as needing a restart');
    t.equal(d1.cfg.bgp.shutdownDrainSeconds, 2, 'in force');
    t.equal(d1.status().drain?.shutdownDrainSeconds, 2, 'shown in status');
    // must NOT: another bgp change is still one for a restart
    writeFileSync(d1.cfg.file, yaml(NODES[0]!, ['bgp: { shutdownDrainSeconds: 2, keepRefused: 5 }']));
    const rr2 = await d1.reload();
    t.ok(rr2.changes?.includes('bgp changed: needs a restart of skeind to take effect'), 'bgp.keepRefused still needs a restart');
    t.equal(d1.cfg.bgp.keepRefused, 10_000, 'and is not taken');
    writeFileSync(d1.cfg.file, yaml(NODES[0]!, ['bgp: { shutdownDrainSeconds: 2 }']));
    await d1.reload();

    // skeinctl drain: both peers see the community and LOCAL_PREF 0 (iBGP), nothing else had to happen first.
    const dr = await ctl('drain', '--json');
    t.equal(dr.code, 0, dr.err);
    const dj = JSON.parse(dr.out) as DrainJson;
    t.equal(dj.state, 'draining');
    t.equal(dj.seconds, 2, 'waits bgp.shutdownDrainSeconds');
    for (const [name, d] of [['node-2', d2], ['node-3', d3]] as const) {
      await until(() => seen(d)?.communities.includes(GSHUT) === true, `${name} sees GRACEFUL_SHUTDOWN on node-1's block`, 10_000, 20);
      t.same(seen(d), { localPref: 0, communities: [GSHUT] }, `${name}: LOCAL_PREF 0 and the community`);
    }
    t.same(d2.routesJson(NODES[2]!.block).routes[0]?.best?.communities, [], 'node-3\'s route on node-2 is not marked');
    t.same(d1.routesJson(NODES[1]!.block).routes[0]?.best?.communities, [], 'what node-1 learns is not marked');
    const text = await ctl('status');
    t.match(text.out, /Graceful shutdown:\s+draining/, `skeinctl status shows the drain:\n${text.out}`);
    const gauge = await d1.metrics.registry.getSingleMetricAsString('skein_drain_state');
    t.match(gauge, /skein_drain_state\{state="draining"\} 1/, '/metrics: the gauge');
    t.match(gauge, /skein_drain_state\{state="off"\} 0/);
    const waited = await ctl('drain', '--wait', '--json');
    t.equal((JSON.parse(waited.out) as DrainJson).state, 'drained', 'drain --wait returns once drained');
    t.match((await ctl('status')).out, /Graceful shutdown:\s+drained/);
    t.equal((await ctl('drain', '--seconds', 'x')).code, 2, 'a bad --seconds is a usage error');
    t.equal((await ctl('status', '--wait')).code, 2, '--wait only with drain');

    // undrain: back to the ordinary path on both, on the same TCP connections.
    const ud = await ctl('undrain', '--json');
    t.equal((JSON.parse(ud.out) as DrainJson).state, 'off');
    for (const [name, d] of [['node-2', d2], ['node-3', d3]] as const) {
      await until(() => seen(d)?.communities.length === 0, `${name}: the community gone`, 10_000, 20);
      t.same(seen(d), { localPref: normal, communities: [] }, `${name}: LOCAL_PREF ${normal} again`);
    }
    t.same({ c2: conn(d1, '127.0.0.2'), c3: conn(d1, '127.0.0.3'), on2: conn(d2, '127.0.0.1'), on3: conn(d3, '127.0.0.1') }, conns, 'no session was reset by drain or undrain');
    t.match((await ctl('undrain')).out, /Graceful shutdown:\s+off/, 'undrain again: nothing to undo');

    // drain.json follows skeinctl drain and undrain (src/daemon/drain.ts): after the undrain above, none is left
    t.notOk(existsSync(join(dir, 'node-1', 'drain.json')), 'undrain removed node-1\'s drain.json');

    // A stop of node-3 with the key set while systemd is restarting it (src/daemon/systemd-job.ts finds a restart
    // job): a restart, no drain, peers keep its routes under graceful restart.
    writeFileSync(d3.cfg.file, yaml(NODES[2]!, ['bgp: { shutdownDrainSeconds: 30 }']));
    await d3.reload();
    t.equal(d3.cfg.bgp.shutdownDrainSeconds, 30);
    d3.stopKind = () => Promise.resolve('restart');
    const t3 = Date.now();
    await d3.stop('test: systemctl restart', { drain: true });
    t.ok(Date.now() - t3 < 25_000, 'the stop did not wait the 30 s drain');
    t.equal(d3.status().drain?.state, 'off', 'node-3 never drained');
    t.ok(logs[2]!.some((l) => /systemd is restarting skeind, so it does not drain/.test(l)), 'and said why');
    await until(() => d2.peers().find((p) => p.address === '127.0.0.3')?.state !== 'Established', 'node-2 sees node-3 gone', 10_000, 50);
    t.equal(d2.routesJson(NODES[2]!.block).routes.length, 1, 'node-3\'s block kept (stale) by node-2: a stop without the key is a restart');
    t.notMatch(d2.peers().find((p) => p.address === '127.0.0.3')?.info ?? '', /NOTIFICATION/, 'closed without a NOTIFICATION');
    t.same(d2.routesJson(NODES[2]!.block).routes[0]?.best?.communities, [], 'node-3\'s routes were never announced drained');

    // A stop with the key (node-1): drains first (node-2 sees the community while the session is up), then Cease.
    let sawDrain = false;
    const poll = setInterval(() => {
      if (seen(d2)?.communities.includes(GSHUT) === true && d2.peers().find((p) => p.address === '127.0.0.1')?.state === 'Established') sawDrain = true;
    }, 20);
    const stopped = d1.stop('test: leaving', { drain: true });
    await until(() => d1.status().drain?.state === 'draining' && d1.status().drain?.stopping === true, 'node-1 drains before it stops', 5_000, 10);
    t.equal((await ctl('undrain')).code, 1, 'undrain refused while the stop drains');
    await stopped;
    clearInterval(poll);
    t.ok(sawDrain, 'node-2 saw the community while the session was still up');
    await until(() => d2.peers().find((p) => p.address === '127.0.0.1')?.state !== 'Established', 'node-2 sees node-1 gone', 10_000, 50);
    t.match(d2.peers().find((p) => p.address === '127.0.0.1')?.info ?? '', /Administrative Shutdown|graceful shutdown \(RFC 8326\)/i, 'Cease / Administrative Shutdown with the RFC 8203 message');
    await until(() => d2.routesJson(NODES[0]!.block).routes.length === 0, 'node-1\'s block withdrawn at once on node-2 (no graceful-restart retention)', 10_000, 50);
  } catch (e) {
    for (const l of logs) t.comment(l.slice(-25).join(''));
    throw e;
  }
});
