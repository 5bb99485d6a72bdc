// `skeinctl routes` against a real route-processing core behind a real control socket (src/daemon/route-query.ts,
// prefix-walk.ts, src/ctl/routes.ts): the listing streams in prefix order, --json is the contract's document and
// --jsonl one route per line, a PREFIX is a longest-match lookup (exit 1 when nothing matches), --longer and
// --prefix-within list more-specifics, --peer and --community filter, --count counts, --limit/--after page without
// losing or repeating a route, bad options are usage errors, and `skeinctl routes | head` ends quietly and cancels
// the daemon's work.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RibCore } from '../../bgp/index.js';
import { ControlServer } from '../../src/control/index.js';
import { EXIT, runCtlCommand, type CtlIo } from '../../src/ctl/index.js';
import { comparePrefixKeys, keyWithin, PrefixWalk, type PrefixKey } from '../../src/daemon/prefix-walk.js';
import { keyText, parseRange, parseRouteQuery, RowMaker, routesStream } from '../../src/daemon/route-query.js';
import { TurnScheduler } from '../../src/control/stream.js';
import { announce, announce6, p4, terms } from '../helpers/rib.js';
import { runCommand } from '../helpers/run.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeinctl = join(root, 'dist/src/skeinctl.js');

function tmp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'skc-routes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const A = '192.0.2.1';
const B = '192.0.2.2';
const BULK = 20_000;

/** A core with BULK /24s from peer A, a few nested prefixes, some also from B with a community, and IPv6. */
function makeRib(): RibCore {
  const rib = new RibCore({ localAs: 64512, routerId: 1 });
  const a = rib.addPeer({ address: A, asn: 64512 });
  const b = rib.addPeer({ address: B, asn: 65002 });
  rib.peerUp(a, terms(a, true));
  rib.peerUp(b, terms(b, false));
  const attrs = { origin: 0 as const, asPath: [], nextHop: A, localPref: 100 };
  for (let i = 0; i < BULK; i += 1000) {
    const ps: string[] = [];
    for (let j = i; j < i + 1000; j++) ps.push(`10.${128 + (j >>> 8)}.${j & 255}.0/24`);
    rib.applyUpdate(a, announce(ps, attrs));
  }
  rib.applyUpdate(a, announce(['10.1.0.0/16', '10.1.2.0/24', '10.1.2.128/25', '10.2.0.0/16'], attrs));
  rib.applyUpdate(b, announce(['10.1.2.0/24', '10.3.0.0/16'], { origin: 0, asPath: [{ type: 2, asns: [65002] }], nextHop: B, communities: [65002 * 65536 + 7] }));
  rib.applyUpdate(a, announce6(['fd00:1::/64', 'fd00:1:0:1::/64'], { origin: 0, asPath: [] }, ['fd00::1']));
  rib.originate(p4('10.65.0.0/26'));
  return rib;
}
const TOTAL = BULK + 4 + 1 + 2 + 1; // + 10.3.0.0/16 from B, IPv6, the local block

function memoryIo(): CtlIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    env: {},
    now: () => new Date(),
    stdout(s: string) {
      io.out += s;
    },
    stderr(s: string) {
      io.err += s;
    },
  };
  return io;
}

async function setup(t: Test): Promise<{ sock: string; server: ControlServer; ctl: (argv: string[]) => Promise<{ code: number; out: string; err: string }> }> {
  const sock = join(tmp(t), 'skein.sock');
  const rib = makeRib();
  const server = new ControlServer({ path: sock });
  server.handle('routes', (p) => routesStream(parseRouteQuery(p), { rib, installed: (k) => keyText(k) === '10.1.2.0/24' }));
  await server.listen();
  t.teardown(() => server.close(0));
  const ctl = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const io = memoryIo();
    const code = await runCtlCommand(['--socket', sock, ...argv], io);
    return { code, out: io.out, err: io.err };
  };
  return { sock, server, ctl };
}

const lines = (s: string): Record<string, unknown>[] => s.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
const prefixes = (rows: Record<string, unknown>[]): string[] => rows.map((r) => String(r.prefix));

t.test('routes: the whole table streams in prefix order; --json is the CONTRACT document', async (t) => {
  const { ctl } = await setup(t);
  const jl = await ctl(['routes', '--jsonl']);
  t.equal(jl.code, EXIT.OK, jl.err);
  const rows = lines(jl.out);
  t.equal(rows.length, TOTAL, 'every route once');
  const ps = prefixes(rows);
  t.equal(new Set(ps).size, ps.length, 'no route twice');
  const keys = ps.map((p) => parseRange(p, 'x').key);
  t.ok(keys.every((k, i) => i === 0 || comparePrefixKeys(keys[i - 1]!, k) < 0), 'sorted: IPv4 then IPv6, by address then length');
  t.same(ps.slice(0, 5), ['10.1.0.0/16', '10.1.2.0/24', '10.1.2.128/25', '10.2.0.0/16', '10.3.0.0/16']);
  t.same(ps.slice(-2), ['fd00:1::/64', 'fd00:1:0:1::/64']);

  const both = rows.find((r) => r.prefix === '10.1.2.0/24') as { installed: boolean; best: { from: string }; paths: { from: string; reason: string }[] };
  t.equal(both.installed, true);
  t.equal(both.paths.length, 2);
  t.equal(both.best.from, both.paths[0]!.from, 'best first');

  const j = await ctl(['routes', '--json']);
  t.equal(j.code, EXIT.OK);
  const doc = JSON.parse(j.out) as { routes: unknown[] };
  t.same(doc.routes, rows, '--json: {"routes": [...]} with the same rows');

  const text = await ctl(['routes']);
  t.equal(text.code, EXIT.OK);
  t.match(text.out, /^10\.1\.0\.0\/16 {2}not in kernel, 1 path\n/);
  t.match(text.out, /10\.1\.2\.0\/24 {2}in kernel, 2 paths\n/);
  t.match(text.out, new RegExp(`\\n${TOTAL} routes\\n$`));
});

t.test('routes PREFIX: longest match; nothing matching exits 1', async (t) => {
  const { ctl } = await setup(t);
  const m = async (arg: string): Promise<string[]> => {
    const r = await ctl(['routes', arg, '--jsonl']);
    t.equal(r.code, EXIT.OK, `${arg}: ${r.err}`);
    return prefixes(lines(r.out));
  };
  t.same(await m('10.1.2.3'), ['10.1.2.0/24'], 'an address: the longest prefix holding it');
  t.same(await m('10.1.2.200'), ['10.1.2.128/25']);
  t.same(await m('10.1.9.9'), ['10.1.0.0/16']);
  t.same(await m('10.1.2.0/24'), ['10.1.2.0/24'], 'a prefix in the table: itself');
  t.same(await m('10.1.2.0/26'), ['10.1.2.0/24'], 'a longer prefix: the route that covers it');
  t.same(await m('fd00:1::77'), ['fd00:1::/64']);
  for (const miss of ['192.0.2.0/24', '11.0.0.1', 'fd00:2::1']) {
    const r = await ctl(['routes', miss]);
    t.equal(r.code, EXIT.DAEMON_ERROR, `${miss}: exit 1`);
    t.equal(r.out, `No route for ${miss}.\n`);
    const j = await ctl(['routes', miss, '--json']);
    t.equal(j.code, EXIT.DAEMON_ERROR);
    t.same(JSON.parse(j.out), { routes: [] });
  }
});

t.test('routes: --longer, --prefix-within, --peer, --community, --family, --count', async (t) => {
  const { ctl } = await setup(t);
  const get = async (argv: string[]): Promise<string[]> => {
    const r = await ctl(['routes', ...argv, '--jsonl']);
    t.equal(r.code, EXIT.OK, `${argv.join(' ')}: ${r.err}`);
    return prefixes(lines(r.out));
  };
  t.same(await get(['10.1.0.0/16', '--longer']), ['10.1.0.0/16', '10.1.2.0/24', '10.1.2.128/25'], 'more-specifics, itself included');
  t.same(await get(['--prefix-within', '10.1.2.0/24']), ['10.1.2.0/24', '10.1.2.128/25']);
  t.same(await get(['--prefix-within', '10.0.0.0/14']), ['10.1.0.0/16', '10.1.2.0/24', '10.1.2.128/25', '10.2.0.0/16', '10.3.0.0/16']);
  t.equal((await get(['--prefix-within', '10.128.0.0/9'])).length, BULK);
  t.same(await get(['--prefix-within', 'fd00:1::/48']), ['fd00:1::/64', 'fd00:1:0:1::/64']);
  t.same(await get(['--peer', B]), ['10.1.2.0/24', '10.3.0.0/16'], 'routes with a path from B');
  t.same(await get(['--community', '65002:7']), ['10.1.2.0/24', '10.3.0.0/16']);
  t.same(await get(['--community', '65002:8']), []);
  t.same(await get(['--family', 'ipv6']), ['fd00:1::/64', 'fd00:1:0:1::/64']);
  t.same(await get(['--prefix-within', '10.0.0.0/8', '--peer', B, '--community', '65002:7']), ['10.1.2.0/24', '10.3.0.0/16'], 'filters combine');
  t.same(await get(['--peer', A, '--community', '65002:7']), [], 'with --peer, the community must be on that peer\'s path');

  const c = await ctl(['routes', '--count']);
  t.same([c.code, c.out], [EXIT.OK, `${TOTAL}\n`]);
  t.same(JSON.parse((await ctl(['routes', '--count', '--json'])).out), { count: TOTAL });
  t.equal((await ctl(['routes', '--count', '--prefix-within', '10.1.0.0/16'])).out, '3\n');
  t.equal((await ctl(['routes', '--count', '--peer', B])).out, '2\n');
  t.equal((await ctl(['routes', '--count', '10.1.2.3'])).out, '1\n');
});

t.test('routes: paging with --limit and --after loses and repeats nothing', async (t) => {
  const { ctl } = await setup(t);
  const all = prefixes(lines((await ctl(['routes', '--jsonl'])).out));
  const seen: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 20; page++) {
    const r = await ctl(['routes', '--json', '--limit', '2500', ...(after ? ['--after', after] : [])]);
    t.equal(r.code, EXIT.OK, r.err);
    const doc = JSON.parse(r.out) as { routes: { prefix: string }[]; next?: string };
    seen.push(...doc.routes.map((x) => x.prefix));
    if (doc.next === undefined) break;
    t.equal(doc.next, doc.routes.at(-1)!.prefix, 'next names the last row of the page');
    after = doc.next;
  }
  t.same(seen, all, 'the pages together are the listing');
  const text = await ctl(['routes', '--limit', '2']);
  t.match(text.out, /\n2 routes\nmore: add --after 10\.1\.2\.0\/24 for the next page\n$/);
});

t.test('routes: usage errors and the daemon\'s refusals', async (t) => {
  const { ctl } = await setup(t);
  for (const argv of [['--longer'], ['--received'], ['--peer', A, '--received', '--advertised'], ['--limit', '0'], ['--limit', 'x'],
    ['10.0.0.1', '--limit', '5'], ['--after', '10.0.0.1'], ['--json', '--jsonl'], ['--family', 'ipx'], ['--prefix-within']]) {
    const r = await ctl(['routes', ...argv]);
    t.equal(r.code, EXIT.USAGE, `${argv.join(' ')}: exit 2 (${r.err.split('\n')[0]})`);
  }
  const s = await ctl(['status', '--count']);
  t.equal(s.code, EXIT.USAGE, 'routes options on another command');
  const bad = await ctl(['routes', '--community', 'nope']);
  t.equal(bad.code, EXIT.DAEMON_ERROR);
  t.match(bad.err, /community: "nope" is neither A:B/);
  const np = await ctl(['routes', '--peer', '10.0.0.0/8']);
  t.equal(np.code, EXIT.DAEMON_ERROR);
  t.match(np.err, /is a prefix, not an address/);
});

t.test('skeinctl routes | head: ends quietly, and the daemon stops making the answer', async (t) => {
  const { sock, server } = await setup(t);
  const r = await runCommand('bash', ['-c', `set -o pipefail; node "$0" --socket "$1" routes --jsonl | head -n 3`, skeinctl, sock], { timeoutMs: 60_000 });
  t.equal(r.code, 0, `pipeline exit status (stderr: ${r.err})`);
  t.equal(r.out.split('\n').filter(Boolean).length, 3);
  t.equal(r.err, '', 'no EPIPE, no stack trace');
  const deadline = Date.now() + 10_000;
  while (server.stats.active > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  t.equal(server.stats.active, 0, 'the request is over');
  t.ok(server.stats.cancelled >= 1, 'it was cancelled, not finished');

  const text = await runCommand('bash', ['-c', `set -o pipefail; node "$0" --socket "$1" routes | head -n 1`, skeinctl, sock], { timeoutMs: 60_000 });
  t.same([text.code, text.out, text.err], [0, '10.1.0.0/16  not in kernel, 1 path\n', '']);

  const v = await runCommand('node', [skeinctl, '--version']);
  t.equal(v.code, 0);
  t.match(v.out, /^skeinctl \d+\.\d+\.\d+\n$/);
});

t.test('prefix walk: a snapshot sorted a slice at a time; a table that changes underneath', async (t) => {
  const sched = new TurnScheduler();
  const keys: number[] = [];
  for (let i = 0; i < 50_000; i++) keys.push(p4(`10.${(i * 7919) % 256}.${i % 256}.0/24`), p4(`11.${i % 256}.${(i >> 8) % 256}.0/${16 + (i % 9)}`));
  const uniq = [...new Set(keys)];
  const set = new Set(uniq);
  const walk = new PrefixWalk(() => set.values());
  t.ok(await walk.prepare(sched));
  const out: number[] = [];
  for (let k = walk.next(); k !== undefined; k = walk.next()) out.push(k as number);
  t.same(out, [...uniq].sort((a, b) => a - b), 'every key once, in order');

  // filters on keys
  const r = parseRange('10.0.0.0/8', 'x').range;
  const w2 = new PrefixWalk(() => set.values(), { within: r, after: p4('10.100.0.0/24') });
  await w2.prepare(sched);
  const o2: number[] = [];
  for (let k = w2.next(); k !== undefined; k = w2.next()) o2.push(k as number);
  t.same(o2, uniq.filter((k) => keyWithin(k, r) && k > p4('10.100.0.0/24')).sort((a, b) => a - b));

  // an aborted walk stops
  const ac = new AbortController();
  ac.abort();
  t.equal(await new PrefixWalk(() => set.values()).prepare(sched, ac.signal), false);
});

t.test('a row made as text is the same document as the row made as objects, for every route of the table', async (t) => {
  const rib = makeRib();
  // a path from B with an AS_SET, MED and a large community, beside A's path for the same prefix
  const bId = 2; // makeRib adds A (1), then B (2)
  rib.applyUpdate(bId, announce(['10.1.0.0/16'], {
    origin: 1, asPath: [{ type: 2, asns: [65002, 65010] }, { type: 1, asns: [65020, 65021] }], nextHop: B, med: 7,
    largeCommunities: [[65002, 1, 2]],
  }));
  const src = { rib, installed: (k: PrefixKey) => keyText(k).startsWith('10.1.') };
  const maker = new RowMaker(parseRouteQuery({}), src);
  let n = 0;
  for (const k of rib.prefixes()) {
    const text = maker.rowText(k);
    if (text === null || JSON.stringify(JSON.parse(text)) !== JSON.stringify(maker.row(k))) {
      t.not(text, null, `a row for ${keyText(k)}`);
      t.same(JSON.parse(text!), maker.row(k), `row of ${keyText(k)}`);
      break;
    }
    n++;
  }
  t.equal(n, TOTAL, 'every row identical, field order included');
  // a filtered view still answers through the object rows
  const byPeer = new RowMaker(parseRouteQuery({ peer: B }), src);
  t.same(JSON.parse(byPeer.rowText(p4('10.3.0.0/16'))!), byPeer.row(p4('10.3.0.0/16')));
  t.equal(byPeer.rowText(p4('10.2.0.0/16')), null);
});
