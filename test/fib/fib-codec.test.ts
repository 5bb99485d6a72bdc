// fib/'s hand-written rtnetlink encoding, checked against its own decoder and against the fixed layout of
// linux/rtnetlink.h (no kernel needed; the kernel itself is in fib-programmer.test.ts).
import t from 'tap';
import fc from 'fast-check';
import { encodeHops, parseRoute, routeMessageSize, scanRoute, newRouteScan, writeRouteMessage } from '../../fib/codec.js';
import { formatAddress } from '../../fib/format.js';
import { parseAddress } from './addr.js';
import { V4Index } from '../../fib/v4index.js';
import { FibInputError, Programmer } from '../../fib/index.js';

t.test('a route message decodes to what was encoded', (t) => {
  const hop = (alen: number) => fc.record({
    gateway: fc.option(fc.uint8Array({ minLength: alen, maxLength: alen }), { nil: undefined }),
    ifindex: fc.integer({ min: 1, max: 0x7fffffff }),
    onlink: fc.boolean(),
    weight: fc.integer({ min: 1, max: 256 }),
  });
  const route = fc.constantFrom<4 | 6>(4, 6).chain((family) => fc.record({
    family: fc.constant(family),
    addr: fc.uint8Array({ minLength: family === 4 ? 4 : 16, maxLength: family === 4 ? 4 : 16 }),
    len: fc.integer({ min: 0, max: family === 4 ? 32 : 128 }),
    table: fc.oneof(fc.integer({ min: 1, max: 250 }), fc.integer({ min: 256, max: 0xffffffff })),
    metric: fc.integer({ min: 0, max: 0xffffffff }),
    protocol: fc.integer({ min: 1, max: 255 }),
    hops: fc.array(hop(family === 4 ? 4 : 16), { minLength: 1, maxLength: 8 }),
  }));
  fc.assert(fc.property(route, (r) => {
    const enc = encodeHops(r.hops);
    const size = routeMessageSize(r.family, r.table, r.metric, enc.tail.length);
    const b = Buffer.alloc(size + 8);
    const v4 = r.family === 4 ? r.addr.reduce((n, x) => n * 256 + x, 0) : 0;
    const end = writeRouteMessage(b, 4, 24, 0x605, 77, r.family, v4, r.family === 6 ? r.addr : undefined, r.len,
      r.table, r.protocol, enc.scope, 1, enc.rtmFlags, r.metric, enc.tail);
    if (end - 4 !== size || b.readUInt32LE(4) !== size) return false; // nlmsg_len covers exactly what was written
    if (b.readUInt16LE(8) !== 24 || b.readUInt16LE(10) !== 0x605 || b.readUInt32LE(12) !== 77) return false;
    const k = parseRoute(b, 4, size);
    if (!k) return false;
    const sc = newRouteScan();
    if (!scanRoute(b, 4, size, sc) || sc.table !== r.table || sc.metric !== r.metric || sc.multipath !== (r.hops.length > 1)) return false;
    t.same(
      { family: k.family, addr: [...k.addr], len: k.len, table: k.table, metric: k.metric, protocol: k.protocol, type: k.type },
      { family: r.family, addr: [...r.addr], len: r.len, table: r.table, metric: r.metric, protocol: r.protocol, type: 1 },
    );
    const want = r.hops.map((h) => ({ gateway: h.gateway ? [...h.gateway] : undefined, ifindex: h.ifindex, onlink: h.onlink, weight: r.hops.length > 1 ? h.weight : 1 }));
    const got = k.hops.map((h) => ({ gateway: h.gateway ? [...h.gateway] : undefined, ifindex: h.ifindex, onlink: h.onlink, weight: h.weight }));
    t.same(got, want);
    return true;
  }), { numRuns: 200 });
  t.end();
});

t.test('fixed layout: a /24 via a gateway, byte for byte (linux/rtnetlink.h)', (t) => {
  const enc = encodeHops([{ gateway: Uint8Array.of(10, 0, 0, 2), ifindex: 3, onlink: false, weight: 1 }]);
  const b = Buffer.alloc(routeMessageSize(4, 254, 0, enc.tail.length));
  writeRouteMessage(b, 0, 24, 0x601, 1, 4, 0x0a0a0000, undefined, 24, 254, 80, enc.scope, 1, 0, 0, enc.tail);
  t.equal(b.toString('hex'),
    '34000000' + '1800' + '0106' + '01000000' + '00000000' + // nlmsghdr: len 52, RTM_NEWROUTE, REQUEST|CREATE|EXCL, seq 1, pid 0
    '02' + '18' + '00' + '00' + 'fe' + '50' + '00' + '01' + '00000000' + // rtmsg: AF_INET /24, main, proto 80, universe, unicast
    '0800' + '0100' + '0a0a0000' + // RTA_DST 10.10.0.0
    '0800' + '0500' + '0a000002' + // RTA_GATEWAY 10.0.0.2
    '0800' + '0400' + '03000000', // RTA_OIF 3
  );
  t.end();
});

t.test('malformed kernel messages are rejected, never read past their end', (t) => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (bytes) => {
    const b = Buffer.from(bytes);
    const len = b.length >= 4 ? Math.min(b.readUInt32LE(0), b.length) : b.length;
    parseRoute(b, 0, len); // must not throw
    scanRoute(b, 0, len, newRouteScan());
    return true;
  }), { numRuns: 2000 });
  t.end();
});

t.test('address text for views (RFC 5952)', (t) => {
  for (const s of ['10.1.2.3', '::', '::1', 'fd00::2', '2001:db8:0:1:1:1:1:1', '2001:db8::1:0:0:1', 'fe80::1:2']) {
    t.equal(formatAddress(parseAddress(s)), s, s);
  }
  t.end();
});

t.test('V4Index behaves like a Map under any mix of set/delete/swap/take/getOr/iterate (with growth and shrinking)', (t) => {
  const op = fc.oneof(
    fc.record({ k: fc.constant('set' as const), n: fc.integer({ min: 0, max: 5000 }), len: fc.integer({ min: 0, max: 32 }) }),
    fc.record({ k: fc.constant('del' as const), n: fc.integer({ min: 0, max: 5000 }), len: fc.integer({ min: 0, max: 32 }) }),
    fc.record({ k: fc.constant('bulk' as const), n: fc.integer({ min: 0, max: 3000 }), len: fc.constant(32) }),
    // consecutive prefixes of one length with their host bits zero (a peer's /24s): they share hash groups
    fc.record({ k: fc.constant('run' as const), n: fc.integer({ min: 0, max: 2000 }), len: fc.integer({ min: 12, max: 30 }) }),
    fc.record({ k: fc.constant('swap' as const), n: fc.integer({ min: 0, max: 5000 }), len: fc.integer({ min: 0, max: 32 }) }),
    fc.record({ k: fc.constant('take' as const), n: fc.integer({ min: 0, max: 5000 }), len: fc.integer({ min: 0, max: 32 }) }),
    fc.record({ k: fc.constant('getor' as const), n: fc.integer({ min: 0, max: 5000 }), len: fc.integer({ min: 0, max: 32 }) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    const idx = new V4Index<number>();
    const model = new Map<string, number>();
    let v = 0;
    for (const o of ops) {
      if (o.k === 'set') {
        idx.set(o.n * 7919 >>> 0, o.len, ++v);
        model.set(`${o.n * 7919 >>> 0}/${o.len}`, v);
      } else if (o.k === 'swap') {
        // swap answers what get would have before the set (the route table's one-probe path)
        const key = `${o.n * 7919 >>> 0}/${o.len}`;
        const before = model.get(key);
        model.set(key, ++v);
        if (idx.swap(o.n * 7919 >>> 0, o.len, v) !== before) return false;
      } else if (o.k === 'getor') {
        // getOr answers the value there, or stores and answers a new one (fib/'s entry for a new prefix)
        const key = `${o.n * 7919 >>> 0}/${o.len}`;
        const existed = model.has(key);
        const want = model.get(key) ?? ++v;
        model.set(key, want);
        let made = 0;
        if (idx.getOr(o.n * 7919 >>> 0, o.len, () => (made++, v)) !== want) return false;
        if (made !== (existed ? 0 : 1)) return false;
      } else if (o.k === 'take') {
        const key = `${o.n * 7919 >>> 0}/${o.len}`;
        const before = model.get(key);
        model.delete(key);
        if (idx.take(o.n * 7919 >>> 0, o.len) !== before) return false;
      } else if (o.k === 'del') {
        const had = model.delete(`${o.n * 7919 >>> 0}/${o.len}`);
        if (idx.delete(o.n * 7919 >>> 0, o.len) !== had) return false;
      } else if (o.k === 'run') {
        // inserted, read back, half taken, then walked into a second index (the stale swap's and resync's shape)
        const base = 0xc0000000 >>> 0;
        const at = (i: number): number => (base + i * 2 ** (32 - o.len)) >>> 0;
        const count = Math.min(o.n, 2 ** (o.len - 2)); // stays within 192.0.0.0/2: never wraps onto the model's keys
        for (let i = 0; i < count; i++) idx.set(at(i), o.len, -1 - i);
        for (let i = 0; i < count; i++) if (idx.get(at(i), o.len) !== -1 - i) return false;
        for (let i = 0; i < count; i += 2) if (idx.take(at(i), o.len) !== -1 - i) return false;
        const copy = new V4Index<number>();
        idx.forEach((n, len, val) => copy.set(n, len, val));
        if (copy.size !== idx.size) return false;
        for (let i = 0; i < count; i++) if (copy.get(at(i), o.len) !== (i & 1 ? -1 - i : undefined)) return false;
        for (let i = 1; i < count; i += 2) if (!idx.delete(at(i), o.len)) return false;
      } else {
        // many inserts then deleting them all: exercises growth and shrinking
        // (every other one through getOr: it grows the table too)
        for (let i = 0; i < o.n; i++) {
          if (i & 1) idx.getOr(0xfff00000 + i, 32, () => i);
          else idx.set(0xfff00000 + i, 32, i);
        }
        for (let i = 0; i < o.n; i++) idx.delete(0xfff00000 + i, 32);
      }
      if (idx.size !== model.size) return false;
    }
    for (const [k, val] of model) {
      const [n, len] = k.split('/').map(Number);
      if (idx.get(n!, len!) !== val) return false;
    }
    return [...idx.values()].sort((a, b) => a - b).join() === [...model.values()].sort((a, b) => a - b).join();
  }), { numRuns: 300 });
  t.pass('matches the Map model');
  t.end();
});

t.test('bad input to the Programmer is a FibInputError naming the problem, and changes nothing', (t) => {
  const fib = new Programmer(); // not started: set() only records the desired state
  const gw = Uint8Array.of(10, 0, 0, 2);
  const ok = { hops: [{ gateway: gw }] };
  fib.set(4, Uint8Array.of(10, 1, 0, 0), 16, ok);
  const bad: [string, () => void, RegExp][] = [
    ['family', () => fib.set(5 as 4, Uint8Array.of(10, 1, 0, 0), 16, ok), /family must be 4 or 6/],
    ['short address', () => fib.set(4, Uint8Array.of(10, 1, 0), 16, ok), /address must be 4 bytes/],
    ['prefix length', () => fib.set(6, new Uint8Array(16), 129, ok), /prefix length must be 0\.\.128/],
    ['gateway family', () => fib.set(6, new Uint8Array(16), 64, ok), /gateway must be 16 bytes/],
    ['no hops', () => fib.set(4, gw, 32, { hops: [] }), /at least one next hop/],
    ['empty hop', () => fib.set(4, gw, 32, { hops: [{}] }), /needs a gateway, an ifindex or a dev/],
    ['weight', () => fib.set(4, gw, 32, { hops: [{ gateway: gw, weight: 0 }, { dev: 'x' }] }), /weight must be 1\.\.256/],
    ['dev name', () => fib.set(4, gw, 32, { hops: [{ dev: 'a-name-longer-than-15' }] }), /interface name of 1-15/],
    ['duplicate hop', () => fib.set(4, gw, 32, { hops: [{ gateway: gw }, { gateway: gw }] }), /duplicate next hop/],
    ['onlink without device', () => fib.set(4, gw, 32, { hops: [{ gateway: gw, onlink: true }] }), /onlink needs a device/],
    ['table', () => fib.set(4, gw, 32, ok, { table: 0 }), /bad table/],
    ['option', () => new Programmer({ batchSize: 0 }), /batchSize must be an integer/],
  ];
  for (const [what, f, msg] of bad) t.throws(f, Object.assign(new FibInputError('x'), { message: msg }), what);
  const st = fib.stats();
  t.match(st, { desired: 1, pending: 1 }, 'only the one good route is desired');
  // host bits are masked off: 10.1.2.3/16 is the same prefix as 10.1.0.0/16
  fib.remove(4, Uint8Array.of(10, 1, 2, 3), 16);
  t.equal(fib.stats().desired, 0, 'removed through an address with host bits set');
  t.end();
});
