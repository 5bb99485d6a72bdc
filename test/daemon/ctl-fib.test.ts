// `skeinctl fib` streams (src/daemon/fib-query.ts, src/ctl/fib.ts): a real route table (src/daemon/routes.ts)
// behind a real control socket, with a stand-in FIB programmer whose kernel refuses some prefixes and holds one
// route of ours nothing wants. The listing comes in prefix order, each prefix once; --json is the contract's FibJson,
// --jsonl one row per line; --state, --family, --prefix-within filter; --count counts; --limit/--after page without
// losing or repeating a row; options of other commands are usage errors; `skeinctl fib | head` ends quietly and the
// daemon stops making the answer.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { loadDaemonConfig } from '../../config/index.js';
import { formatAddress } from '../../fib/index.js';
import { Daemon } from '../../src/daemon.js';
import { ControlServer } from '../../src/control/index.js';
import { EXIT, runCtlCommand, type CtlIo } from '../../src/ctl/index.js';
import type { FibJson, FibRouteJson } from '../../src/control/types.js';
import { fibStream, parseFibQuery } from '../../src/daemon/fib-query.js';
import { comparePrefixKeys } from '../../src/daemon/prefix-walk.js';
import { parseRange } from '../../src/daemon/route-query.js';
import { RouteTable } from '../../src/daemon/routes.js';
import { runCommand } from '../helpers/run.js';

const root = join(`${import.meta.dirname}/..`, '..');
const skeinctl = join(root, 'dist/src/skeinctl.js');

const BLOCKS = 3000;
/** the kernel refuses every 500th block */
const refused = (i: number): boolean => i % 500 === 7;

interface Entry { family: 4 | 6; addr: Uint8Array; len: number; type: number; hops: { gateway?: Uint8Array }[]; failed: boolean; wanted: boolean }

/** What the route table hands to the kernel, kept as a kernel that takes it (or refuses it) at once would. */
function fakeFib(fail: (prefix: string) => boolean): { fib: ConstructorParameters<typeof RouteTable>[0]; entries: Map<string, Entry> } {
  const entries = new Map<string, Entry>();
  const text = (a: Uint8Array, l: number): string => `${formatAddress(a)}/${l}`;
  const view = (e: Entry): unknown => ({
    prefix: { family: e.family, addr: e.addr, len: e.len },
    table: 254,
    metric: 0,
    desired: e.wanted ? {} : undefined,
    kernel: e.failed ? undefined : { family: e.family, addr: e.addr, len: e.len, table: 254, metric: 0, protocol: 201, type: e.type, scope: 0, hops: e.hops },
    inSync: e.wanted && !e.failed,
    pending: false,
    failure: e.failed ? { code: 'EINVAL', message: 'refused by the test kernel' } : undefined,
  });
  const fib = {
    set: (f: 4 | 6, a: Uint8Array, l: number, tg: { blackhole?: boolean; hops?: { gateway?: Uint8Array }[] }) => {
      const addr = Uint8Array.from(a.subarray(0, f === 4 ? 4 : 16));
      const p = text(addr, l);
      entries.set(p, { family: f, addr, len: l, type: tg.blackhole ? 6 : 1, hops: tg.hops ?? [], failed: fail(p), wanted: true });
    },
    remove: (f: 4 | 6, a: Uint8Array, l: number) => {
      entries.delete(text(a.subarray(0, f === 4 ? 4 : 16), l));
    },
    lookup: (f: 4 | 6, a: Uint8Array, l: number) => {
      const e = entries.get(text(a.subarray(0, f === 4 ? 4 : 16), l));
      return e === undefined ? undefined : view(e);
    },
    *routes() {
      for (const e of entries.values()) yield view(e);
    },
    // the writer's counters, as Programmer.writer() gives them (values the test can recognise)
    writer: () => ({
      sent: { add: 3, replace: 0, delete: 0 }, errors: [...entries.values()].filter((e) => e.failed).length, resyncs: 1, overruns: 0,
      repairs: 0, nexthopObjects: true, nexthops: 1, urgentSent: 0, directBatches: 5, requestThreadRunning: true, requestThreadStarts: 2,
      nexthopRepairs: 0,
    }),
  };
  return { fib: fib as unknown as ConstructorParameters<typeof RouteTable>[0], entries };
}

const blockOf = (i: number): string => `10.${64 + (i >>> 10)}.${(i >>> 2) & 255}.${(i & 3) * 64}/26`;

function makeTable(): { rt: RouteTable; fib: NonNullable<ConstructorParameters<typeof RouteTable>[0]>; failing: Set<string>; stray: string; all: string[] } {
  const failing = new Set<string>();
  for (let i = 0; i < BLOCKS; i++) if (refused(i)) failing.add(blockOf(i));
  const { fib, entries } = fakeFib((p) => failing.has(p));
  const rt = new RouteTable(fib, { sliceMs: 0 });
  rt.setOpen(true);
  for (let i = 0; i < BLOCKS; i++) rt.setBlackhole(blockOf(i), true);
  rt.setBlackhole('fd00:65::/122', true);
  rt.setBlackhole('fd00:65::40/122', true);
  // a route of ours the kernel holds that nothing wants (adopted at start, before the sweep)
  const stray = '10.99.0.0/24';
  entries.set(stray, { family: 4, addr: Uint8Array.of(10, 99, 0, 0), len: 24, type: 1, hops: [{ gateway: Uint8Array.of(192, 0, 2, 9) }], failed: false, wanted: false });
  const all = [...Array.from({ length: BLOCKS }, (_, i) => blockOf(i)), 'fd00:65::/122', 'fd00:65::40/122', stray]
    .sort((a, b) => comparePrefixKeys(parseRange(a, 'x').key, parseRange(b, 'x').key));
  return { rt, fib: fib!, failing, stray, all };
}

function memoryIo(): CtlIo & { out: string; err: string } {
  const io = {
    out: '', err: '', env: {}, now: () => new Date(),
    stdout(s: string) { io.out += s; },
    stderr(s: string) { io.err += s; },
  };
  return io;
}

async function setup(t: Test): Promise<{ sock: string; server: ControlServer; table: ReturnType<typeof makeTable>; ctl: (argv: string[]) => Promise<{ code: number; out: string; err: string }> }> {
  const dir = mkdtempSync(join(tmpdir(), 'skc-fib-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'skein.sock');
  const table = makeTable();
  const server = new ControlServer({ path: sock });
  server.handle('fib', (p) => fibStream(parseFibQuery(p), { fib: table.fib, routes: table.rt, cfg: { table: 254, protocol: 201 } as never }));
  await server.listen();
  t.teardown(() => server.close(0));
  const ctl = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const io = memoryIo();
    const code = await runCtlCommand(['--socket', sock, ...argv], io);
    return { code, out: io.out, err: io.err };
  };
  return { sock, server, table, ctl };
}

const rowsOf = (jsonl: string): FibRouteJson[] => jsonl.split('\n').filter(Boolean).map((l) => JSON.parse(l) as FibRouteJson);

t.test('skeinctl fib: the whole table streamed in prefix order, as JSON lines, one document and text', async (t) => {
  const { ctl, table } = await setup(t);
  const l = await ctl(['fib', '--jsonl']);
  t.equal(l.code, EXIT.OK, l.err);
  const rows = rowsOf(l.out);
  t.same(rows.map((r) => r.prefix), table.all, 'every prefix once, in order (IPv4 first, then address, then length)');
  t.match(rows.find((r) => r.prefix === blockOf(0)), { desired: { type: 'blackhole' }, kernel: { type: 'blackhole' }, state: 'in-sync' });
  t.match(rows.find((r) => r.prefix === blockOf(7)), { desired: { type: 'blackhole' }, kernel: null, state: 'failed', error: 'EINVAL: refused by the test kernel' });
  t.match(rows.find((r) => r.prefix === table.stray), { desired: null, kernel: { type: 'unicast', nextHops: ['192.0.2.9'] }, state: 'pending' }, 'a route of ours nothing wants');

  const j = await ctl(['fib', '--json']);
  t.equal(j.code, EXIT.OK, j.err);
  const doc = JSON.parse(j.out) as FibJson;
  t.same([doc.enabled, doc.table, doc.protocol], [true, 254, 201]);
  t.same(doc.routes, rows, '--json carries the same rows');
  const failed = table.failing.size;
  t.same(doc.writer, { requestThreadRunning: true, requestThreadStarts: 2, directBatches: 5, nexthops: 1, resyncs: 1, overruns: 0, repairs: 0, errors: failed },
    '--json carries the writer\'s counters');
  t.same(doc.counts, { desired: BLOCKS + 2, installed: BLOCKS + 2 - failed + 1, pending: 1, failed }, 'the counts of the whole table');
  t.ok(failed >= 5, `some rows failed (${failed})`);

  const x = await ctl(['fib']);
  t.equal(x.code, EXIT.OK, x.err);
  const lines = x.out.split('\n');
  t.equal(lines[0], 'FIB: table 254, protocol 201');
  t.equal(lines[1], `writer: request thread running (started 2 times), 5 direct batches, 1 nexthop object, 1 resync, 0 overruns, 0 repairs, ${failed} refused messages`);
  t.match(lines[3], /^PREFIX +DESIRED +KERNEL +STATE$/);
  t.match(x.out, new RegExp(`\\n${table.all.length} routes: desired ${BLOCKS + 2}, installed ${BLOCKS + 2 - failed + 1}, pending 1, failed ${failed}\\n`));
  t.match(x.out, /\nFailures:\n {2}PREFIX +REASON\n {2}10\.64\.1\.192\/26 +EINVAL: refused by the test kernel\n/);
  t.equal(x.out.split('\nFailures:\n')[1]!.trim().split('\n').length, failed + 1, 'one failure line per refused prefix');
});

t.test('skeinctl fib: filters, count and paging', async (t) => {
  const { ctl, table } = await setup(t);
  const f = await ctl(['fib', '--state', 'failed', '--jsonl']);
  t.equal(f.code, EXIT.OK, f.err);
  t.same(rowsOf(f.out).map((r) => r.prefix), table.all.filter((p) => table.failing.has(p)), '--state failed: only the refused ones');
  t.same(JSON.parse((await ctl(['fib', '--state', 'failed', '--json'])).out).counts, { desired: table.failing.size, installed: 0, pending: 0, failed: table.failing.size }, 'counts of the rows matched');
  t.equal((await ctl(['fib', '--count'])).out, `${table.all.length}\n`);
  t.equal((await ctl(['fib', '--count', '--state', 'in-sync'])).out, `${BLOCKS + 2 - table.failing.size}\n`);
  t.same(JSON.parse((await ctl(['fib', '--count', '--json'])).out), { count: table.all.length });
  t.same(rowsOf((await ctl(['fib', '--family', 'ipv6', '--jsonl'])).out).map((r) => r.prefix), ['fd00:65::/122', 'fd00:65::40/122']);
  const within = rowsOf((await ctl(['fib', '--prefix-within', '10.64.1.0/24', '--jsonl'])).out).map((r) => r.prefix);
  t.same(within, ['10.64.1.0/26', '10.64.1.64/26', '10.64.1.128/26', '10.64.1.192/26'], '--prefix-within');
  // paging: the pages together are the listing, no row lost or repeated
  const seen: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 20; page++) {
    const r = await ctl(['fib', '--json', '--limit', '400', ...(after !== undefined ? ['--after', after] : [])]);
    t.equal(r.code, EXIT.OK, r.err);
    const doc = JSON.parse(r.out) as FibJson & { next?: string };
    seen.push(...doc.routes.map((x) => x.prefix));
    if (doc.next === undefined) break;
    t.equal(doc.next, doc.routes.at(-1)!.prefix, 'next names the last row of the page');
    after = doc.next;
  }
  t.same(seen, table.all, 'the pages together are the listing');
  t.match((await ctl(['fib', '--limit', '2'])).out, /\n2 routes: [^\n]*\nmore: add --after 10\.64\.0\.64\/26 for the next page\n$/);
});

t.test('skeinctl fib: usage errors and the daemon\'s refusals', async (t) => {
  const { ctl } = await setup(t);
  for (const argv of [['--state', 'broken'], ['--peer', '192.0.2.1'], ['--longer'], ['--received'], ['--family', 'ipx'], ['--limit', '0'],
    ['--after', '10.0.0.1'], ['--json', '--jsonl'], ['10.0.0.0/8'], ['--kinds', 'fib']]) {
    const r = await ctl(['fib', ...argv]);
    t.equal(r.code, EXIT.USAGE, `fib ${argv.join(' ')}: exit 2 (${r.err.split('\n')[0]})`);
    t.equal(r.out, '', 'nothing on stdout');
  }
  t.match((await ctl(['fib', '--peer', '192.0.2.1'])).err, /^skeinctl: fib: --peer applies to routes, not fib\n/);
  t.equal((await ctl(['status', '--state', 'failed'])).code, EXIT.USAGE, 'a fib option on another command');
  const bad = await ctl(['fib', '--prefix-within', '10.0.0.0/33']);
  t.equal(bad.code, EXIT.DAEMON_ERROR);
  t.match(bad.err, /bad prefix length/);
});

t.test('skeinctl fib | head: ends quietly, and the daemon stops making the answer', async (t) => {
  const { sock, server } = await setup(t);
  const r = await runCommand('bash', ['-c', 'set -o pipefail; node "$0" --socket "$1" fib --jsonl | head -n 3', skeinctl, sock], { timeoutMs: 60_000 });
  t.equal(r.code, 0, `pipeline exit status (stderr: ${r.err})`);
  t.equal(r.out.split('\n').filter(Boolean).length, 3);
  t.equal(r.err, '', 'no EPIPE, no stack trace');
  const deadline = Date.now() + 10_000;
  while (server.stats.active > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  t.equal(server.stats.active, 0, 'the request is over');
  t.ok(server.stats.cancelled >= 1, 'it was cancelled, not finished');
  const text = await runCommand('bash', ['-c', 'set -o pipefail; node "$0" --socket "$1" fib | head -n 1', skeinctl, sock], { timeoutMs: 60_000 });
  t.same([text.code, text.out, text.err], [0, 'FIB: table 254, protocol 201\n', '']);
  const two = await runCommand('bash', ['-c', 'set -o pipefail; node "$0" --socket "$1" fib | head -n 2', skeinctl, sock], { timeoutMs: 60_000 });
  t.match(two.out, /\nwriter: request thread running \(started 2 times\)/, 'the writer line follows the table line');
});

t.test('a real skeind answers fib as a stream (src/daemon.ts wiring), with the FIB off', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skc-fib-d-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = 41000 + (process.pid % 2000);
  const res = join(dir, 'resources.yaml');
  writeFileSync(res, [
    'kind: ClusterInformation\nmetadata: { name: default }\nspec: { datastoreReady: true }',
    'kind: BGPConfiguration\nmetadata: { name: default }\nspec: { asNumber: 64512, nodeToNodeMeshEnabled: false }',
    'kind: IPPool\nmetadata: { name: pods }\nspec: { cidr: 10.70.0.0/16, blockSize: 26 }',
    'kind: Node\nmetadata: { name: solo }\nspec: { bgp: { ipv4Address: 127.0.0.1/8 } }',
    'kind: BlockAffinity\nmetadata: { name: solo-10-70-1-0-26 }\nspec: { node: solo, cidr: 10.70.1.0/26, state: confirmed }',
  ].map((d) => `---\napiVersion: projectcalico.org/v3\n${d}\n`).join(''));
  const file = join(dir, 'skein.yaml');
  const sock = join(dir, 'solo.sock');
  writeFileSync(file, `nodeName: solo\ndatastore: { type: file, path: ${res} }\nbgp: { listen: { address: 127.0.0.1, port: ${port} } }\nfib: { enabled: false }\ncontrol: { socket: ${sock} }\nmetrics: { listen: "" }\n`);
  const d = new Daemon(loadDaemonConfig(file, {}), { logSink: () => undefined, env: {} });
  t.teardown(() => d.stop());
  await d.start();
  const ctl = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const io = memoryIo();
    const code = await runCtlCommand(['--socket', sock, ...argv], io);
    return { code, out: io.out, err: io.err };
  };
  const deadline = Date.now() + 20_000;
  let rows: FibRouteJson[] = [];
  while (Date.now() < deadline) {
    rows = rowsOf((await ctl(['fib', '--jsonl'])).out);
    if (rows.some((r) => r.prefix === '10.70.1.0/26')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.match(rows.find((r) => r.prefix === '10.70.1.0/26'), { desired: { type: 'blackhole' }, kernel: null }, 'the affine block, streamed as a row');
  const doc = JSON.parse((await ctl(['fib', '--json'])).out) as FibJson;
  t.same([doc.enabled, doc.routes.length > 0, typeof doc.counts.desired], [false, true, 'number'], '--json: the document with enabled false');
  t.equal(doc.writer, undefined, 'no writer counters without a FIB');
  const text = await ctl(['fib']);
  t.same([text.code, text.out], [EXIT.OK, 'FIB programming is disabled (fib.enabled: false): skein touches no kernel table.\n']);
});
