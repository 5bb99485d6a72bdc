// Prometheus conventions, checked with Prometheus's own tool: `promtool check metrics` on the real exposition (full
// and summary detail), skein_build_info, the per-peer up gauge with name/ASN/type labels, the flap counter and
// uptime, the series a peer costs at each detail level, and skein_bgp_update_processing_seconds observed by a real
// daemon that receives UPDATEs (an in-process Daemon and a loopback speaker, no root).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDaemonConfig, parseDaemonConfig } from '../../config/index.js';
import { Daemon, VERSION } from '../../src/daemon.js';
import { Metrics } from '../../src/metrics.js';
import { requires } from '../helpers/env.js';
import { loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';
import { until } from '../helpers/netns.js';

function promtoolCheck(text: string): { ok: boolean; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

/** A peer with everything a busy session sets. */
function busyPeer(m: Metrics, peer: string): void {
  m.peerLabels(peer, { name: `Mesh_${peer.replace(/\./g, '_')}`, asn: 64512, type: 'node-to-node mesh' });
  m.peerState(peer, 'Established');
  for (const f of ['ipv4-unicast', 'ipv6-unicast']) m.prefixes(peer, f, { received: 2, accepted: 2, advertised: 1 });
  m.gracefulRestart(peer, null, 0);
  for (const ty of ['OPEN', 'UPDATE', 'KEEPALIVE'] as const) {
    m.messageIn(peer, ty);
    m.messageOut(peer, ty);
  }
  m.notificationIn(peer, 6, 4);
}

const seriesOf = (body: string, peer: string): string[] => body.split('\n').filter((l) => !l.startsWith('#') && l.includes(`peer="${peer}"`));

t.test('promtool check metrics: the full exposition is clean, including Node\'s default collectors', async (t) => {
  if (!requires(t, { commands: ['promtool'] })) return;
  const m = new Metrics({ version: '1.2.3' });
  busyPeer(m, '192.0.2.1');
  m.updateProcessed(0.001);
  m.fibFailure('EPERM');
  const { body } = await m.scrape();
  const r = promtoolCheck(body);
  t.ok(r.ok, `promtool check metrics: ${r.out || 'clean'}`);
  t.equal(r.out, '', 'no lint findings');
  t.notMatch(body, /^# TYPE \S+_total gauge$/m, 'no gauge ends in _total');
  t.match(body, /^# TYPE skein_nodejs_active_handles gauge$/m, 'the by-type default gauges stay');
  t.match(body, new RegExp(`^skein_build_info\\{version="1\\.2\\.3",nodejs_version="${process.versions.node.replace(/\./g, '\\.')}"\\} 1$`, 'm'));
  // The check can fail: a gauge named like a counter is reported.
  t.notOk(promtoolCheck(`${body}# HELP skein_bad_total x\n# TYPE skein_bad_total gauge\nskein_bad_total 1\n`).ok, 'promtool does reject a *_total gauge');
});

t.test('peer up gauge, flaps, uptime; removePeer takes them away', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  const t0 = Date.now() - 5000;
  m.peerLabels('192.0.2.1', { name: 'tor-a', asn: 65001, type: 'global' });
  m.peerState('192.0.2.1', 'Active', t0);
  let body = (await m.scrape()).body;
  t.match(body, /^skein_bgp_peer_up\{peer="192\.0\.2\.1",name="tor-a",asn="65001",type="global"\} 0$/m);
  t.match(body, /^skein_bgp_peer_flaps_total\{peer="192\.0\.2\.1"\} 0$/m, 'the flap series exists from the start');
  t.notMatch(body, /skein_bgp_peer_uptime_seconds\{/, 'no uptime while not Established');
  m.peerState('192.0.2.1', 'Established', t0);
  body = (await m.scrape()).body;
  t.match(body, /^skein_bgp_peer_up\{[^}]*name="tor-a"[^}]*\} 1$/m);
  const up = Number(/^skein_bgp_peer_uptime_seconds\{peer="192\.0\.2\.1"\} (\S+)$/m.exec(body)?.[1]);
  t.ok(up >= 5 && up < 600, `uptime counts from Established (${up} s)`);
  m.peerState('192.0.2.1', 'Idle');
  m.peerState('192.0.2.1', 'Active');
  m.peerState('192.0.2.1', 'Established');
  m.peerState('192.0.2.1', 'Idle');
  body = (await m.scrape()).body;
  t.match(body, /^skein_bgp_peer_flaps_total\{peer="192\.0\.2\.1"\} 2$/m, 'two departures from Established, not four transitions');
  // A rename replaces the series instead of leaving the old one behind.
  m.peerLabels('192.0.2.1', { name: 'tor-b', asn: 65001, type: 'global' });
  body = (await m.scrape()).body;
  t.notMatch(body, /name="tor-a"/);
  t.match(body, /name="tor-b"/);
  m.removePeer('192.0.2.1');
  t.notMatch((await m.scrape()).body, /192\.0\.2\.1/, 'nothing of the removed peer is left');
});

t.test('peerDetail: series per peer, full vs summary, and summary sums over peers', async (t) => {
  const full = new Metrics({ defaultMetrics: false });
  const summary = new Metrics({ defaultMetrics: false, peerDetail: 'summary' });
  for (const m of [full, summary]) for (const p of ['192.0.2.1', '192.0.2.2']) busyPeer(m, p);
  summary.peerState('192.0.2.2', 'Active');
  const fb = (await full.scrape()).body;
  const sb = (await summary.scrape()).body;
  const nFull = seriesOf(fb, '192.0.2.1').length;
  const nSummary = seriesOf(sb, '192.0.2.1').length;
  t.comment(`series per peer: full ${nFull}, summary ${nSummary} (a 500-node mesh: ${499 * nFull} vs ${499 * nSummary} per node)`);
  t.ok(nFull >= 20 && nFull <= 30, `full: about 28 series per peer (${nFull}), as config/README.md says`);
  t.equal(nSummary, 3, 'summary: up, flaps, uptime');
  t.same(seriesOf(sb, '192.0.2.2').map((l) => l.split('{')[0]).sort(), ['skein_bgp_peer_flaps_total', 'skein_bgp_peer_up'], 'a peer that is down: no uptime');
  t.match(sb, /^skein_bgp_prefixes_received\{family="ipv4-unicast"\} 4$/m, 'prefix counts summed over peers');
  t.match(sb, /^skein_bgp_peer_state\{state="Established"\} 1$/m, 'peers per state');
  t.match(sb, /^skein_bgp_peer_state\{state="Active"\} 1$/m);
  t.match(sb, /^skein_bgp_messages_received_total\{type="UPDATE"\} 2$/m, 'messages counted over peers');
  t.notMatch(sb, /skein_bgp_peer_established_since_seconds/);
  summary.removePeer('192.0.2.2');
  const after = (await summary.scrape()).body;
  t.match(after, /^skein_bgp_prefixes_received\{family="ipv4-unicast"\} 2$/m, 'a removed peer no longer counts in the sums');
  t.notMatch(after, /192\.0\.2\.2/);
  if (requires(t, { commands: ['promtool'] })) {
    const r = promtoolCheck(sb);
    t.ok(r.ok && r.out === '', `summary passes promtool: ${r.out || 'clean'}`);
  }
  // skein.yaml
  t.equal(parseDaemonConfig('nodeName: a\n', '/x', {}).metrics.peerDetail, 'full');
  t.equal(parseDaemonConfig('nodeName: a\nmetrics: { peerDetail: summary }\n', '/x', {}).metrics.peerDetail, 'summary');
  t.throws(() => parseDaemonConfig('nodeName: a\nmetrics: { peerDetail: some }\n', '/x', {}), /metrics\.peerDetail/);
});

t.test('a real daemon: UPDATE processing is observed, the up gauge carries the BGPPeer, a flap is counted', async (t) => {
  const addr = loopbackNet();
  const port = 36000 + (process.pid % 2000);
  const dir = mkdtempSync(join(tmpdir(), 'ops-metrics-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const res = join(dir, 'resources.yaml');
  writeFileSync(res, [
    'kind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: true }',
    'kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 64512, nodeToNodeMeshEnabled: false }',
    'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.70.0.0/16, blockSize: 26 }',
    `kind: Node\nmetadata: { name: solo }\nspec: { bgp: { ipv4Address: ${addr(1)}/8 } }`,
    `kind: BGPPeer\nmetadata: { name: tor }\nspec: { peerIP: "${addr(2)}:${port}", asNumber: 65001 }`,
  ].map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join(''));
  const file = join(dir, 'skein.yaml');
  writeFileSync(file, `nodeName: solo\ndatastore: { type: file, path: ${res} }\nbgp: { listen: { address: ${addr(1)}, port: ${port} } }\nfib: { enabled: false }\ncontrol: { socket: ${join(dir, 'solo.sock')} }\nmetrics: { listen: "" }\n`);
  const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => undefined, env: {} });
  t.teardown(() => d.stop());
  await d.start();
  const tor = loopbackSpeaker(addr, port, 2, 65001, [{ address: addr(1), asn: 64512, port }]);
  t.teardown(() => tor.stop());
  await tor.start();
  for (let i = 0; i < 5; i++) tor.originate(`10.71.${i}.0/24`);
  await until(() => d.routesJson().routes.length >= 5, 'the daemon learned the routes', 20_000, 50);
  const scrape = async (): Promise<string> => (await d.metrics.scrape()).body;
  let body = await scrape();
  const count = Number(/^skein_bgp_update_processing_seconds_count (\d+)$/m.exec(body)?.[1]);
  t.ok(count >= 1, `UPDATEs observed: ${count}`);
  const peer = addr(2).replace(/\./g, '\\.');
  t.match(body, new RegExp(`^skein_bgp_peer_up\\{peer="${peer}",name="Global_[^"]+",asn="65001",type="global"\\} 1$`, 'm'));
  t.match(body, new RegExp(`^skein_build_info\\{version="${VERSION.replace(/\./g, '\\.')}"`, 'm'));
  // The session drops: up 0 and one flap.
  await tor.stop();
  await until(async () => new RegExp(`^skein_bgp_peer_up\\{peer="${peer}"[^}]*\\} 0$`, 'm').test(await scrape()), 'up 0', 20_000, 50);
  body = await scrape();
  t.match(body, new RegExp(`^skein_bgp_peer_flaps_total\\{peer="${peer}"\\} 1$`, 'm'));
  if (requires(t, { commands: ['promtool'] })) {
    const r = promtoolCheck(body);
    t.ok(r.ok && r.out === '', `a live daemon's exposition passes promtool: ${r.out || 'clean'}`);
  }
});
