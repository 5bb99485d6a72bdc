// monitoring/: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`), and the
// Grafana dashboard is well-formed (unique panel ids, a target per panel, a grid position) and names only metrics
// skein really exposes — as are the alert expressions. A renamed metric breaks this test, not the operator's alerts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Metrics } from '../src/metrics.js';
import { requires } from './helpers/env.js';

const dir = join(import.meta.dirname, '..', 'monitoring');

/** Every metric name skein exposes (histograms with their _bucket/_sum/_count series). */
async function exposed(): Promise<Set<string>> {
  const m = new Metrics({ version: 'test' });
  m.peerLabels('192.0.2.1', { name: 'x', asn: 1, type: 'global' });
  m.peerState('192.0.2.1', 'Established');
  m.prefixes('192.0.2.1', 'ipv4-unicast', { received: 1, accepted: 1, advertised: 1 });
  m.prefixLimit('192.0.2.1', 'ipv4-unicast', 10);
  m.fibFailure('EPERM');
  const names = new Set<string>();
  for (const l of (await m.scrape()).body.split('\n')) {
    const n = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(l)?.[1];
    if (n && !l.startsWith('#')) names.add(n);
  }
  return names;
}

const metricNames = (expr: string): string[] =>
  [...expr.replace(/"[^"]*"/g, '""').replace(/\{[^}]*\}/g, '').matchAll(/\bskein_[a-z0-9_]+/g)].map((x) => x[0]);

t.test('alert rules: promtool check rules and promtool test rules', async (t) => {
  if (!requires(t, { commands: ['promtool'] })) return;
  const check = spawnSync('promtool', ['check', 'rules', 'skein-alerts.yaml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  t.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  t.match(check.stdout, /SUCCESS: 6 rules found/);
  const test = spawnSync('promtool', ['test', 'rules', 'skein-alerts.test.yaml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  t.equal(test.status, 0, `${test.stdout}${test.stderr}`);
  // The unit tests can fail: a wrong expectation is reported.
  const broken = readFileSync(join(dir, 'skein-alerts.test.yaml'), 'utf8').replace('description: "6 session losses in 15 minutes."', 'description: "7 session losses in 15 minutes."');
  const bad = spawnSync('sh', ['-c', `cd "$1" && cat > "$2" && promtool test rules "$2"; rc=$?; rm -f "$2"; exit $rc`, 'sh', dir, `ops-broken-${process.pid}.test.yaml`], { input: broken, encoding: 'utf8', timeout: 60_000 });
  t.not(bad.status, 0, 'a wrong expectation fails promtool test rules');
});

t.test('alert rules: every alert named in the issue exists and uses exposed metrics', async (t) => {
  const rules = parse(readFileSync(join(dir, 'skein-alerts.yaml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  const alerts = rules.groups.flatMap((g) => g.rules);
  t.same(alerts.map((a) => a.alert).sort(), ['SkeinBGPSessionDown', 'SkeinBGPSessionFlapping', 'SkeinDatastoreNotSynced', 'SkeinFIBFailures', 'SkeinMaxPrefixNear', 'SkeinNotReady']);
  const names = await exposed();
  for (const a of alerts) for (const n of metricNames(a.expr)) t.ok(names.has(n), `${a.alert}: ${n} is exposed`);
  // Every alert has a unit test.
  const tests = readFileSync(join(dir, 'skein-alerts.test.yaml'), 'utf8');
  for (const a of alerts) t.match(tests, new RegExp(`alertname: ${a.alert}\\b`), `${a.alert} is unit-tested`);
});

t.test('Grafana dashboard: structure and metric names', async (t) => {
  const d = JSON.parse(readFileSync(join(dir, 'skein-dashboard.json'), 'utf8')) as {
    title: string; uid: string; schemaVersion: number; templating: { list: { name: string }[] };
    panels: { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets: { refId: string; expr: string }[] }[];
  };
  t.ok(d.title && d.uid, 'title and uid');
  t.ok(Number.isInteger(d.schemaVersion) && d.schemaVersion >= 30, 'a current schemaVersion');
  t.same(d.templating.list.map((v) => v.name), ['datasource', 'instance']);
  const ids = d.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const names = await exposed();
  const used = new Set<string>();
  for (const p of d.panels) {
    t.ok(['timeseries', 'table', 'stat'].includes(p.type), `${p.title}: a known panel type`);
    t.ok(p.gridPos.w > 0 && p.gridPos.w <= 24 && p.gridPos.h > 0, `${p.title}: grid position`);
    t.ok(p.targets.length > 0, `${p.title}: has a query`);
    t.equal(new Set(p.targets.map((x) => x.refId)).size, p.targets.length, `${p.title}: refIds unique`);
    for (const x of p.targets) {
      t.match(x.expr, /instance=~"\$instance"/, `${p.title}: filtered by $instance`);
      for (const n of metricNames(x.expr)) {
        used.add(n);
        t.ok(names.has(n), `${p.title}: ${n} is exposed`);
      }
    }
  }
  for (const n of ['skein_bgp_peer_up', 'skein_bgp_peer_flaps_total', 'skein_fib_persistent_failures', 'skein_datastore_synced']) t.ok(used.has(n), `the dashboard shows ${n}`);
});
