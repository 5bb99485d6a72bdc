// monitoring/: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`); the
// Grafana dashboard conforms to Grafana's own schema (@grafana/schema's generated types, test/helpers/grafana-schema.ts)
// and is well-formed (unique panel ids, a target per panel); and every metric named in a dashboard query or an alert
// expression is one a running skeind serves on /metrics (an in-process Daemon scraped over HTTP, no root). A renamed
// metric breaks this test, not the operator's alerts.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadDaemonConfig } from '../../config/index.js';
import { Daemon } from '../../src/daemon.js';
import { requires } from '../helpers/env.js';
import { grafanaSchemaErrors } from '../helpers/grafana-schema.js';

const root = join(`${import.meta.dirname}/..`, '..');
const dir = join(root, 'monitoring');

let served: Promise<Set<string>> | undefined;
/**
 * Every metric name a running skeind serves on /metrics: the names of its `# TYPE` lines (a labelled metric with no
 * series yet has one too), with the _bucket/_sum/_count series of histograms and summaries and the _total of
 * counters. The daemon runs once, with a file datastore, no peers and the FIB off; it is stopped before the answer.
 */
function servedMetrics(): Promise<Set<string>> {
  served ??= (async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'ops-monitoring-'));
    const port = 39000 + (process.pid % 2000);
    const res = join(tmp, 'resources.yaml');
    writeFileSync(res, [
      'kind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: true }',
      'kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 64512, nodeToNodeMeshEnabled: false }',
      'kind: Node\nmetadata: { name: solo }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }',
    ].map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join(''));
    const file = join(tmp, 'skein.yaml');
    writeFileSync(file, `nodeName: solo\ndatastore: { type: file, path: ${res} }\nbgp: { listen: { address: 127.0.0.1, port: ${port} } }\nfib: { enabled: false }\ncontrol: { socket: ${join(tmp, 'solo.sock')} }\nmetrics: { listen: "127.0.0.1:${port + 1}" }\n`);
    const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => undefined, env: {} });
    try {
      await d.start();
      const r = await fetch(`http://127.0.0.1:${port + 1}/metrics`);
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      const names = new Set<string>();
      for (const l of (await r.text()).split('\n')) {
        const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(l);
        if (m === null) continue;
        const [, n, type] = m as unknown as [string, string, string];
        names.add(n);
        if (type === 'histogram') for (const x of ['_bucket', '_sum', '_count']) names.add(n + x);
        if (type === 'summary') for (const x of ['_sum', '_count']) names.add(n + x);
      }
      return names;
    } finally {
      await d.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  })();
  return served;
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
  const names = await servedMetrics();
  t.ok(names.has('skein_build_info') && names.size > 30, `the daemon served its metrics (${names.size} names)`);
  for (const a of alerts) for (const n of metricNames(a.expr)) t.ok(names.has(n), `${a.alert}: ${n} is exposed`);
  // Every alert has a unit test.
  const tests = readFileSync(join(dir, 'skein-alerts.test.yaml'), 'utf8');
  for (const a of alerts) t.match(tests, new RegExp(`alertname: ${a.alert}\\b`), `${a.alert} is unit-tested`);
});

t.test('Grafana dashboard: Grafana\'s schema, structure and metric names', async (t) => {
  const d = JSON.parse(readFileSync(join(dir, 'skein-dashboard.json'), 'utf8')) as {
    title: string; uid: string; schemaVersion: number; templating: { list: { name: string }[] };
    panels: { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets: { refId: string; expr: string }[] }[];
  };
  t.ok(d.title && d.uid, 'title and uid');
  t.ok(Number.isInteger(d.schemaVersion) && d.schemaVersion >= 30, 'a current schemaVersion');
  t.same(d.templating.list.map((v) => v.name), ['datasource', 'instance']);
  const ids = d.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const names = await servedMetrics();
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

t.test('Grafana dashboard: conforms to Grafana\'s schema (@grafana/schema), and the check can fail', async (t) => {
  const text = readFileSync(join(dir, 'skein-dashboard.json'), 'utf8');
  t.same(grafanaSchemaErrors(JSON.parse(text), root), [], 'no error against Dashboard, and each panel\'s Options and FieldConfig');
  // Each mistake below is one Grafana's schema forbids; each must be found.
  const broken: [string, (d: Record<string, any>) => void, RegExp][] = [ // eslint-disable-line @typescript-eslint/no-explicit-any -- editing parsed JSON
    ['a grid width as text', (d) => { d.panels[0].gridPos.w = 'wide'; }, /not assignable to type 'number'/],
    ['an unknown panel field', (d) => { d.panels[1].legendz = true; }, /'"legendz"' does not exist/],
    ['a tooltip mode outside the enumeration', (d) => { d.panels.find((p: { type: string }) => p.type === 'timeseries').options.tooltip.mode = 'many'; }, /"many"' is not assignable/],
    ['refresh as a number', (d) => { d.refresh = 30; }, /not assignable to type 'string'/],
    ['a panel without its required legend', (d) => { delete d.panels.find((p: { type: string }) => p.type === 'timeseries').options.legend; }, /legend/],
  ];
  for (const [what, edit, re] of broken) {
    const d = JSON.parse(text) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- editing parsed JSON
    edit(d);
    const errs = grafanaSchemaErrors(d, root);
    t.equal(errs.length, 1, `${what}: one error (${errs.join(' | ').slice(0, 300)})`);
    t.match(errs[0] ?? '', re, what);
  }
});

t.test('every metric a dashboard query or an alert names is served by a running skeind; a made-up one is not', async (t) => {
  const names = await servedMetrics();
  t.notOk(names.has('skein_bgp_session_up'), 'a name skeind does not serve is not in the set (the check can fail)');
  for (const n of ['skein_bgp_peer_up', 'skein_bgp_update_processing_seconds_bucket', 'skein_fib_persistent_failures']) t.ok(names.has(n), `${n} is served`);
});
