// The daemon's observability shell: the JSON-lines logger (levels, child fields, redaction), the Prometheus
// metrics (series appear, peers' series go away), the HTTP endpoints on a real loopback server (/metrics,
// /livez, /readyz, 404, 405), and the systemd unit (required directives; `systemd-analyze verify` when present).
import t from 'tap';
import fc from 'fast-check';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { Logger } from '../../src/log.js';
import { Secret, createLogger, isSecretFieldName, parseLogLevel } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LoopMonitor, ReadinessGate, parseListen, startHttpServer } from '../../src/http.js';
import type { ReadinessReport } from '../../src/http.js';
import { requires } from '../helpers/env.js';

const root = join(`${import.meta.dirname}/..`, '..');

function collect(level: 'debug' | 'info' | 'warn' | 'error' = 'info'): { log: Logger; lines: string[]; parsed: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = createLogger({ level, sink: (l) => lines.push(l), now: () => new Date('2026-11-21T03:00:00.000Z') });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

t.test('logger: one JSON object per line, bound fields, levels', async (t) => {
  const { log, lines, parsed } = collect('info');
  const peer = log.child({ component: 'bgp', peer: '192.0.2.11' });
  peer.info('session established', { holdTime: 90 });
  peer.child({ prefix: '10.65.1.0/26' }).warn('route rejected', { reason: 'AS loop' });
  log.debug('invisible at info');
  t.equal(lines.length, 2);
  t.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')), 'each entry is exactly one line');
  t.same(parsed()[0], { ts: '2026-11-21T03:00:00.000Z', level: 'info', msg: 'session established', component: 'bgp', peer: '192.0.2.11', holdTime: 90 });
  t.same(Object.keys(parsed()[1]!), ['ts', 'level', 'msg', 'component', 'peer', 'prefix', 'reason'], 'fixed head, then bound, then call fields');

  // Children share the level: raising it from a child silences the parent too.
  peer.setLevel('error');
  log.warn('now hidden');
  t.equal(lines.length, 2);
  t.equal(log.level, 'error');
  log.setLevel('debug');
  peer.debug('now shown');
  t.equal(parsed()[2]?.level, 'debug');
  t.ok(log.isEnabled('debug'));

  // A call field cannot forge the line's own keys.
  log.info('x', { level: 'error', msg: 'forged', ts: 'then' });
  const forged = parsed()[3]!;
  t.equal(forged.level, 'info');
  t.equal(forged.msg, 'x');
  t.equal(forged._level, 'error');
  t.equal(forged._ts, 'then');
});

t.test('logger: a disabled level does no work', async (t) => {
  const { log, lines } = collect('info');
  let touched = 0;
  const fields = { get expensive(): string { touched++; return 'v'; } };
  log.debug('skipped', fields);
  t.equal(touched, 0, 'fields of a disabled call are never read');
  t.equal(lines.length, 0);
  log.info('written', fields);
  t.equal(touched, 1);
});

t.test('logger: level names, including Calico logSeverityScreen', async (t) => {
  const cases: [string, string | undefined][] = [
    ['Debug', 'debug'], ['Trace', 'debug'], ['Info', 'info'], ['INFO', 'info'], ['Warning', 'warn'], ['warn', 'warn'],
    ['Error', 'error'], ['Fatal', 'error'], ['Panic', 'error'], [' info ', 'info'], ['None', undefined], ['verbose', undefined],
  ];
  for (const [name, want] of cases) t.equal(parseLogLevel(name), want, name);
});

t.test('logger: secrets never appear', async (t) => {
  const { log, lines, parsed } = collect('debug');
  const md5 = new Secret('hunter2-md5');
  log.info('peer configured', {
    peer: { address: '192.0.2.11', password: 'hunter2-plain', auth: { TOKEN: 'tok-123', md5 } },
    tls: { ca: '/etc/ca.pem', key: Buffer.from('PRIVATE-KEY-BYTES'), clientKey: 'pk-2' },
    nodeMeshPassword: 'mesh-pw', etcd_token: 'etcd-tok', apiKEY: 'api-1',
    list: [{ secret: 'in-array' }, md5],
    keepalive: 30, keyCount: 4, monkey: 'banana',
    direct: md5,
  });
  log.child({ password: 'bound-pw', peer: '192.0.2.12' }).info('child with a bound secret');
  const all = lines.join('');
  for (const s of ['hunter2', 'tok-123', 'PRIVATE-KEY', Buffer.from('PRIVATE-KEY-BYTES').toString('hex'), 'pk-2', 'mesh-pw', 'etcd-tok', 'api-1', 'in-array', 'bound-pw']) {
    t.notOk(all.includes(s), `"${s}" is not logged`);
  }
  const line = parsed()[0]!;
  t.same(line.peer, { address: '192.0.2.11', password: '[redacted]', auth: { TOKEN: '[redacted]', md5: '[redacted]' } });
  t.equal(line.direct, '[redacted]');
  t.equal(line.keepalive, 30, 'a field that merely starts like a secret name is kept');
  t.equal(line.keyCount, 4);
  t.equal(line.monkey, 'banana');
  t.equal((line.tls as Record<string, unknown>).ca, '/etc/ca.pem');
  t.equal(parsed()[1]?.password, '[redacted]');

  // The Secret wrapper itself, wherever it ends up.
  t.equal(`${md5}`, '[redacted]');
  t.equal(JSON.stringify({ md5 }), '{"md5":"[redacted]"}');
  t.equal(inspect({ md5 }), '{ md5: [redacted] }');
  t.equal(md5.reveal(), 'hunter2-md5', 'the one place that needs it can still read it');

  for (const [name, secret] of [['password', true], ['PassWord', true], ['tls_key', true], ['privateKey', true], ['authToken', true],
    ['authorization', true], ['keepalive', false], ['keyspace', false], ['turkey', false], ['tokens_seen', false]] as const) {
    t.equal(isSecretFieldName(name), secret, name);
  }
});

t.test('logger: property: a value under a secret name never appears, at any depth', async (t) => {
  const secretKey = fc.constantFrom('password', 'Password', 'nodeMeshPassword', 'key', 'tls_key', 'secret', 'token', 'authToken');
  const plainKey = fc.constantFrom('peer', 'prefix', 'info', 'list', 'x', 'nested');
  // Random JSON-ish trees; the secret is placed under a secret-named key at a random path.
  const tree = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, fc.string(), fc.integer(), fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(plainKey, tie('node'), { maxKeys: 3 })),
  })).node;
  fc.assert(
    fc.property(tree, fc.array(plainKey, { maxLength: 4 }), secretKey, fc.boolean(), (base, path, key, wrap) => {
      const secret = 'SEKRIT-7f3a9';
      let holder: Record<string, unknown> = { [key]: wrap ? new Secret(secret) : secret };
      for (const p of [...path].reverse()) holder = { [p]: holder, other: base };
      const lines: string[] = [];
      createLogger({ sink: (l) => lines.push(l) }).info('m', { base, holder });
      return lines.length === 1 && !lines[0]!.includes(secret);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random trees');
});

t.test('logger: errors, bytes, bigints, cycles', async (t) => {
  const info = collect('info');
  const err = Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' });
  info.log.error('peer down', { err, asn: 4200000000n, raw: Buffer.from([0xff, 0x00, 0x10]) });
  const e = info.parsed()[0]!;
  t.same(e.err, { name: 'Error', message: 'connect failed', code: 'ECONNREFUSED' }, 'no stack above debug');
  t.equal(e.asn, '4200000000');
  t.equal(e.raw, 'ff0010');

  const debug = collect('debug');
  debug.log.error('peer down', { err });
  t.match((debug.parsed()[0]!.err as Record<string, unknown>).stack, /connect failed\n\s+at /, 'stack at debug');

  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  info.log.warn('cyclic', { cyclic, ok: true });
  const c = info.parsed()[1]!;
  t.equal(c.msg, 'cyclic');
  t.match(c.cyclic, /unserialisable/);
  t.equal(c.ok, true, 'the other fields survive');
});

t.test('logger: a closed stdout (EPIPE) does not kill the process', async (t) => {
  const logJs = join(root, 'dist', 'src', 'log.js');
  if (!existsSync(logJs)) {
    t.fail('dist/ is missing: run "npm run build" first');
    return;
  }
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { createLogger } = await import(${JSON.stringify(logJs)});
    const log = createLogger();
    for (let i = 0; i < 20000; i++) log.info('line', { i });
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 100; i++) log.info('after the reader left', { i });
    process.stderr.write('survived');`]);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 0);
  t.equal(err, 'survived');
});

t.test('metrics: typed API produces the series, removePeer deletes a peer\'s series', async (t) => {
  const m = new Metrics();
  m.peerState('192.0.2.11', 'Established', Date.UTC(2026, 10, 21, 3, 0, 0));
  m.peerState('192.0.2.12', 'Active');
  m.prefixes('192.0.2.11', 'ipv4-unicast', { received: 10, accepted: 9, advertised: 3 });
  m.prefixes('192.0.2.12', 'ipv6-unicast', { received: 1 });
  m.messageIn('192.0.2.11', 'UPDATE', 5);
  m.messageIn('192.0.2.11', 'UPDATE');
  m.messageOut('192.0.2.11', 'KEEPALIVE');
  m.messageIn('192.0.2.12', 'OPEN');
  m.notificationIn('192.0.2.12', 6, 2);
  m.notificationOut('192.0.2.12', 4, 0);
  m.updateProcessed(0.002);
  m.fibRoutes({ desired: 12, installed: 11, failed: 1 });
  m.fibFailure('ENETUNREACH');
  m.fibProgrammed(0.004);
  const end = m.fibTimer();
  end();
  m.datastoreSynced(true);
  m.datastoreChange('BGPPeer', 1_800_000_000_000);
  m.datastoreRejected('IPPool');
  m.originations('block', 2);
  m.originations('borrowed', 5);
  m.originations('service', 1);
  m.ready(true);
  m.reload(true);

  const { contentType, body } = await m.scrape();
  t.match(contentType, /^text\/plain; version=0\.0\.4/);
  const expect = [
    'skein_bgp_peer_state{peer="192.0.2.11",state="Established"} 1',
    'skein_bgp_peer_state{peer="192.0.2.11",state="Idle"} 0',
    'skein_bgp_peer_state{peer="192.0.2.12",state="Active"} 1',
    'skein_bgp_peer_established_since_seconds{peer="192.0.2.11"} 1795230000',
    'skein_bgp_prefixes_received{peer="192.0.2.11",family="ipv4-unicast"} 10',
    'skein_bgp_prefixes_accepted{peer="192.0.2.11",family="ipv4-unicast"} 9',
    'skein_bgp_prefixes_advertised{peer="192.0.2.11",family="ipv4-unicast"} 3',
    'skein_bgp_prefixes_received{peer="192.0.2.12",family="ipv6-unicast"} 1',
    'skein_bgp_messages_received_total{peer="192.0.2.11",type="UPDATE"} 6',
    'skein_bgp_messages_sent_total{peer="192.0.2.11",type="KEEPALIVE"} 1',
    'skein_bgp_notifications_received_total{peer="192.0.2.12",code="6",subcode="2"} 1',
    'skein_bgp_notifications_sent_total{peer="192.0.2.12",code="4",subcode="0"} 1',
    'skein_bgp_update_processing_seconds_count 1',
    'skein_fib_routes{state="desired"} 12',
    'skein_fib_routes{state="installed"} 11',
    'skein_fib_routes{state="failed"} 1',
    'skein_fib_failures_total{reason="ENETUNREACH"} 1',
    'skein_fib_programming_seconds_count 2',
    'skein_datastore_synced 1',
    'skein_datastore_last_change_timestamp_seconds 1800000000',
    'skein_datastore_updates_total{kind="BGPPeer"} 1',
    'skein_datastore_rejected_total{kind="IPPool"} 1',
    'skein_originated_prefixes{kind="block"} 2',
    'skein_originated_prefixes{kind="borrowed"} 5',
    'skein_originated_prefixes{kind="service"} 1',
    'skein_ready 1',
    'skein_reloads_total{result="ok"} 1',
  ];
  const lines = new Set(body.split('\n'));
  for (const l of expect) t.ok(lines.has(l), l);
  t.match(body, /^skein_process_cpu_user_seconds_total /m, 'default process metrics carry the prefix');
  t.match(body, /^skein_nodejs_eventloop_lag_seconds /m);
  // prom-client's default set, loaded by its parts (src/prom.ts): every family it registers is here, once, and the
  // CPU counters skein writes itself add up (one cpuUsage() sample per scrape).
  for (const name of ['process_cpu_system_seconds_total', 'process_cpu_seconds_total', 'process_start_time_seconds',
    'process_resident_memory_bytes', 'process_open_fds', 'process_max_fds', 'nodejs_heap_size_total_bytes',
    'nodejs_heap_space_size_used_bytes', 'nodejs_version_info', 'nodejs_gc_duration_seconds', 'nodejs_active_handles']) {
    t.equal(body.split('\n').filter((l) => l === `# TYPE skein_${name} ${/_total$|_seconds_total$/.test(name) ? 'counter' : /gc_duration/.test(name) ? 'histogram' : 'gauge'}`).length, 1, `skein_${name} registered once`);
  }
  const cpu = (n: string): number => Number(new RegExp(`^skein_process_cpu_${n}seconds_total (\\S+)$`, 'm').exec(body)?.[1]);
  t.ok(cpu('user_') > 0, 'CPU time is counted');
  t.ok(Math.abs(cpu('user_') + cpu('system_') - cpu('')) < 1e-9, 'user + system = total');
  t.notMatch(body, /^(?!skein_|#|$)/m, 'every series is prefixed skein_');

  // Peer state moves: the old state's series drops to 0, Established-since goes away.
  m.peerState('192.0.2.11', 'Idle');
  const after = (await m.scrape()).body;
  t.match(after, /skein_bgp_peer_state\{peer="192\.0\.2\.11",state="Established"\} 0/);
  t.match(after, /skein_bgp_peer_state\{peer="192\.0\.2\.11",state="Idle"\} 1/);
  t.notMatch(after, /established_since_seconds\{peer="192\.0\.2\.11"\}/);

  t.same(m.peersWithSeries().sort(), ['192.0.2.11', '192.0.2.12']);
  m.removePeer('192.0.2.12');
  const removed = (await m.scrape()).body;
  t.notMatch(removed, /192\.0\.2\.12/, 'no series of the removed peer is left');
  t.match(removed, /peer="192\.0\.2\.11"/, 'the other peer keeps its series');
  t.same(m.peersWithSeries(), ['192.0.2.11']);
  m.messageIn('192.0.2.12', 'OPEN');
  t.match((await m.scrape()).body, /skein_bgp_messages_received_total\{peer="192\.0\.2\.12",type="OPEN"\} 1\n/, 'a returning peer starts from zero');
});

t.test('metrics: many peers come and go without leaking series', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  const count = async (): Promise<number> => (await m.scrape()).body.split('\n').filter((l) => l.includes('peer="')).length;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 200; i++) {
      const p = `10.0.${round}.${i}`;
      m.peerState(p, 'Established');
      m.messageIn(p, 'UPDATE');
      m.prefixes(p, 'ipv4-unicast', { received: 1, accepted: 1, advertised: 1 });
      m.notificationIn(p, 6, 4);
    }
    t.ok((await count()) >= 200 * 6, `round ${round}: series exist`);
    for (let i = 0; i < 200; i++) m.removePeer(`10.0.${round}.${i}`);
    t.equal(await count(), 0, `round ${round}: all removed`);
  }
});

async function get(base: string, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string | null; allow: string | null }> {
  const r = await fetch(base + path, { method });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type'), allow: r.headers.get('allow') };
}

async function until(what: string, cond: () => Promise<boolean>, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

t.test('http: /metrics, /livez, /readyz, 404, 405 on a real server', async (t) => {
  const metrics = new Metrics();
  let clock = 1_000_000;
  const gate = new ReadinessGate({ startupWindowMs: 60_000, now: () => clock });
  const flips: ReadinessReport[] = [];
  gate.onChange((r) => {
    flips.push(r);
    metrics.ready(r.ready);
  });
  gate.setPeers(['192.0.2.11', '192.0.2.12']);
  // The limit sits far above what a loaded 2-core CI machine stalls for on its own (it once blocked 167 ms there and
  // a 150 ms limit turned the first /livez into a 503); the deliberate block below is well past it.
  const monitor = new LoopMonitor({ intervalMs: 10, maxBlockedMs: 1000, windowMs: 300 }).start();
  t.teardown(() => monitor.stop());
  const http = await startHttpServer({ listen: '127.0.0.1:0', metrics, readiness: () => gate.check(), liveness: () => monitor.check() });
  t.teardown(() => http.close());
  const base = `http://127.0.0.1:${http.address().port}`;

  const m = await get(base, '/metrics');
  t.equal(m.status, 200);
  t.equal(m.type, metrics.registry.contentType);
  t.match(m.body, /^skein_ready 0$/m);

  t.same(await get(base, '/livez'), { status: 200, body: 'ok: event loop running\n', type: 'text/plain; charset=utf-8', allow: null });

  let r = await get(base, '/readyz');
  t.equal(r.status, 503);
  t.equal(r.body, 'not ready: datastore not synced; fib not reconciled; waiting for peers: 192.0.2.11, 192.0.2.12\n');
  gate.setDatastoreSynced(true);
  gate.setFibReconciled(true);
  gate.setPeerEstablished('192.0.2.11', true);
  t.equal((await get(base, '/readyz')).body, 'not ready: waiting for peers: 192.0.2.12\n');
  gate.setPeerEstablished('192.0.2.12', true);
  r = await get(base, '/readyz');
  t.same([r.status, r.body], [200, 'ok\n']);
  t.match((await get(base, '/metrics')).body, /^skein_ready 1$/m, 'the readiness flip reached the metric');
  gate.setDatastoreSynced(false);
  t.same([(await get(base, '/readyz')).status, flips.map((f) => f.ready)], [503, [true, false]], 'onChange fires on each flip only');
  gate.setDatastoreSynced(true);

  // A peer that goes down inside the start-up window holds readiness back; after the window it no longer does.
  gate.setPeerEstablished('192.0.2.12', false);
  t.equal((await get(base, '/readyz')).status, 503);
  clock += 60_000;
  gate.poll();
  t.equal((await get(base, '/readyz')).status, 200, 'peers had their chance');
  gate.setPeers(['192.0.2.11']);
  t.equal(gate.check().missing.length, 0, 'a forgotten peer does not count');

  t.equal((await get(base, '/nope')).status, 404);
  t.equal((await get(base, '/metrics/extra')).status, 404);
  const post = await get(base, '/metrics', 'POST');
  t.same([post.status, post.allow], [405, 'GET, HEAD']);
  t.equal((await get(base, '/readyz', 'DELETE')).status, 405);
  const head = await get(base, '/livez', 'HEAD');
  t.same([head.status, head.body], [200, '']);
  t.equal((await get(base, '/readyz?verbose=1')).status, 200, 'a query string does not change the route');

  // Block the loop well past the limit: /livez reports it, then recovers once the window has passed.
  const until0 = performance.now() + 2000;
  while (performance.now() < until0) { /* block the event loop on purpose */ }
  const blocked = await get(base, '/livez');
  t.equal(blocked.status, 503);
  t.match(blocked.body, /^not live: event loop blocked for \d+ ms \(limit 1000 ms\)\n$/);
  await until('/livez recovers', async () => (await get(base, '/livez')).status === 200);
  t.pass('recovered');
});

t.test('http: readiness options and listen addresses', async (t) => {
  let clock = 0;
  const strict = new ReadinessGate({ startupWindowMs: 1000, fibEnabled: false, requirePeerAfterStartup: true, now: () => clock });
  strict.setDatastoreSynced(true);
  t.same(strict.check(), { ready: true, missing: [], started: true }, 'no peers, FIB disabled: ready');
  strict.setPeers(['fd00::11']);
  t.same(strict.check().missing, ['waiting for peers: fd00::11']);
  clock = 2000;
  t.same(strict.check().missing, ['no peer established'], 'after the window one Established peer is needed');
  strict.setPeerEstablished('fd00::11', true);
  t.ok(strict.check().ready);
  strict.setPeerEstablished('192.0.2.99', true);
  t.ok(strict.check().ready, 'an unknown peer is ignored');
  strict.setBlocker('gr', 'graceful restart in progress');
  t.same(strict.check(), { ready: false, missing: ['graceful restart in progress'], started: false });
  strict.setBlocker('gr', undefined);
  t.ok(strict.check().ready, 'a cleared blocker no longer counts');

  t.same(parseListen('127.0.0.1:9180'), { host: '127.0.0.1', port: 9180 });
  t.same(parseListen('[::1]:9180'), { host: '::1', port: 9180 });
  t.same(parseListen(':9180'), { host: '::', port: 9180 });
  for (const bad of ['9180', '127.0.0.1', '[::1]', 'host:99999', 'example.com:80', '1.2.3.4:x']) {
    t.throws(() => parseListen(bad), /metrics\.listen/, bad);
  }
  const metrics = new Metrics({ defaultMetrics: false });
  const a = await startHttpServer({ listen: '127.0.0.1:0', metrics, readiness: () => ({ ready: true, missing: [] }) });
  t.teardown(() => a.close());
  await t.rejects(
    startHttpServer({ listen: `127.0.0.1:${a.address().port}`, metrics, readiness: () => ({ ready: true, missing: [] }) }),
    { code: 'EADDRINUSE' },
    'a taken port is a clear listen error',
  );
});

t.test('systemd unit: required directives', async (t) => {
  const text = readFileSync(join(root, 'systemd', 'skein.service'), 'utf8');
  const unit = new Map<string, Map<string, string[]>>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      unit.set(section, unit.get(section) ?? new Map());
      continue;
    }
    const eq = line.indexOf('=');
    t.ok(eq > 0 && section !== '', `a key=value line inside a section: ${line}`);
    const values = unit.get(section)!;
    values.set(line.slice(0, eq), [...(values.get(line.slice(0, eq)) ?? []), line.slice(eq + 1)]);
  }
  const svc = (k: string): string | undefined => unit.get('Service')?.get(k)?.at(-1);
  t.match(svc('ExecStart'), /^(?:\/usr\/(?:local\/)?bin\/)?skeind --config \/etc\/skein\/skein\.yaml$/);
  t.equal(svc('Type'), 'notify');
  t.equal(svc('NotifyAccess'), 'main');
  // The reload returns the daemon's verdict (skeinctl exits 1 when the daemon refuses a broken skein.yaml).
  t.match(svc('ExecReload'), /^(?:\/usr\/(?:local\/)?bin\/)?skeinctl (?:--timeout \d+ )?reload$/);
  t.equal(svc('Group'), 'skein', 'the control socket belongs to group skein, as the example skein.yaml says');
  t.equal(svc('RestartPreventExitStatus'), '2', 'configuration errors (exit 2) are not restarted');
  t.equal(svc('Restart'), 'on-failure');
  t.ok(svc('RestartSec'));
  const caps = ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE'];
  t.same(svc('CapabilityBoundingSet')?.split(/\s+/).sort(), caps, 'only the two capabilities');
  t.same(svc('AmbientCapabilities')?.split(/\s+/).sort(), caps);
  for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'],
    ['RuntimeDirectory', 'skein'], ['ProtectKernelTunables', 'yes'], ['KillMode', 'mixed']] as const) {
    t.equal(svc(k), v, k);
  }
  t.same(svc('RestrictAddressFamilies')?.split(/\s+/).sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
  t.ok(Number(svc('LimitNOFILE')) >= 4096);
  t.ok(svc('TimeoutStopSec'));
  // What would take the routes away or break the daemon: none of it may be there.
  for (const k of ['ExecStop', 'ExecStopPost', 'PrivateNetwork', 'MemoryDenyWriteExecute', 'IPAddressDeny']) t.notOk(svc(k), `no ${k}`);
  t.equal(unit.get('Install')?.get('WantedBy')?.[0], 'multi-user.target');
});

t.test('systemd unit: systemd-analyze verify', async (t) => {
  if (!requires(t, { commands: ['systemd-analyze'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'skein-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const verify = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', cwd: dir });
    return `${r.stdout}${r.stderr}`.trim();
  };
  // skeind is not installed here: let the bare name resolve to an existing program, the rest verbatim.
  const unitText = readFileSync(join(root, 'systemd', 'skein.service'), 'utf8').replace(/^ExecStart=skeind /m, 'ExecStart=true ').replace(/^ExecReload=skeinctl /m, 'ExecReload=true ');
  t.equal(verify('skein.service', unitText), '', 'no warnings');
  // The check can fail: a unit with a typo is reported.
  t.match(verify('typo.service', unitText.replace(/^ProtectSystem=strict$/m, 'ProtectSystm=strict')), /Unknown key/);
  t.match(execFileSync('systemd-analyze', ['--version'], { encoding: 'utf8' }), /systemd/);
});
