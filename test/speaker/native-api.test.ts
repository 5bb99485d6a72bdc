// The native addon's contract at the JS boundary: typed errors for bad
// arguments (never a crash), errno-coded Errors from the kernel, the option
// helpers' effect as read back with getsockopt, descriptors never leaked, the
// missing-addon message, and sd_notify against a real AF_UNIX listener.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, openSync, closeSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  addonPath,
  bindSocket,
  closeSocket,
  connectWithOptions,
  createSocket,
  fdOf,
  MD5_MAX_KEY_LEN,
  getIntOpt,
  sdNotify,
  setIntOpt,
  setMd5Key,
  setMinTtl,
  setTtl,
  setTtlSecurity,
  socketFamily,
  sockoptConstants,
} from '../../bgp/net/index.js';
import { native } from '../../bgp/net/native.js';
import { requires } from '../helpers/env.js';
import { until } from '../helpers/netns.js';

const root = join(`${dirname(fileURLToPath(import.meta.url))}/..`, '..');

/** Asserts fn throws an error of `type` with `code` (and, optionally, a message matching re). */
function throwsCode(t: Test, fn: () => unknown, type: ErrorConstructor | TypeErrorConstructor, code: string, re?: RegExp): void {
  try {
    fn();
    t.fail(`expected ${code}, nothing thrown`);
  } catch (e) {
    t.type(e, type, `${code}: ${(e as Error).message}`);
    t.equal((e as NodeJS.ErrnoException).code, code);
    if (re) t.match((e as Error).message, re);
  }
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

t.test('addon location and the missing-addon error', async (t) => {
  t.equal(addonPath(), join(root, 'bgp', 'native', 'build', 'Release', 'skein_native.node'), 'found from the TS sources');
  t.ok(existsSync(addonPath()), 'addon is built');
  const dist = join(root, 'dist', 'bgp', 'net');
  if (!existsSync(join(dist, 'native.js'))) {
    t.fail('dist/ is missing: run "npm run build" first');
    return;
  }
  // A copy of the compiled wrapper in a package without the built addon.
  const pkg = mkdtempSync(join(tmpdir(), 'skein-noaddon-'));
  t.teardown(() => rmSync(pkg, { recursive: true, force: true }));
  writeFileSync(join(pkg, 'package.json'), '{"type":"module"}');
  cpSync(dist, join(pkg, 'bgp', 'net'), { recursive: true });
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    const m = await import(${JSON.stringify(join(pkg, 'bgp', 'net', 'index.js'))});
    console.log(JSON.stringify({ notify: m.sdNotify('READY=1', {}) }));
    try { m.createSocket(4); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`], { encoding: 'utf8' });
  const [first, second] = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(first, { notify: false }, 'importing and sdNotify without NOTIFY_SOCKET work without the addon');
  t.equal(second?.code, 'ERR_SKEIN_NATIVE_MISSING');
  t.match(String(second?.message), /native addon not built: .*skein_native\.node is missing; run "node scripts\/build-native\.mjs"/);
});

t.test('bad arguments throw TypeErrors', async (t) => {
  const fd = createSocket(4);
  t.teardown(() => closeSocket(fd));
  const raw = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
  throwsCode(t, () => raw.socket!('4'), TypeError, 'ERR_INVALID_ARG_TYPE', /"family" argument must be of type number/);
  throwsCode(t, () => createSocket(5 as 4), TypeError, 'ERR_INVALID_ARG_VALUE', /4 or 6/);
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 31]) {
    throwsCode(t, () => setMd5Key(bad, '10.0.0.1', 'k'), TypeError, 'ERR_INVALID_ARG_VALUE', /"fd" argument must be an integer/);
  }
  throwsCode(t, () => raw.setMd5Sig!('3', '10.0.0.1', null), TypeError, 'ERR_INVALID_ARG_TYPE', /"fd"/);
  throwsCode(t, () => raw.setMd5Sig!(fd, 10, null), TypeError, 'ERR_INVALID_ARG_TYPE', /"address"/);
  throwsCode(t, () => raw.setMd5Sig!(fd, '10.0.0.1', 'not-a-buffer'), TypeError, 'ERR_INVALID_ARG_TYPE', /"key"/);
  throwsCode(t, () => raw.setMd5Sig!(fd, '10.0.0.1', new Uint16Array(4)), TypeError, 'ERR_INVALID_ARG_TYPE', /"key"/);
  throwsCode(t, () => setMd5Key(fd, '10.0.0.1', Buffer.alloc(81)), TypeError, 'ERR_INVALID_ARG_VALUE', /81 bytes long.*at most 80/);
  t.doesNotThrow(() => setMd5Key(fd, '10.0.0.1', Buffer.alloc(80, 1)), 'an 80-byte key is accepted');
  t.doesNotThrow(() => setMd5Key(fd, '10.0.0.1', null), 'and deleted with a null key');
  for (const addr of ['not-an-ip', '10.0.0.256', '', '10.0.0.1 ', 'x'.repeat(500), '10.0.0.1\0']) {
    throwsCode(t, () => setMd5Key(fd, addr, 'k'), TypeError, 'ERR_INVALID_ARG_VALUE');
  }
  throwsCode(t, () => setMd5Key(fd, 'fd00::1', 'k'), TypeError, 'ERR_INVALID_ARG_VALUE', /IPv6 address "fd00::1" cannot be used on an IPv4 socket/);
  throwsCode(t, () => setMd5Key(fd, '10.0.0.0', 'k', 33), TypeError, 'ERR_INVALID_ARG_VALUE', /"prefixLen" argument must be an integer in \[0, 32\]/);
  const fd6 = createSocket(6);
  t.teardown(() => closeSocket(fd6));
  throwsCode(t, () => setMd5Key(fd6, 'fd00::', 'k', 129), TypeError, 'ERR_INVALID_ARG_VALUE', /\[0, 128\]/);
  throwsCode(t, () => setMd5Key(fd6, '10.0.0.0', 'k', 33), TypeError, 'ERR_INVALID_ARG_VALUE', /\[0, 32\]/);
  throwsCode(t, () => setMd5Key(fd6, 'fe80::1%no-such-if0', 'k'), TypeError, 'ERR_INVALID_ARG_VALUE', /unknown interface/);
  throwsCode(t, () => setTtl(fd, 0), TypeError, 'ERR_INVALID_ARG_VALUE', /ttl/);
  throwsCode(t, () => setMinTtl(fd, 256), TypeError, 'ERR_INVALID_ARG_VALUE', /minTtl/);
  throwsCode(t, () => setTtlSecurity(fd, 0), TypeError, 'ERR_INVALID_ARG_VALUE', /hops/);
  throwsCode(t, () => bindSocket(fd, '10.0.0.1', 65536), TypeError, 'ERR_INVALID_ARG_VALUE', /"port"/);
  throwsCode(t, () => raw.setIntOpt!(fd, 0, 2, '64'), TypeError, 'ERR_INVALID_ARG_TYPE', /"value"/);
  throwsCode(t, () => raw.sdNotify!('relative.sock', 'READY=1'), TypeError, 'ERR_INVALID_ARG_VALUE', /absolute path/);
  throwsCode(t, () => raw.sdNotify!(`/${'x'.repeat(200)}`, 'READY=1'), TypeError, 'ERR_INVALID_ARG_VALUE', /too long/);
  throwsCode(t, () => raw.sdNotify!('/run/x', ''), TypeError, 'ERR_INVALID_ARG_VALUE', /"state"/);
  throwsCode(t, () => raw.sdNotify!('/run/x', 7), TypeError, 'ERR_INVALID_ARG_TYPE', /"state"/);
  // startIncrementalGc (issue 15): a transient report of external memory, 1 byte to 2^40
  throwsCode(t, () => raw.startIncrementalGc!(0), TypeError, 'ERR_INVALID_ARG_VALUE', /"bytes"/);
  throwsCode(t, () => raw.startIncrementalGc!(2 ** 41), TypeError, 'ERR_INVALID_ARG_VALUE', /"bytes"/);
  throwsCode(t, () => raw.startIncrementalGc!(1.5), TypeError, 'ERR_INVALID_ARG_VALUE', /"bytes"/);
  throwsCode(t, () => raw.startIncrementalGc!('65536'), TypeError, 'ERR_INVALID_ARG_TYPE', /"bytes"/);
  const external = process.memoryUsage().external;
  const after = raw.startIncrementalGc!(32 * 2 ** 20) as number;
  t.ok(Math.abs(after - external) < 16 * 2 ** 20, `the 32 MiB reported are taken back: ${external} before, ${after} after`);
});

t.test('random arguments never crash the process', async (t) => {
  // fds are never small non-negative integers here: those could be the test runner's own descriptors.
  const notFd = fc.oneof(
    fc.anything().filter((v) => typeof v !== 'number'),
    fc.integer({ min: -(2 ** 31), max: -1 }),
    fc.double().filter((d) => !Number.isInteger(d)),
    fc.constantFrom(2 ** 31, 2 ** 53, Infinity),
  );
  const raw = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const calls: [string, fc.Arbitrary<unknown[]>][] = [
    ['setMd5Sig', fc.tuple(notFd, fc.anything(), fc.anything(), fc.anything())],
    ['setIntOpt', fc.tuple(notFd, fc.anything(), fc.anything(), fc.anything())],
    ['getIntOpt', fc.tuple(notFd, fc.anything(), fc.anything())],
    ['bind', fc.tuple(notFd, fc.anything(), fc.anything())],
    ['socketFamily', fc.tuple(notFd)],
    ['close', fc.tuple(notFd)],
    ['sdNotify', fc.tuple(fc.oneof(fc.anything(), fc.string().map((s) => `/nonexistent-skein-dir/${s}`)), fc.anything())],
  ];
  let thrown = 0;
  for (const [name, args] of calls) {
    fc.assert(
      fc.property(args, (a) => {
        try {
          raw[name]!(...a);
          return false; // every one of these argument lists is invalid
        } catch (e) {
          thrown++;
          const err = e as NodeJS.ErrnoException;
          return err instanceof Error && typeof err.code === 'string' && err.message.length > 0;
        }
      }),
      { numRuns: 300 },
    );
  }
  // socket() with anything: throws a TypeError unless it is 4 or 6.
  fc.assert(
    fc.property(fc.anything(), (v) => {
      try {
        const fd = raw.socket!(v) as number;
        closeSocket(fd);
        return v === 4 || v === 6;
      } catch (e) {
        return e instanceof TypeError;
      }
    }),
  );
  t.ok(thrown >= 7 * 300, 'every call threw a coded Error');
});

t.test('kernel errors carry errno names', async (t) => {
  const fd = createSocket(6);
  t.teardown(() => closeSocket(fd));
  throwsCode(t, () => setMd5Key(fd, 'fd00::9', null), Error, 'ENOENT', /cannot delete the TCP MD5 key for fd00::9/);
  try {
    setMd5Key(fd, 'fd00::9', null);
  } catch (e) {
    t.match(e, { errno: -2, syscall: 'setsockopt' }, 'errno and syscall are set like Node does');
  }
  throwsCode(t, () => setIntOpt(fd, sockoptConstants().IPPROTO_TCP, 9999, 1), Error, 'ENOPROTOOPT');
  // 192.0.2.55 is assigned nowhere: binding to it fails without touching any interface.
  const fd4 = createSocket(4);
  t.teardown(() => closeSocket(fd4));
  throwsCode(t, () => bindSocket(fd4, '192.0.2.55'), Error, 'EADDRNOTAVAIL', /cannot bind to 192\.0\.2\.55 port 0/);
  const file = openSync(fileURLToPath(import.meta.url), 'r');
  t.teardown(() => closeSync(file));
  throwsCode(t, () => setMd5Key(file, '10.0.0.1', 'k'), Error, 'ENOTSOCK');
  const gone = createSocket(4);
  closeSocket(gone);
  throwsCode(t, () => socketFamily(gone), Error, 'EBADF');
});

t.test('option helpers, read back with getsockopt', async (t) => {
  const c = sockoptConstants();
  const fd4 = createSocket(4);
  const fd6 = createSocket(6);
  t.teardown(() => {
    closeSocket(fd4);
    closeSocket(fd6);
  });
  t.equal(MD5_MAX_KEY_LEN, c.TCP_MD5SIG_MAXKEYLEN, 'the exported key limit is the kernel header value');
  t.equal(socketFamily(fd4), 4);
  t.equal(socketFamily(fd6), 6);
  setTtlSecurity(fd4, 1);
  t.equal(getIntOpt(fd4, c.IPPROTO_IP, c.IP_TTL), 255, 'GTSM sends TTL 255');
  t.equal(getIntOpt(fd4, c.IPPROTO_IP, c.IP_MINTTL), 255, 'and a directly connected peer must arrive with 255');
  setTtlSecurity(fd6, 3);
  t.equal(getIntOpt(fd6, c.IPPROTO_IPV6, c.IPV6_UNICAST_HOPS), 255);
  t.equal(getIntOpt(fd6, c.IPPROTO_IPV6, c.IPV6_MINHOPCOUNT), 253, 'three hops away: at least 256 - 3');
  t.equal(getIntOpt(fd6, c.IPPROTO_IP, c.IP_TTL), 255, 'IPv4-mapped peers of the v6 socket too');
  t.equal(getIntOpt(fd6, c.IPPROTO_IP, c.IP_MINTTL), 253);
  setMinTtl(fd4, 0);
  t.equal(getIntOpt(fd4, c.IPPROTO_IP, c.IP_MINTTL), 0, 'minTtl 0 turns the check off');
  setIntOpt(fd4, c.IPPROTO_TCP, c.TCP_NODELAY, 1);
  t.equal(getIntOpt(fd4, c.IPPROTO_TCP, c.TCP_NODELAY), 1, 'generic int options');
  // Keys: IPv4 on a v4 socket, IPv4 (mapped) and IPv6 on a v6 socket, with and without prefixes.
  t.doesNotThrow(() => {
    setMd5Key(fd4, '10.0.0.1', 'k');
    setMd5Key(fd4, '10.0.0.0', 'k', 8);
    setMd5Key(fd6, '10.0.0.1', 'k');
    setMd5Key(fd6, '10.0.0.0', new Uint8Array([1, 2, 3]), 24);
    setMd5Key(fd6, 'fd00::1', 'k');
    setMd5Key(fd6, '::ffff:10.0.0.2', 'k');
  });
  t.doesNotThrow(() => setMd5Key(fd6, '10.0.0.1', ''), 'the mapped key is the one the v4 address names: deleting it works');
  throwsCode(t, () => setMd5Key(fd6, '::ffff:10.0.0.1', null), Error, 'ENOENT', /delete/);
});

t.test('connectWithOptions: argument errors, refusals, aborts, no leaked descriptors', async (t) => {
  const before = openFds();
  await t.rejects(connectWithOptions({ host: 'localhost', port: 179, timeoutMs: 100 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port: 0, timeoutMs: 100 }), { name: 'TypeError' });
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port: 179, timeoutMs: 0 }), { name: 'TypeError' });
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port: 179, localAddress: '::1', timeoutMs: 100 }), /not an IPv4 address/);
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port: 179, ttl: 300, timeoutMs: 100 }), { code: 'ERR_INVALID_ARG_VALUE' });
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port: 179, md5Key: Buffer.alloc(81), timeoutMs: 100 }), { name: 'TypeError' });
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port: 179, localAddress: '192.0.2.55', timeoutMs: 100 }), { code: 'EADDRNOTAVAIL' });

  // A port nobody listens on, on loopback: the kernel refuses at once.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port, ttl: 255, timeoutMs: 5000 }), { code: 'ECONNREFUSED' });

  const ac = new AbortController();
  const reason = new Error('session stopped');
  const pending = connectWithOptions({ host: '127.0.0.1', port, timeoutMs: 5000, signal: ac.signal });
  ac.abort(reason);
  await t.rejects(pending, reason, 'an abort rejects with the reason');
  await t.rejects(connectWithOptions({ host: '127.0.0.1', port, timeoutMs: 5000, signal: ac.signal }), reason, 'already aborted');

  // And a working connection over loopback, with options, to show the adopted socket is a normal net.Socket.
  const server = net.createServer((s) => s.end('hi'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sock = await connectWithOptions({
    host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, localAddress: '127.0.0.1', ttl: 200, timeoutMs: 5000,
  });
  const text = await new Promise<string>((resolve) => {
    let s = '';
    sock.on('data', (d) => (s += d.toString()));
    sock.on('end', () => resolve(s));
  });
  t.equal(text, 'hi', 'data arrives on the adopted socket');
  t.equal(sock.localAddress, '127.0.0.1');
  const c = sockoptConstants();
  t.equal(getIntOpt(fdOf(sock), c.IPPROTO_IP, c.IP_TTL), 200, 'the TTL set before connect is on the connected socket');
  t.equal(getIntOpt(fdOf(sock), c.IPPROTO_TCP, c.TCP_NODELAY), 1, 'Nagle is off by default');
  sock.destroy();
  await new Promise((r) => server.close(r));
  await until(() => openFds() <= before, `descriptors to be released (${before} before, ${openFds()} now)`, 2000);
  t.equal(openFds(), before, 'no descriptor leaked across failures and successes');
});

t.test('sd_notify to a real AF_UNIX datagram listener', async (t) => {
  if (!requires(t as never, { commands: ['python3'] })) return;
  // Receives `count` datagrams and prints each with the sender's pid (SCM_CREDENTIALS).
  const receiver = `
import socket, struct, sys, json
path, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\\0' + path[1:] if path.startswith('@') else path)
s.settimeout(10)
print('ready', flush=True)
for _ in range(count):
    data, anc, flags, addr = s.recvmsg(8192, socket.CMSG_SPACE(12))
    pid = next((struct.unpack('iII', d[:12])[0] for lvl, typ, d in anc if typ == socket.SCM_CREDENTIALS), None)
    print(json.dumps({'hex': data.hex(), 'pid': pid}), flush=True)
`;
  const dir = mkdtempSync(join(tmpdir(), 'skein-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const states = ['READY=1', 'STATUS=3 BGP sessions established\nWATCHDOG=1', 'RELOADING=1', 'STOPPING=1', 'STATUS=ünïcødé'];
  for (const addr of [join(dir, 'notify.sock'), `@skein-test-${process.pid}-${Date.now()}`]) {
    const py = spawn('python3', ['-c', receiver, addr, String(states.length)], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => py.kill('SIGKILL'));
    const lines: string[] = [];
    let err = '';
    py.stderr.on('data', (d: Buffer) => (err += d.toString()));
    py.stdout.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    await until(() => lines.includes('ready'), `python receiver (${err})`, 10_000);
    for (const s of states) t.equal(sdNotify(s, { NOTIFY_SOCKET: addr }), true, `sent ${JSON.stringify(s)}`);
    await until(() => lines.length === states.length + 1, `all datagrams at ${addr} (${err})`, 10_000);
    const got = lines.slice(1).map((l) => JSON.parse(l) as { hex: string; pid: number });
    t.same(got.map((g) => Buffer.from(g.hex, 'hex').toString('utf8')), states, `exact states received at ${addr}`);
    t.ok(got.every((g) => g.pid === process.pid), 'sent from this process (what systemd checks)');
  }
  t.equal(sdNotify('READY=1', {}), false, 'no NOTIFY_SOCKET: nothing sent');
  t.equal(sdNotify('READY=1', { NOTIFY_SOCKET: '' }), false, 'empty NOTIFY_SOCKET: nothing sent');
  throwsCode(t, () => sdNotify('READY=1', { NOTIFY_SOCKET: join(dir, 'absent.sock') }), Error, 'ENOENT', /cannot notify/);
  throwsCode(t, () => sdNotify('READY=1', { NOTIFY_SOCKET: `@skein-absent-${process.pid}` }), Error, 'ECONNREFUSED');
});
