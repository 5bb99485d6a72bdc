// skein-bfdd, the BFD companion, on loopback (no root needed): the IPC protocol (bgp/bfd/ipc.ts) and its
// validation; a real companion (src/bfdd/server.ts) whose sessions run against a real BFD driver on 127.0.0.2;
// skeind's client (src/daemon/bfd-companion.ts). What must hold:
// - bad input from the socket, either way, never stops either side and never touches a running session;
// - a client that goes away leaves its sessions running (the peer never sees Down), and the next client adopts
//   them (the same discriminator: the same session);
// - a companion that restarts is re-synced by the client (every session added again, Up again);
// - an orphan no client adopts is removed with AdminDown, which the peer does not take for a failure;
// - bfd.companion auto / required / off choose as documented;
// - the skein-bfdd program: usage errors exit 2; SIGTERM says AdminDown; kill -9 is seen as a failure.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import net from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BfdUdpDriver, encodeIpc, IPC_VERSION, IpcError, LineReader, MAX_LINE, parseClientMessage, parseServerMessage,
  fromIpcSession, toIpcSession,
} from '../../bgp/index.js';
import type { BfdKey, BfdOutput, BfdParams, ServerMessage } from '../../bgp/index.js';
import { BfdCompanionServer } from '../../src/bfdd/server.js';
import { chooseBfdTransport, CompanionTransport } from '../../src/daemon/bfd-companion.js';
import { createLogger, type Logger } from '../../src/log.js';
import { ConfigError, parseDaemonConfig } from '../../config/index.js';
import { until } from '../helpers/netns.js';

// 50 ms × 10: fast, yet a loaded machine that leaves this process unscheduled for a few hundred ms (the companion
// and the peer share it in most tests) is not taken for a failure.
const FAST: BfdParams = { desiredMinTxUs: 50_000, requiredMinRxUs: 50_000, idleTxUs: 1_000_000, detectMult: 10 };
// Ports of their own so that a BFD daemon on this host, or another test, is never disturbed.
const PORTS = { singleHopPort: 23784 + (process.pid % 1000), multihopPort: 24784 + (process.pid % 1000) };
const keyC: BfdKey = { peer: '127.0.0.2', local: '127.0.0.1', interface: 'lo', multihop: false };
const keyP: BfdKey = { peer: '127.0.0.1', local: '127.0.0.2', interface: 'lo', multihop: false };
const BFDD = join(`${import.meta.dirname}/..`, '..', 'dist', 'src', 'skein-bfdd.js');

const quiet = (): Logger => createLogger({ level: 'error', sink: () => undefined });
function recorder(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: 'debug', sink: (l) => lines.push(l) }), lines };
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tmpSocket(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'skein-bfdd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'bfd.sock');
}

/** The peer: a plain BFD driver on 127.0.0.2 that records what its session went through. */
async function peer(t: Test): Promise<{ d: BfdUdpDriver; events: BfdOutput[] }> {
  const events: BfdOutput[] = [];
  const d = new BfdUdpDriver({ ...PORTS, onEvent: (e) => { if (e.type !== 'discard') events.push(e); }, onError: () => undefined });
  t.teardown(() => d.close());
  await d.add(keyP, FAST);
  return { d, events };
}

async function companion(t: Test, socketPath: string, orphanTimeoutMs = 60_000): Promise<BfdCompanionServer> {
  const s = new BfdCompanionServer({ socketPath, log: quiet(), orphanTimeoutMs, ...PORTS });
  await s.start();
  t.teardown(() => s.close());
  return s;
}

function client(t: Test, socketPath: string, events: BfdOutput[] = []): CompanionTransport {
  const c = new CompanionTransport(socketPath, quiet(), (e) => events.push(e));
  t.teardown(() => c.close());
  return c;
}

/** A raw connection that collects the companion's replies. */
async function raw(t: Test, socketPath: string): Promise<{ s: net.Socket; got: ServerMessage[]; closed: () => boolean }> {
  const s = net.connect(socketPath);
  const got: ServerMessage[] = [];
  const reader = new LineReader();
  let closed = false;
  s.on('data', (d) => {
    for (const l of reader.push(d)) got.push(parseServerMessage(l));
  });
  s.on('error', () => undefined);
  s.on('close', () => { closed = true; });
  t.teardown(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  return { s, got, closed: () => closed };
}

// ------------------------------------------------------------------ the protocol, pure

t.test('ipc: client messages are validated field by field, with a code and the reason', async (t) => {
  const bad: [string, string, RegExp][] = [
    ['{', 'BAD_JSON', /not JSON/],
    ['[1,2]', 'BAD_MESSAGE', /object/],
    ['{"id":1}', 'BAD_MESSAGE', /type/],
    ['{"type":"launch","id":1}', 'UNKNOWN_TYPE', /launch/],
    ['{"type":"hello"}', 'BAD_MESSAGE', /version/],
    ['{"type":"sessions","id":-1}', 'BAD_MESSAGE', /id/],
    ['{"type":"remove","id":1,"key":{"peer":"10.0.0.1; rm -rf /","local":"127.0.0.1","multihop":false}}', 'BAD_KEY', /peer/],
    ['{"type":"remove","id":1,"key":{"peer":"10.0.0.1","local":"fd00::1","multihop":false}}', 'BAD_KEY', /families/],
    ['{"type":"remove","id":1,"key":{"peer":"10.0.0.1","local":"10.0.0.2","interface":"a-very-long-interface-name","multihop":false}}', 'BAD_KEY', /interface/],
    ['{"type":"remove","id":1,"key":{"peer":"10.0.0.1","local":"10.0.0.2","multihop":"yes"}}', 'BAD_KEY', /multihop/],
    ['{"type":"add","id":1,"key":{"peer":"10.0.0.1","local":"10.0.0.2","multihop":false},"params":{"desiredMinTxUs":0,"requiredMinRxUs":1,"idleTxUs":1,"detectMult":3}}', 'BAD_PARAMS', /desiredMinTxUs/],
    ['{"type":"add","id":1,"key":{"peer":"10.0.0.1","local":"10.0.0.2","multihop":false},"params":{"desiredMinTxUs":1,"requiredMinRxUs":1,"idleTxUs":1,"detectMult":256}}', 'BAD_PARAMS', /detectMult/],
    ['{"type":"add","id":1,"key":{"peer":"10.0.0.1","local":"10.0.0.2","multihop":false},"params":{"desiredMinTxUs":"50000","requiredMinRxUs":1,"idleTxUs":1,"detectMult":3}}', 'BAD_PARAMS', /desiredMinTxUs/],
  ];
  for (const [line, code, reason] of bad) {
    const err = (() => {
      try {
        parseClientMessage(line);
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    t.ok(err instanceof IpcError, `${line.slice(0, 60)}: refused`);
    t.equal((err as IpcError).code, code, `code ${code}`);
    t.match((err as IpcError).message, reason);
  }
  const ok = parseClientMessage(JSON.stringify({ type: 'add', id: 7, key: keyC, params: FAST, extra: 1 }));
  t.same(ok, { type: 'add', id: 7, key: keyC, params: FAST }, 'a good add, unknown fields dropped');
});

t.test('ipc: any line, from either side, parses or throws IpcError — nothing else', async (t) => {
  const anyJson = fc.jsonValue().map((v) => JSON.stringify(v));
  const shaped = fc.record({
    type: fc.constantFrom('hello', 'add', 'update', 'remove', 'sessions', 'ok', 'error', 'event', 'x'),
    id: fc.oneof(fc.integer(), fc.string(), fc.constant(null)),
    version: fc.oneof(fc.constant(IPC_VERSION), fc.integer()),
    key: fc.oneof(fc.constant(keyC), fc.jsonValue()),
    params: fc.oneof(fc.constant(FAST), fc.jsonValue()),
    sessions: fc.oneof(fc.constant([]), fc.jsonValue()),
    event: fc.jsonValue(),
  }, { requiredKeys: ['type'] }).map((v) => JSON.stringify(v));
  fc.assert(fc.property(fc.oneof(fc.string(), anyJson, shaped), (line) => {
    for (const parse of [parseClientMessage, parseServerMessage]) {
      try {
        parse(line);
      } catch (e) {
        if (!(e instanceof IpcError)) throw e;
      }
    }
  }), { numRuns: 3000 });
  t.pass('3000 lines each way');
});

t.test('ipc: lines are framed, and one over the limit is an error (no resynchronising inside a line)', async (t) => {
  const r = new LineReader();
  t.same(r.push('{"a":1}\n{"b"'), ['{"a":1}']);
  t.same(r.push(':2}\n\n'), ['{"b":2}'], 'a line split across chunks, empty lines skipped');
  t.throws(() => r.push('x'.repeat(MAX_LINE + 1)), { code: 'LINE_TOO_LONG' });
  t.throws(() => new LineReader().push(`${'y'.repeat(MAX_LINE + 1)}\n`), { code: 'LINE_TOO_LONG' });
});

t.test('ipc: a session crosses with wall-clock time and comes back on the receiver\'s monotonic clock', async (t) => {
  const info = {
    key: keyC, state: 'Up' as const, remoteState: 'Up' as const, localDiag: 0, localDiscriminator: 5, remoteDiscriminator: 6,
    remoteDiag: 0, remoteControlPlaneIndependent: true, desiredMinTxUs: 1, requiredMinRxUs: 1, detectMult: 3, txIntervalUs: 1,
    detectTimeUs: 3, remoteMinTxUs: 1, remoteMinRxUs: 1, remoteDetectMult: 3, pollActive: false, since: 1000, upCount: 1,
    downCount: 0, lastDownReason: '', timerLateMaxMs: 12.5, lateTimers: 2,
  };
  const wire = toIpcSession(info, 5000, 1_700_000_000_000); // since: 4 s before the sender's "now"
  t.equal(wire.sinceEpochMs, 1_700_000_000_000 - 4000);
  const back = fromIpcSession(JSON.parse(JSON.stringify(wire)) as typeof wire, 90_000, 1_700_000_001_000);
  t.equal(back.since, 90_000 - 5000, 'still 4 s before the sender\'s now, 5 s before the receiver\'s (1 s later)');
  t.match(back, { timerLateMaxMs: 12.5, lateTimers: 2 }, 'our own timer lateness crosses too');
});

// ------------------------------------------------------------------ a real companion

t.test('a client adds a session; the companion runs it Up with the peer, C bit set', async (t) => {
  const path = tmpSocket(t);
  const p = await peer(t);
  const srv = await companion(t, path);
  const events: BfdOutput[] = [];
  const c = client(t, path, events);
  await c.connect();
  await c.add(keyC, FAST);
  await until(() => c.sessions()[0]?.state === 'Up' && p.d.manager.get(keyP)?.state === 'Up', 'Up on both sides', 10_000);
  await until(() => events.some((e) => e.type === 'up'), 'the client heard the up event', 5_000);
  t.equal(p.d.manager.get(keyP)?.remoteControlPlaneIndependent, true, 'the peer sees C=1 (RFC 5880 §6.8.7: no shared fate with skeind)');
  t.same(srv.owned().map((o) => o.owned), [true], 'owned by the client');
});

t.test('bad input on the socket never stops the companion nor touches a running session', async (t) => {
  const path = tmpSocket(t);
  const p = await peer(t);
  const srv = await companion(t, path);
  const c = client(t, path);
  await c.connect();
  await c.add(keyC, FAST);
  await until(() => p.d.manager.get(keyP)?.state === 'Up', 'Up', 10_000);
  const downsBefore = p.events.filter((e) => e.type === 'down').length;

  // A connection that never says hello.
  const a = await raw(t, path);
  a.s.write('{"type":"sessions","id":3}\n');
  a.s.write('not json at all\n');
  a.s.write(Buffer.from([0xff, 0xfe, 0x00, 0x0a]));
  a.s.write(`${JSON.stringify({ type: 'remove', id: 4, key: keyC })}\n`);
  await until(() => a.got.length >= 4, 'four replies', 5_000);
  t.same(a.got.map((m) => (m.type === 'error' ? m.code : m.type)), ['NO_HELLO', 'BAD_JSON', 'BAD_JSON', 'NO_HELLO']);
  t.equal((a.got[0] as { id: number | null }).id, 3, 'the error carries the request id');

  // The wrong protocol version: refused and closed.
  const b = await raw(t, path);
  b.s.write(`${JSON.stringify({ type: 'hello', version: IPC_VERSION + 1, client: 'future' })}\n`);
  await until(() => b.closed(), 'closed after a version mismatch', 5_000);
  t.match(b.got[0], { type: 'error', code: 'VERSION' });

  // An over-long line: an error, then the connection is closed.
  const d = await raw(t, path);
  d.s.write('z'.repeat(MAX_LINE + 10));
  await until(() => d.closed(), 'closed after an over-long line', 5_000);
  t.match(d.got[0], { type: 'error', code: 'LINE_TOO_LONG' });

  // Still serving: the session is Up, owned by the real client, which still gets answers.
  t.equal(p.d.manager.get(keyP)?.state, 'Up', 'the peer\'s session is still Up');
  t.equal(p.events.filter((e) => e.type === 'down').length, downsBefore, 'and never went down');
  t.same(srv.owned().map((o) => o.owned), [true]);
  await c.add(keyC, { ...FAST, detectMult: 12 });
  await until(() => p.d.manager.get(keyP)?.remoteDetectMult === 12, 'the real client\'s update reached the peer', 5_000);
  t.ok(srv.stats.badMessages >= 3, `unreadable lines counted (${srv.stats.badMessages})`);
});

t.test('a bad companion never crashes the client: garbage is ignored, an over-long line reconnects', async (t) => {
  const path = tmpSocket(t);
  let conns = 0;
  const server = net.createServer((s) => {
    conns++;
    s.on('error', () => undefined);
    s.on('data', () => {
      if (conns === 1) {
        s.write('garbage\n{"type":"event","event":{"type":"up"}}\n{"type":"hello","version":1,"sessions":"many"}\n');
        s.write(encodeIpc({ type: 'hello', version: IPC_VERSION, server: 'fake', pid: 1, sessions: [] }));
        s.write('{"type":"sessions","id":null,"sessions":[{"key":{"peer":"x"}}]}\n');
        s.write(`${'q'.repeat(MAX_LINE + 5)}\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const c = client(t, path);
  await c.connect();
  await c.add(keyC, FAST); // fire and forget towards a server that never answers: queued or pending, not thrown
  await until(() => conns >= 2, 'the client reconnected after the over-long line', 10_000);
  t.ok(c.stats.badMessages >= 4, `bad messages counted (${c.stats.badMessages})`);
  t.same(c.sessions(), [], 'nothing made up from garbage');
});

t.test('the client goes away: the session keeps running; the next client adopts it, the peer never sees Down', async (t) => {
  const path = tmpSocket(t);
  const p = await peer(t);
  const srv = await companion(t, path);
  const c1 = client(t, path);
  await c1.connect();
  await c1.add(keyC, FAST);
  await until(() => p.d.manager.get(keyP)?.state === 'Up', 'Up', 10_000);
  const discr = p.d.manager.get(keyP)!.remoteDiscriminator;
  await c1.close(); // skeind killed: its socket closes
  await until(() => srv.owned()[0]?.owned === false, 'orphaned', 5_000);
  await sleep(1500); // three Detection Times (500 ms)
  t.equal(p.d.manager.get(keyP)?.state, 'Up', 'still Up at the peer while no client is attached');
  const events: BfdOutput[] = [];
  const c2 = client(t, path, events);
  await c2.connect();
  t.same(c2.sessions(), [], 'a new client shows only what it added');
  await c2.add(keyC, FAST);
  await until(() => c2.sessions()[0]?.state === 'Up', 'adopted, Up', 5_000);
  t.equal(srv.stats.adopted, 1, 'adopted, not re-created');
  t.equal(p.d.manager.get(keyP)!.remoteDiscriminator, discr, 'the same session (same discriminator)');
  t.notOk(p.events.some((e) => e.type === 'down'), 'the peer never saw Down');
  t.notOk(events.some((e) => e.type === 'down'), 'nor did the new client get a down event');
});

t.test('a newer client takes over; the older one is disconnected and refused', async (t) => {
  const path = tmpSocket(t);
  await peer(t);
  const srv = await companion(t, path);
  const c1 = client(t, path);
  await c1.connect();
  await c1.add(keyC, FAST);
  const c2 = client(t, path);
  await c2.connect();
  await until(() => !c1.connected || srv.owned()[0]?.owned === false, 'the first client let go', 5_000);
  await c2.add(keyC, FAST);
  t.same(srv.owned().map((o) => o.owned), [true], 'owned again, by the newer client');
  t.equal(srv.stats.adopted, 1);
});

t.test('an orphan nobody adopts is removed with AdminDown, which the peer does not count as a failure', async (t) => {
  const path = tmpSocket(t);
  const p = await peer(t);
  const srv = await companion(t, path, 300);
  const c = client(t, path);
  await c.connect();
  await c.add(keyC, FAST);
  await until(() => p.d.manager.get(keyP)?.state === 'Up', 'Up', 10_000);
  await c.close();
  await until(() => srv.owned().length === 0, 'the orphan was removed', 10_000);
  await until(() => p.d.manager.get(keyP)?.remoteState === 'AdminDown', 'the peer heard AdminDown', 5_000);
  const down = p.events.find((e) => e.type === 'down');
  t.equal(down?.type === 'down' ? down.diag : -1, 3, 'the peer\'s session went down with "Neighbor Signaled Session Down", not a detection timeout');
  t.equal(srv.stats.orphansRemoved, 1);
});

t.test('the companion restarts: the client reconnects, re-adds its sessions, and they come Up again', async (t) => {
  const path = tmpSocket(t);
  const p = await peer(t);
  const srv1 = new BfdCompanionServer({ socketPath: path, log: quiet(), ...PORTS });
  await srv1.start();
  const events: BfdOutput[] = [];
  const c = client(t, path, events);
  await c.connect();
  await c.add(keyC, FAST);
  await until(() => p.d.manager.get(keyP)?.state === 'Up', 'Up', 10_000);
  const firstDiscr = p.d.manager.get(keyP)!.remoteDiscriminator;
  await srv1.close(); // as kill -9: the sockets close, nothing is said
  await until(() => !c.connected, 'the client noticed', 5_000);
  await until(() => p.d.manager.get(keyP)?.state === 'Down', 'the peer detected the companion\'s death', 5_000);
  const srv2 = await companion(t, path); // the socket file is left behind, as after a crash: replaced
  await until(() => c.connected, 'reconnected', 10_000);
  await until(() => srv2.owned().length === 1 && p.d.manager.get(keyP)?.state === 'Up', 're-synced and Up again', 10_000);
  t.not(p.d.manager.get(keyP)!.remoteDiscriminator, firstDiscr, 'a new session (the old one died with its process)');
  t.ok(c.stats.resyncs >= 1, 'the client re-synced');
  await until(() => c.sessions()[0]?.state === 'Up', 'the client\'s view is Up', 5_000);
});

t.test('the companion refuses to take the socket of a live companion, and a file that is not a socket', async (t) => {
  const path = tmpSocket(t);
  await companion(t, path);
  const second = new BfdCompanionServer({ socketPath: path, log: quiet(), ...PORTS });
  await t.rejects(second.start(), /another skein-bfdd is listening/);
  const file = `${path}.file`;
  writeFileSync(file, 'x');
  const third = new BfdCompanionServer({ socketPath: file, log: quiet(), ...PORTS });
  await t.rejects(third.start(), /not a socket/);
});

// ------------------------------------------------------------------ bfd.companion: auto / required / off

t.test('skein.yaml bfd: defaults, values, and clear errors', async (t) => {
  const d = parseDaemonConfig('nodeName: host-a\n', '/x/skein.yaml', {});
  t.same(d.bfd, { companion: 'auto', socket: '/run/skein-bfd/bfd.sock' }, 'default: auto, the companion\'s default socket');
  t.same(parseDaemonConfig('bfd: { companion: required, socket: /run/x/b.sock }\n', '/x', {}).bfd, { companion: 'required', socket: '/run/x/b.sock' });
  t.equal(parseDaemonConfig('bfd: { companion: off }\n', '/x', {}).bfd.companion, 'off');
  const cases: [string, string, RegExp][] = [
    ['bfd:\n  companion: maybe\n', 'bfd.companion', /expected one of/],
    ['bfd:\n  socket: bfd.sock\n', 'bfd.socket', /absolute path/],
    ['bfd:\n  companions: auto\n', 'bfd.companions', /did you mean "companion"/],
  ];
  for (const [text, field, reason] of cases) {
    let e: unknown;
    try {
      parseDaemonConfig(text, '/etc/skein/skein.yaml', {});
    } catch (x) {
      e = x;
    }
    if (!(e instanceof ConfigError)) {
      t.fail(`${field}: expected a ConfigError, got ${String(e)}`);
      continue;
    }
    t.match(e.message, new RegExp(`^/etc/skein/skein\\.yaml:2:\\d+: ${field.replace('.', '\\.')}: `), `${field}: file, line, field`);
    t.match(e.message, reason);
  }
});


t.test('bfd.companion: auto uses an answering companion, falls back to in-process without one; off never asks', async (t) => {
  const path = tmpSocket(t);
  const srv = await companion(t, path);
  // A key nobody answers, on an address of its own, so the in-process driver's default ports collide with nothing.
  const lonely: BfdKey = { peer: '127.0.0.9', local: `127.${(process.pid >> 8) % 200 + 20}.${process.pid % 250}.1`, interface: 'lo', multihop: false };

  const r1 = recorder();
  const auto = chooseBfdTransport({ companion: 'auto', socket: path }, r1.log)(() => undefined, () => undefined);
  t.teardown(() => auto.close());
  t.equal(auto.runsIn(), 'undecided', 'nothing chosen before the first session');
  await auto.add(keyC, FAST);
  t.equal(auto.runsIn(), 'skein-bfdd', 'skeinctl bfd will say the companion runs it');
  await until(() => srv.owned().length === 1, 'the session runs in the companion', 5_000);
  t.match(r1.lines.join(''), /bfd runs in skein-bfdd/);

  const r2 = recorder();
  const fallback = chooseBfdTransport({ companion: 'auto', socket: join(path, '..', 'absent.sock') }, r2.log)(() => undefined, () => undefined);
  t.teardown(() => fallback.close());
  await fallback.add(lonely, FAST);
  t.equal(fallback.sessions().length, 1, 'in-process session');
  t.equal(fallback.runsIn(), 'skeind', 'and says so');
  t.match(r2.lines.join(''), /does not answer: bfd runs in skeind/);

  const r3 = recorder();
  const off = chooseBfdTransport({ companion: 'off', socket: path }, r3.log)(() => undefined, () => undefined);
  t.teardown(() => off.close());
  const before = srv.stats.connections;
  await off.add({ ...lonely, peer: '127.0.0.10', local: lonely.local.replace(/\.1$/, '.2') }, FAST); // a driver of its own: its own address
  t.equal(srv.stats.connections, before, 'off: the companion was never contacted');
  t.equal(off.sessions().length, 1);
  t.equal(off.runsIn(), 'skeind');
});

t.test('bfd.companion: required waits for the companion and adds the sessions once it answers', async (t) => {
  const path = tmpSocket(t);
  const p = await peer(t);
  const r = recorder();
  const req = chooseBfdTransport({ companion: 'required', socket: path }, r.log)(() => undefined, () => undefined);
  t.teardown(() => req.close());
  await req.add(keyC, FAST); // no companion yet: accepted, waiting
  t.match(r.lines.join(''), /required but skein-bfdd does not answer/);
  t.same(req.sessions(), []);
  t.equal(req.runsIn(), 'skein-bfdd', 'required: the sessions belong to the companion even while it is away');
  const srv = await companion(t, path);
  await until(() => srv.owned().length === 1 && p.d.manager.get(keyP)?.state === 'Up', 'added once the companion answered, Up', 10_000);
});

// ------------------------------------------------------------------ the program

t.test('skein-bfdd: usage errors exit 2 with one line', async (t) => {
  for (const args of [['--bogus'], ['--socket', 'relative.sock'], ['--orphan-timeout', 'soon'], ['--log-level', 'loud']]) {
    const r = spawnSync(process.execPath, [BFDD, ...args], { encoding: 'utf8', timeout: 10_000 });
    t.equal(r.status, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, /^skein-bfdd: /);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const v = spawnSync(process.execPath, [BFDD, '--version'], { encoding: 'utf8', timeout: 10_000 });
  t.equal(v.status, 0);
  t.match(v.stdout, /^skein-bfdd \d/);
});

t.test('skein-bfdd: SIGTERM says AdminDown and exits 0; kill -9 is detected by the peer as a failure', async (t) => {
  const path = tmpSocket(t);
  const p = await peer(t);
  const start = (): ReturnType<typeof spawn> => {
    const child = spawn(process.execPath, [BFDD, '--socket', path, '--single-hop-port', String(PORTS.singleHopPort), '--multihop-port', String(PORTS.multihopPort)], { stdio: ['ignore', 'ignore', 'inherit'] });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    return child;
  };
  const exited = (child: ReturnType<typeof spawn>): Promise<number | string | null> =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode ?? child.signalCode) : new Promise((r) => child.once('exit', (code, sig) => r(code ?? sig)));

  const one = start();
  const c = client(t, path);
  await until(async () => {
    try {
      await c.connect();
      return true;
    } catch {
      return false;
    }
  }, 'the program listens', 10_000, 100);
  await c.add(keyC, FAST);
  await until(() => p.d.manager.get(keyP)?.state === 'Up', 'Up', 10_000);
  one.kill('SIGTERM');
  t.equal(await exited(one), 0, 'exit 0 on SIGTERM');
  await until(() => p.d.manager.get(keyP)?.remoteState === 'AdminDown', 'the peer heard AdminDown', 5_000);
  const d1 = p.events.filter((e) => e.type === 'down').at(-1);
  t.equal(d1?.type === 'down' ? d1.diag : -1, 3, 'Neighbor Signaled Session Down: no failure');

  const two = start(); // the client re-syncs by itself
  await until(() => p.d.manager.get(keyP)?.state === 'Up', 'Up again with the restarted companion', 15_000);
  two.kill('SIGKILL');
  await exited(two);
  await until(() => p.d.manager.get(keyP)?.state === 'Down', 'the peer detected the loss', 5_000);
  const d2 = p.events.filter((e) => e.type === 'down').at(-1);
  t.equal(d2?.type === 'down' ? d2.diag : -1, 1, 'Control Detection Time Expired: a failure, as at a power loss');
});
