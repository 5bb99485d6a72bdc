// The control socket and skeinctl's daemon commands, against real UNIX sockets: request/response round trips,
// concurrent and pipelined clients, bad and oversized requests, the socket file's life (stale file replaced,
// live daemon refused, mode and group, removal on close), client errors, and every skeinctl command with its
// text rendering, --json pass-through and exit codes — in-process, and through a spawned node process.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ControlClientError, ControlError, ControlServer, callControl, parseGroupFile, probeSocket, resolveGroup,
} from '../../src/control/index.js';
import { EXIT, ShapeError, USAGE, ctlCommandOf, renderFib, renderPeers, renderRoutes, renderStatus, humaneDuration, humaneSince, isCtlCommand, parseCtlArgs, runCtlCommand } from '../../src/ctl/index.js';
import type { CtlIo } from '../../src/ctl/index.js';
import { createLogger } from '../../src/log.js';
import { requires } from '../helpers/env.js';
import { runCommand, type RunResult } from '../helpers/run.js';
import { FIB, NOW, PEERS, RELOAD, ROUTES, STATUS, fixtureServer } from './fixtures.js';

const root = join(`${import.meta.dirname}/..`, '..');

function tmp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'skc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Sends raw lines on one connection and collects the response lines until `count` arrived or the peer ends. */
function raw(path: string, payload: string | Buffer, count: number): Promise<{ lines: Record<string, unknown>[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect({ path });
    let buf = '';
    const lines: Record<string, unknown>[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no ${count} answers: got ${JSON.stringify(lines)}`));
    }, 5000);
    const done = (ended: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ lines, ended });
    };
    s.on('connect', () => s.write(payload));
    s.on('error', reject);
    s.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
      if (lines.length >= count) done(false);
    });
    s.on('end', () => done(true));
  });
}

/** Runs a program without blocking this process's event loop (which serves the socket it talks to). */
const run = (cmd: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> => runCommand(cmd, args, { env });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('control: round trips, errors, pipelining, concurrency', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'skein.sock');
  const lines: string[] = [];
  const server = new ControlServer({ path, log: createLogger({ sink: (l) => lines.push(l) }) });
  server
    .handle('echo', (p) => ({ got: p }))
    .handle('slow', async (p) => {
      await sleep(Number(p.ms ?? 0));
      return { id: p.tag };
    })
    .handle('void', () => undefined)
    .handle('refuse', () => {
      throw new ControlError('fib is disabled', 'fib-disabled');
    })
    .handle('broken', () => {
      throw new TypeError('cannot read x of undefined');
    });
  await server.listen();
  t.teardown(() => server.close());

  t.same(await callControl(path, 'echo', { a: [1, 'two'], n: null }), { got: { a: [1, 'two'], n: null } });
  t.equal(await callControl(path, 'void'), null, 'undefined becomes null');
  await t.rejects(callControl(path, 'refuse'), { name: 'ControlClientError', kind: 'remote', code: 'fib-disabled', message: 'fib is disabled' });
  await t.rejects(callControl(path, 'broken'), { kind: 'remote', code: 'internal', message: 'cannot read x of undefined' });
  t.match(lines.join(''), /"msg":"control handler failed","method":"broken"/, 'an unexpected handler error is logged');
  await t.rejects(callControl(path, 'nope'), { kind: 'remote', code: 'unknown-method', message: /unknown method "nope" \(known: broken, echo, refuse, slow, void\)/ });

  // Two requests on one connection: the slow one answers last, each answer carries its own id.
  const piped = await raw(path, '{"id":1,"method":"slow","params":{"ms":150,"tag":"a"}}\n{"id":"two","method":"slow","params":{"ms":0,"tag":"b"}}\n', 2);
  t.same(piped.lines, [{ id: 'two', result: { id: 'b' } }, { id: 1, result: { id: 'a' } }]);

  // Bad requests get an error answer and the connection stays usable.
  const bad = await raw(path, 'not json\n{"method":"echo"}\n{"id":3,"method":"echo","params":[1]}\n{"id":4,"method":"echo"}\n', 4);
  t.same(bad.lines.map((l) => [l.id, (l.error as { code?: string } | undefined)?.code ?? 'ok']), [
    [null, 'bad-request'], [null, 'bad-request'], [3, 'bad-request'], [4, 'ok'],
  ]);
  t.same(bad.lines[3], { id: 4, result: { got: {} } });

  // Many clients at once, each answered with its own result.
  const n = 100;
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => callControl(path, 'slow', { ms: (i * 7) % 30, tag: i })),
  );
  t.same(results, Array.from({ length: n }, (_, i) => ({ id: i })));
});

t.test('control: connections beyond the limit are refused, the rest are served', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'm.sock');
  const server = new ControlServer({ path, maxConnections: 2 });
  server.handle('slow', async () => {
    await sleep(100);
    return 'ok';
  });
  await server.listen();
  t.teardown(() => server.close());
  const all = await Promise.allSettled(Array.from({ length: 6 }, () => callControl(path, 'slow')));
  const served = all.filter((r) => r.status === 'fulfilled');
  const refused = all.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.ok(served.length >= 2 && served.length < 6, `some served (${served.length}), some refused`);
  t.ok(refused.every((r) => r.reason instanceof ControlClientError), 'refusals are ControlClientErrors');
  t.equal(await callControl(path, 'slow'), 'ok', 'served again once the others are done');
});

t.test('control: idle clients are shed before a new one is locked out', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'i.sock');
  const server = new ControlServer({ path, maxConnections: 4 });
  server.handle('ping', () => 'pong');
  await server.listen();
  t.teardown(() => server.close());
  // four clients connect and never send anything
  const idle = await Promise.all(Array.from({ length: 4 }, () => new Promise<Socket>((res, rej) => {
    const s = connect(path, () => res(s));
    s.on('error', rej);
  })));
  const closed = idle.map((s) => new Promise<void>((res) => s.on('close', () => res())));
  t.teardown(() => { for (const s of idle) s.destroy(); });
  // A connection counts as idle only after a moment of silence (one that just connected is about to ask).
  await sleep(1200);
  t.equal(await callControl(path, 'ping'), 'pong', 'a new client is served');
  await Promise.race([Promise.any(closed), sleep(5000)]);
  t.ok(idle.some((s) => s.destroyed || s.readyState === 'closed'), 'an idle one was shed for it');
});

t.test('control: oversized requests are refused without buffering them', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 's.sock');
  const server = new ControlServer({ path, maxRequestBytes: 1024 });
  server.handle('echo', (p) => p);
  await server.listen();
  t.teardown(() => server.close());

  // No newline ever: the server answers once the limit is passed and hangs up.
  const endless = await raw(path, Buffer.alloc(4096, 0x61), 1);
  t.same(endless.lines, [{ id: null, error: { message: 'request too large (limit 1024 bytes)', code: 'too-large' } }]);
  // A complete line over the limit, in one chunk.
  const big = JSON.stringify({ id: 1, method: 'echo', params: { pad: 'x'.repeat(2000) } });
  const line = await raw(path, `${big}\n`, 1);
  t.equal((line.lines[0]?.error as { code: string }).code, 'too-large');
  // Just under the limit still works, and the server serves others afterwards.
  const fits = { pad: 'y'.repeat(900) };
  t.same(await callControl(path, 'echo', fits), fits);
});

t.test('control: socket file — directory, mode, group, stale file, live daemon, removal', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'run', 'skein', 'skein.sock');
  const group = process.getuid?.() === 0 && parseGroupFile(readFileSync('/etc/group', 'utf8'), 'daemon') !== undefined ? 'daemon' : undefined;
  const server = new ControlServer({ path, ...(group ? { group } : {}) });
  server.handle('ping', () => 'pong');
  await server.listen();
  t.teardown(() => server.close());

  t.equal(statSync(join(dir, 'run', 'skein')).mode & 0o777, 0o755, 'directory created 0755');
  const st = lstatSync(path);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o660, 'socket mode 0660');
  if (group) {
    t.equal(st.gid, await resolveGroup('daemon'), 'group applied (as root)');
    t.equal(st.uid, 0, 'owned by root');
  } else t.comment('not root: group ownership not checked');

  // A second daemon on the same path refuses to start and leaves the first one working.
  const second = new ControlServer({ path });
  await t.rejects(second.listen(), { message: `another skeind is already answering on ${path}` });
  t.equal(await callControl(path, 'ping'), 'pong');
  t.equal(await probeSocket(path), 'live');

  // Close removes the file.
  await server.close();
  t.notOk(existsSync(path), 'socket removed on close');
  await t.rejects(callControl(path, 'ping'), { kind: 'unreachable', code: 'ENOENT', message: /daemon not reachable: no control socket at .*is skeind running/ });

  // A daemon killed with SIGKILL leaves its socket file behind: the next start replaces it.
  const child = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.equal(child.signal, 'SIGKILL');
  t.ok(lstatSync(path).isSocket(), 'stale socket left behind');
  t.equal(await probeSocket(path), 'stale');
  await t.rejects(callControl(path, 'ping'), { kind: 'unreachable', code: 'ECONNREFUSED', message: /nothing is listening/ });
  const lines: string[] = [];
  const third = new ControlServer({ path, log: createLogger({ sink: (l) => lines.push(l) }) });
  third.handle('ping', () => 'pong again');
  await third.listen();
  t.teardown(() => third.close());
  t.equal(await callControl(path, 'ping'), 'pong again');
  t.match(lines.join(''), /removed a stale control socket/);

  // Something that is not a socket is never deleted.
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'precious');
  await t.rejects(new ControlServer({ path: file }).listen(), { message: /refusing to replace .*not a socket/ });
  t.equal(readFileSync(file, 'utf8'), 'precious');

  // An unknown group is a startup error naming it.
  await t.rejects(new ControlServer({ path: join(dir, 'g.sock'), group: 'no-such-group-skein' }).listen(), { message: /no group named "no-such-group-skein"/ });
});

t.test('control: close lets a request in flight finish', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'c.sock');
  const server = new ControlServer({ path });
  server.handle('slow', async () => {
    await sleep(100);
    return 'finished';
  });
  await server.listen();
  const pending = callControl(path, 'slow');
  await sleep(20);
  await server.close();
  t.equal(await pending, 'finished');
  t.notOk(existsSync(path));
});

t.test('control: group resolution and client timeouts', async (t) => {
  t.equal(await resolveGroup('root'), 0);
  t.equal(await resolveGroup('1234'), 1234);
  t.equal(await resolveGroup(42), 42);
  await t.rejects(resolveGroup(-1), /not a valid gid/);
  const dir = tmp(t);
  const groupFile = join(dir, 'group');
  writeFileSync(groupFile, '# comment\nroot:x:0:\nskein:x:998:alice,bob\nbroken:x:notanumber:\n');
  t.equal(parseGroupFile(readFileSync(groupFile, 'utf8'), 'skein'), 998);
  t.equal(parseGroupFile(readFileSync(groupFile, 'utf8'), 'broken'), undefined);
  t.equal(parseGroupFile(readFileSync(groupFile, 'utf8'), 'ski'), undefined, 'whole names only');

  // A daemon that accepts but never answers: the client gives up and calls it unreachable.
  const path = join(dir, 't.sock');
  const server = new ControlServer({ path });
  server.handle('hang', () => new Promise(() => undefined));
  await server.listen();
  t.teardown(() => server.close(0));
  await t.rejects(callControl(path, 'hang', {}, 200), { kind: 'unreachable', code: 'ETIMEDOUT', message: /no answer on .* within 200 ms/ });
  t.ok(new ControlClientError('protocol', 'x') instanceof Error);
});

t.test('control client: a peer that is not a skeind gets a protocol error (skeinctl exit 1)', async (t) => {
  const dir = tmp(t);
  const answers: Record<string, string | null> = {
    garbage: 'HTTP/1.1 400 Bad Request\r\n\r\n\n',
    scalar: '42\n',
    wrongId: '{"id":-1,"result":{}}\n',
    noResult: '{"id":"ID"}\n',
    silent: null,
  };
  for (const [name, answer] of Object.entries(answers)) {
    const path = join(dir, `${name}.sock`);
    const fake = createServer((s) => {
      s.once('data', (d) => {
        const id = (JSON.parse(d.toString()) as { id: number }).id;
        if (answer === null) s.end();
        else s.end(answer.replace('"ID"', String(id)));
      });
    });
    await new Promise<void>((r) => fake.listen(path, r));
    t.teardown(() => new Promise<void>((r) => fake.close(() => r())));
    const e = (await callControl(path, 'status').then(() => undefined, (x: unknown) => x)) as ControlClientError | undefined;
    t.equal(e?.kind, 'protocol', `${name}: ${e?.message}`);
    t.equal((await ctl(['--socket', path, 'status'])).code, EXIT.DAEMON_ERROR, `${name}: exit 1`);
  }
});

function memoryIo(env: Record<string, string | undefined> = {}): CtlIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    env,
    now: () => NOW,
    stdout(s: string) {
      io.out += s;
    },
    stderr(s: string) {
      io.err += s;
    },
  };
  return io;
}

async function ctl(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  const io = memoryIo(env);
  const code = await runCtlCommand(argv, io);
  return { code, out: io.out, err: io.err };
}

t.test('skeinctl: --json prints the daemon\'s result untouched', async (t) => {
  const dir = tmp(t);
  const sock = join(dir, 'skein.sock');
  const server = await fixtureServer(sock);
  t.teardown(() => server.close());
  const cases: [string[], unknown][] = [
    [['status'], STATUS],
    [['peers'], { peers: PEERS }],
    [['routes'], ROUTES],
    [['routes', '10.65.1.0/26'], { routes: [ROUTES.routes[0]] }],
    [['fib'], FIB],
    [['reload'], RELOAD],
  ];
  for (const [args, want] of cases) {
    const r = await ctl(['--socket', sock, ...args, '--json']);
    t.equal(r.code, EXIT.OK, `${args.join(' ')}: exit 0`);
    t.same(JSON.parse(r.out), want, `${args.join(' ')} --json`);
    t.equal(r.out, `${JSON.stringify(want, null, 2)}\n`, 'byte for byte: same keys, same order');
    t.equal(r.err, '');
  }
  // Options anywhere, --opt=value, and the socket from SKEIN_SOCKET.
  t.same(JSON.parse((await ctl(['--json', 'status', `--socket=${sock}`])).out), STATUS);
  t.same(JSON.parse((await ctl(['status', '--json'], { SKEIN_SOCKET: sock })).out), STATUS);
});

t.test('skeinctl: text rendering', async (t) => {
  const dir = tmp(t);
  const sock = join(dir, 'skein.sock');
  const server = await fixtureServer(sock);
  t.teardown(() => server.close());

  const status = await ctl(['--socket', sock, 'status']);
  t.equal(status.code, 0);
  t.equal(status.out, [
    'Node:       host-a',
    'AS number:  64512',
    'Router ID:  192.0.2.10',
    'Ready:      yes',
    '',
    'IPv4 BGP status',
    '+------------------+-------------------+-------------+--------------------------------+--------------------+',
    '| PEER ADDRESS     | PEER TYPE         | STATE       | SINCE                          | INFO               |',
    '+------------------+-------------------+-------------+--------------------------------+--------------------+',
    '| 192.0.2.11       | node-to-node mesh | Established | 2026-11-21 03:00:00 (5m ago)   | Established        |',
    '| 192.0.2.254:1179 | global            | Active      | 2026-11-20 23:00:00 (4h5m ago) | Connection refused |',
    '+------------------+-------------------+-------------+--------------------------------+--------------------+',
    '',
    'IPv6 BGP status',
    '+--------------+-----------------+----------+------------------------------+------+',
    '| PEER ADDRESS | PEER TYPE       | STATE    | SINCE                        | INFO |',
    '+--------------+-----------------+----------+------------------------------+------+',
    '| fd00::11     | route reflector | OpenSent | 2026-11-21 03:04:58 (2s ago) | -    |',
    '+--------------+-----------------+----------+------------------------------+------+',
    '',
  ].join('\n'));

  const peers = await ctl(['--socket', sock, 'peers']);
  t.equal(peers.code, 0);
  t.match(peers.out, /^Peer 192\.0\.2\.11 \(node-to-node mesh\)\n {2}State: +Established since 2026-11-21 03:00:00 \(5m ago\)\n {2}AS: +remote 64512, local 64512 \(iBGP\)\n/);
  t.match(peers.out, /Peer 192\.0\.2\.254:1179 \(global\)\n[^]*AS: +remote 65000, local 64512 \(eBGP\)\n[^]*Families: +ipv4-unicast, ipv6-unicast\n[^]*Last error: +connect: ECONNREFUSED\n/);
  t.match(peers.out, /Hold time: +90s, keepalive 30s\n/);
  t.match(peers.out, /Prefixes: +received 3, accepted 3, advertised 2\n/);
  const valueColumns = new Set(peers.out.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.search(/(?<=: +)\S/)));
  t.equal(valueColumns.size, 1, 'values line up across all peers');

  const routes = await ctl(['--socket', sock, 'routes', '10.65.1.0/26']);
  t.equal(routes.out, [
    '10.65.1.0/26  in kernel, 2 paths',
    '     FROM         NEXT HOPS    AS PATH      ORIGIN      LOCAL PREF  MED  COMMUNITIES          REASON',
    '  *  192.0.2.11   192.0.2.11   (empty)      IGP         100         0    65000:100,65000:1:2  best: lowest router ID',
    '     192.0.2.254  192.0.2.254  65000 65001  INCOMPLETE  100         10   -                    lost: longer AS path',
    '',
    '1 route',
    '',
  ].join('\n'), 'the best path first and starred, though the daemon listed it second');
  t.equal((await ctl(['--socket', sock, 'routes', '10.1.2.0/24'])).out, 'No route for 10.1.2.0/24.\n');
  t.match((await ctl(['--socket', sock, 'routes'])).out, /10\.65\.0\.0\/26 {2}in kernel, 1 path\n[^]*\* {2}local {2}- /);

  const fib = await ctl(['--socket', sock, 'fib']);
  t.equal(fib.out, [
    'FIB: table 254, protocol 201',
    'desired 3, installed 2, pending 0, failed 1',
    '',
    'PREFIX        DESIRED         KERNEL                   STATE',
    '10.65.0.0/26  blackhole       blackhole                in-sync',
    '10.65.1.0/26  via 192.0.2.11  via 192.0.2.11 dev eth0  in-sync',
    '10.65.2.0/26  via 192.0.2.99  -                        failed',
    '',
    'Failures:',
    '  PREFIX        REASON',
    '  10.65.2.0/26  ENETUNREACH: next hop 192.0.2.99 is not on a connected network',
    '',
  ].join('\n'));
  t.equal((await ctl(['--socket', sock, 'reload'])).out, 'configuration reloaded\n  log.level: info -> debug\n');
});

t.test('skeinctl: exit codes 1, 2, 3', async (t) => {
  const dir = tmp(t);
  const sock = join(dir, 'skein.sock');
  const server = await fixtureServer(sock);
  t.teardown(() => server.close());

  // 1: the daemon reports an error (text and --json).
  const e1 = await ctl(['--socket', sock, 'routes', '10.99.0.0/16']);
  t.same([e1.code, e1.out, e1.err], [EXIT.DAEMON_ERROR, '', 'skeinctl: the daemon reports: routes: the RIB is still loading\n']);
  const e1j = await ctl(['--socket', sock, 'routes', '10.99.0.0/16', '--json']);
  t.equal(e1j.code, 1);
  t.same(JSON.parse(e1j.out), { error: { message: 'the daemon reports: routes: the RIB is still loading', code: 'not-ready' } });

  // 1: an answer that is not the expected shape.
  const oddPath = join(dir, 'odd.sock');
  const odd = new ControlServer({ path: oddPath });
  odd.handle('status', () => ({ node: 'x', peers: 'not a list' })).handle('peers', () => 42);
  await odd.listen();
  t.teardown(() => odd.close());
  const shape = await ctl(['--socket', oddPath, 'status']);
  t.same([shape.code, shape.err], [1, 'skeinctl: unexpected answer from the daemon: status.peers is not a list\n']);
  t.equal((await ctl(['--socket', oddPath, 'peers'])).code, 1);
  t.equal((await ctl(['--socket', oddPath, 'peers', '--json'])).out, '42\n', '--json passes even an odd answer through');

  // 2: usage.
  for (const argv of [[], ['frobnicate'], ['status', 'extra'], ['routes', 'a', 'b'], ['routes', '10.0.0.0/33'], ['routes', 'fd00::/129'],
    ['routes', 'not-a-prefix'], ['--socket'], ['status', '--bogus'], ['status', '--timeout', '0'], ['status', '--socket=']]) {
    const r = await ctl(argv);
    t.equal(r.code, EXIT.USAGE, `usage: ${JSON.stringify(argv)}`);
    t.match(r.err, /^skeinctl: .+\n\nusage: skeinctl/);
    t.equal(r.out, '');
  }
  const help = await ctl(['--help']);
  t.same([help.code, help.out], [0, USAGE]);

  // 3: not reachable.
  const gone = join(dir, 'missing.sock');
  const e3 = await ctl(['--socket', gone, 'status']);
  t.equal(e3.code, EXIT.UNREACHABLE);
  t.match(e3.err, /^skeinctl: daemon not reachable: no control socket at .*missing\.sock/);
  const e3j = await ctl(['--socket', gone, 'fib', '--json']);
  t.same([e3j.code, (JSON.parse(e3j.out) as { error: { code: string } }).error.code], [3, 'ENOENT']);
  const e3env = await ctl(['peers'], { SKEIN_SOCKET: gone });
  t.equal(e3env.code, 3, 'SKEIN_SOCKET is used');
});

t.test('skeinctl: renderers on edge cases', async (t) => {
  const status = renderStatus({ node: 'host-b', routerId: '192.0.2.20', asn: 4200000001, ready: false, notReady: ['datastore not synced', 'fib not reconciled'], peers: [] }, NOW);
  t.match(status, /^Ready: +no \(datastore not synced; fib not reconciled\)$/m);
  t.match(status, /^AS number: +4200000001$/m);
  t.match(status, /IPv4 BGP status\nNo IPv4 peers found\.\n\nIPv6 BGP status\nNo IPv6 peers found\.\n$/);
  t.equal(renderPeers({ peers: [] }, NOW), 'No peers.\n');
  const apPeer = { address: '192.0.2.31', port: 179, asn: 64512, localAsn: 64512, type: 'global', state: 'Established', since: NOW.toISOString(), info: '', families: ['ipv4-unicast'], prefixes: { received: 0, accepted: 0, advertised: 0 } };
  t.match(renderPeers({ peers: [{ ...apPeer, addPath: { send: ['ipv4-unicast'], receive: ['ipv4-unicast'], sendMode: 'best 2' } }] }, NOW),
    /^ +ADD-PATH: +send ipv4-unicast \(best 2\); receive ipv4-unicast$/m, 'ADD-PATH line: what was negotiated and how many paths go out');
  t.match(renderPeers({ peers: [{ ...apPeer, addPath: { send: ['ipv4-unicast'], receive: [], sendMode: 'off' } }] }, NOW), /ADD-PATH: +send ipv4-unicast \(best path only\)$/m);
  t.notMatch(renderPeers({ peers: [{ ...apPeer, addPath: { send: [], receive: [], sendMode: 'off' } }] }, NOW), /ADD-PATH/, 'nothing negotiated: no line');
  t.equal(renderFib({ enabled: false, table: 254, protocol: 201, counts: { desired: 0, installed: 0, pending: 0, failed: 0 }, routes: [] }),
    'FIB programming is disabled (fib.enabled: false): skein touches no kernel table.\n');
  t.match(renderFib({ ...FIB, routes: [] }), /\n\nNo routes\.\n$/);
  const best = ROUTES.routes[0]!.best!;
  const onlyBest = renderRoutes({ routes: [{ prefix: '10.65.9.0/26', installed: false, best, paths: [] }] });
  t.match(onlyBest, /^10\.65\.9\.0\/26 {2}not in kernel, 1 path\n.*\n {2}\* {2}192\.0\.2\.11 /, 'a best path missing from paths is still shown, starred');
  t.match(renderRoutes({ routes: [{ prefix: '10.65.8.0/26', installed: false, best: null, paths: [] }] }), /10\.65\.8\.0\/26 {2}not in kernel, 0 paths\n {2}\(no paths\)\n/);
  const noBest = renderRoutes({ routes: [{ prefix: 'fd00:1::/122', installed: true, best: null, paths: [best] }] });
  t.match(noBest, /^fd00:1::\/122 {2}in kernel, 1 path\n[^]*192\.0\.2\.11/);
  t.notMatch(noBest, /\*/, 'no best: nothing starred');
  t.throws(() => renderRoutes({ routes: 'x' }), ShapeError);
  t.throws(() => renderStatus(null, NOW), { message: 'unexpected answer from the daemon: status is not an object' });
});

t.test('skeinctl: argument helpers and time formatting', async (t) => {
  t.equal(ctlCommandOf(['--socket', '/x', '--json', 'routes', '10.0.0.0/8']), 'routes');
  t.equal(ctlCommandOf(['--timeout', '5', 'decode', 'ff']), 'decode');
  t.equal(ctlCommandOf(['--json']), undefined);
  t.ok(isCtlCommand('fib'));
  t.notOk(isCtlCommand('decode'), 'decode belongs to src/skeinctl.ts');
  const p = parseCtlArgs(['status', '--timeout=2.5'], { SKEIN_SOCKET: '/tmp/x.sock' });
  t.same([p.socket, p.timeoutMs, p.json, p.command], ['/tmp/x.sock', 2500, false, 'status']);
  t.equal(parseCtlArgs(['status']).socket, '/run/skein/skein.sock');

  const now = new Date('2026-11-21T03:05:00Z');
  t.equal(humaneSince('2026-11-21T03:00:00Z', now), '2026-11-21 03:00:00 (5m ago)');
  t.equal(humaneSince('2026-11-21T03:04:59.500Z', now), '2026-11-21 03:04:59 (1s ago)');
  t.equal(humaneSince('2026-11-21T03:05:30Z', now), '2026-11-21 03:05:30 (in 30s)');
  t.equal(humaneSince('garbage', now), 'garbage');
  t.equal(humaneSince('', now), '-');
  t.same([0, 59, 60, 312, 3600, 3661, 86400 * 2 + 3600 * 3 + 5].map(humaneDuration), ['0s', '59s', '1m', '5m12s', '1h', '1h1m', '2d3h']);
});

t.test('skeinctl: a spawned process (dist/test/daemon/ctl-main.js)', async (t) => {
  const main = join(root, 'dist', 'test', 'daemon', 'ctl-main.js');
  if (!existsSync(main)) {
    t.fail('dist/ is missing: run "npm run build" first');
    return;
  }
  const dir = tmp(t);
  const sock = join(dir, 'skein.sock');
  const server = await fixtureServer(sock);
  t.teardown(() => server.close());
  const ctlMain = (args: string[], env: Record<string, string> = {}): ReturnType<typeof run> => run(process.execPath, [main, ...args], env);
  const status = await ctlMain(['--socket', sock, 'status']);
  t.equal(status.code, 0);
  t.match(status.out, /^Node: +host-a\n[^]*\| 192\.0\.2\.11 +\| node-to-node mesh \| Established \|/);
  const json = await ctlMain(['routes', '--json'], { SKEIN_SOCKET: sock });
  t.same([json.code, JSON.parse(json.out)], [0, ROUTES]);
  t.same((await ctlMain(['--socket', sock, 'routes', '10.99.0.0/16'])).code, 1);
  t.same((await ctlMain(['status', '--nope'])).code, 2);
  const down = await ctlMain(['--socket', join(dir, 'none.sock'), 'status']);
  t.same([down.code, down.out], [3, '']);
  t.match(down.err, /daemon not reachable/);
});

t.test('skeinctl: the socket\'s mode and group decide who may use it (spawned as another user)', async (t) => {
  if (!requires(t, { root: true, commands: ['setpriv'] })) return;
  const main = join(root, 'dist', 'test', 'daemon', 'ctl-main.js');
  if (!existsSync(main)) {
    t.fail('dist/ is missing: run "npm run build" first');
    return;
  }
  const dir = tmp(t);
  chmodSync(dir, 0o755);
  // The other user runs a copy of dist/ in a directory it may read: the checkout itself may sit under a 0700
  // directory (a home directory), which would make this test depend on where the repository was cloned.
  const copy = join(dir, 'ctl');
  cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
  writeFileSync(join(copy, 'package.json'), '{"type":"module"}\n');
  const copiedMain = join(copy, 'dist', 'test', 'daemon', 'ctl-main.js');
  const gid = await resolveGroup('daemon');
  const sock = join(dir, 'skein.sock');
  const server = new ControlServer({ path: sock, group: 'daemon' });
  server.handle('status', () => STATUS);
  await server.listen();
  t.teardown(() => server.close());
  // Asynchronously: the server answering them lives in this process.
  const asNobody = (groups: string): ReturnType<typeof run> =>
    run('setpriv', ['--reuid=65534', '--regid=65534', groups, process.execPath, copiedMain, '--socket', sock, 'status', '--json']);
  const outsider = await asNobody('--clear-groups');
  t.equal(outsider.code, EXIT.UNREACHABLE, 'not in the group: refused');
  t.match(outsider.err, /daemon not reachable: permission denied on .*skein\.sock/);
  const member = await asNobody(`--groups=${gid}`);
  t.equal(member.code, 0, 'a member of the group may use it');
  t.same(JSON.parse(member.out), STATUS);
});

t.test('control: without CAP_CHOWN (as under the systemd unit) the socket keeps a safe group and says why', async (t) => {
  if (!requires(t, { root: true, commands: ['setpriv'] })) return;
  const controlJs = join(root, 'dist', 'src', 'control', 'index.js');
  const logJs = join(root, 'dist', 'src', 'log.js');
  if (!existsSync(controlJs)) {
    t.fail('dist/ is missing: run "npm run build" first');
    return;
  }
  const dir = tmp(t);
  const gid = await resolveGroup('daemon');
  const script = (sock: string): string => `
    const { ControlServer } = await import(${JSON.stringify(controlJs)});
    const { createLogger } = await import(${JSON.stringify(logJs)});
    const lines = [];
    const server = new ControlServer({ path: ${JSON.stringify(sock)}, group: 'daemon', log: createLogger({ sink: (l) => lines.push(JSON.parse(l)) }) });
    await server.listen();
    const { statSync } = await import('node:fs');
    const st = statSync(${JSON.stringify(sock)});
    await server.close();
    process.stdout.write(JSON.stringify({ gid: st.gid, mode: st.mode & 0o777, warnings: lines.filter((l) => l.level === 'warn').map((l) => l.msg) }));`;
  const noChown = ['--bounding-set=-chown', '--inh-caps=-chown'];
  const root0 = await run('setpriv', [...noChown, process.execPath, '--input-type=module', '-e', script(join(dir, 'a.sock'))]);
  t.equal(root0.code, 0, root0.err);
  t.same(JSON.parse(root0.out), { gid: 0, mode: 0o660, warnings: ['cannot give the control socket its group; only root can use skeinctl'] });
  // With the group as the daemon's own (Group= in the unit), no capability is needed.
  const withGroup = await run('setpriv', [...noChown, `--regid=${gid}`, '--clear-groups', process.execPath, '--input-type=module', '-e', script(join(dir, 'b.sock'))]);
  t.equal(withGroup.code, 0, withGroup.err);
  t.same(JSON.parse(withGroup.out), { gid, mode: 0o660, warnings: [] });
});
