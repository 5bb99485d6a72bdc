// The daemon's route table (src/daemon/routes.ts) against a plain model of what it must do: for any interleaving
// of best-path batches (queued, applied in slices), direct BGP changes, elevated paths (a live migration's: they
// beat the device route and sit at their own metric), device routes, blackholes, kernel policy changes (rejecting
// learned routes and blackholes alike), the gate, stale marking and sweeping, the kernel (a recording Programmer
// stand-in that keeps a (prefix, metric) -> target map, as the real one's desired state) ends equal to the model's
// winners, at the model's metric and at no other, every queued change is applied exactly once and in order
// (the last change of a prefix wins), nothing is written while the gate is closed, and a large batch yields to the
// event loop between slices. Also: the policy's numeric IPv4 decision equals its text one.
import t from 'tap';
import fc from 'fast-check';
import { loadResourcesText } from '../../config/index.js';
import { prefixText, type PrefixKey } from '../../bgp/index.js';
import { kernelPolicy, type KernelPolicy } from '../../src/controller/index.js';
import { RouteTable, type BestInput } from '../../src/daemon/routes.js';

type Tgt = { blackhole?: boolean; hops?: readonly { gateway?: Uint8Array; dev?: string }[] };
const show = (tg: Tgt): string => (tg.blackhole ? 'blackhole' : (tg.hops ?? []).map((h) => h.dev ?? [...(h.gateway ?? [])].join('.')).join(','));

/** A Programmer stand-in: the desired state as a map ("prefix@metric", d: the default), and every call, in order. */
function fakeFib(): { fib: ConstructorParameters<typeof RouteTable>[0]; kernel: Map<string, string>; calls: string[] } {
  const kernel = new Map<string, string>();
  const calls: string[] = [];
  const fib = {
    set: (_f: number, a: Uint8Array, l: number, tg: Tgt, w?: { metric?: number }) => {
      const p = `${[...a].join('.')}/${l}`;
      calls.push(`set ${p}`);
      kernel.set(`${p}@${w?.metric ?? 'd'}`, show(tg));
    },
    remove: (_f: number, a: Uint8Array, l: number, w?: { metric?: number }) => {
      const p = `${[...a].join('.')}/${l}`;
      calls.push(`remove ${p}`);
      kernel.delete(`${p}@${w?.metric ?? 'd'}`);
    },
  };
  return { fib: fib as unknown as ConstructorParameters<typeof RouteTable>[0], kernel, calls };
}

const key4 = (a: number, len: number): number => a * 64 + len;
const best = (k: PrefixKey, hops: readonly string[] | null, localPref?: number): BestInput => ({
  key: k, get prefix() { return prefixText(k); }, attributes: hops === null ? null : { localPref }, nextHops: hops ?? [], local: false,
});

/** Elevated above LOCAL_PREF 100, at metric 1000 - LOCAL_PREF (the daemon's rule, with smaller numbers). */
const elevation = (lp: number | undefined): number | undefined => (lp !== undefined && lp > 100 ? 1000 - lp : undefined);
/** Two kernel policies, each rejecting one prefix (learned route and blackhole alike). */
const REJECTS: Record<string, string> = { a: '192.0.2.0/24', b: '10.65.1.0/24' };
function policyOf(name: string): KernelPolicy {
  const decide = (prefix: string): 'accept' | 'reject' => (prefix === REJECTS[name] ? 'reject' : 'accept');
  return { key: name, decide, decide4: (a, l) => decide(prefixText(a * 64 + l)) };
}

const PREFIXES = ['10.65.0.0/26', '10.65.0.64/26', '10.65.1.0/24', '10.70.0.5/32', '192.0.2.0/24'];
const HOPS = [['10.0.0.2'], ['10.0.0.3'], ['10.0.0.2', '10.0.0.3'], ['10.0.0.1']]; // 10.0.0.1 is our own
const OWN = new Set(['10.0.0.1']);
const pfx = fc.constantFrom(...PREFIXES);
const hopsArb = fc.option(fc.constantFrom(...HOPS), { nil: null });
const lpArb = fc.constantFrom(undefined, 50, 200, 300);
const op = fc.oneof(
  fc.record({ op: fc.constant('batch' as const), changes: fc.array(fc.tuple(pfx, hopsArb, lpArb), { maxLength: 12 }) }),
  fc.record({ op: fc.constant('bgp' as const), p: pfx, hops: hopsArb, lp: lpArb }),
  fc.record({ op: fc.constant('policy' as const), name: fc.constantFrom('a', 'b') }),
  fc.record({ op: fc.constant('device' as const), p: pfx, dev: fc.option(fc.constantFrom('cali1', 'cali2'), { nil: null }) }),
  fc.record({ op: fc.constant('blackhole' as const), p: pfx, on: fc.boolean() }),
  fc.record({ op: fc.constant('open' as const), on: fc.boolean() }),
  fc.record({ op: fc.constant('stale' as const) }),
  fc.record({ op: fc.constant('sweep' as const) }),
  fc.record({ op: fc.constant('turn' as const) }),
);

/** The model: per prefix the three sources, the winner as the kernel should see it. */
class Model {
  bgp = new Map<string, { hops: readonly string[]; metric: number | undefined }>();
  stale = new Set<string>();
  dev = new Map<string, string>();
  bh = new Set<string>();
  policy: string | undefined;
  /** the winner and its metric (undefined: the default) */
  want(p: string): { v: string; metric: number | undefined } | undefined {
    const rejected = this.policy !== undefined && REJECTS[this.policy] === p;
    const learned = this.bgp.get(p);
    const h = rejected ? undefined : learned?.hops.filter((x) => !OWN.has(x));
    const bgp = h === undefined || h.length === 0 ? undefined : h.join(',');
    if (bgp !== undefined && learned!.metric !== undefined) return { v: bgp, metric: learned!.metric };
    const d = this.dev.get(p);
    if (d !== undefined) return { v: d, metric: undefined };
    if (this.bh.has(p) && !rejected) return { v: 'blackhole', metric: undefined };
    return bgp === undefined ? undefined : { v: bgp, metric: undefined };
  }
  setBgp(p: string, hops: readonly string[] | null, lp?: number): void {
    this.stale.delete(p);
    if (hops === null || hops.length === 0) this.bgp.delete(p);
    else this.bgp.set(p, { hops, metric: elevation(lp) });
  }
}

t.test('any interleaving of queued batches and direct changes ends in the model\'s kernel, each change once', async () => {
  await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
    const { fib, kernel } = fakeFib();
    const rt = new RouteTable(fib, { sliceMs: 0 });
    rt.own = OWN;
    rt.elevation = (ev) => elevation(ev.attributes?.localPref);
    // the same operations on a table with no kernel behind it (skeind with the FIB off), watched only some of the
    // time: it skips the kernel's side of a change when nobody listens, and must still hold what the other one holds
    const bare = new RouteTable(undefined, { sliceMs: 0 });
    bare.own = OWN;
    bare.elevation = rt.elevation;
    let watching = false;
    const watched: string[] = [];
    bare.onWriteWanted = () => watching;
    bare.onWrite = (p) => watched.push(p);
    const tables = [rt, bare];
    const m = new Model();
    let open = false;
    let everOpen = false;
    for (const o of ops) {
      switch (o.op) {
        case 'batch':
          // the model applies the batch at once; the table queues it: anything else done before it is applied
          // must still end the same, because queued changes are BGP-only and applied in order
          for (const x of tables) x.bestChanges(o.changes.map(([p, h, lp]) => best(keyOfText(p), h, lp)));
          for (const [p, h, lp] of o.changes) m.setBgp(p, h, lp);
          break;
        case 'bgp':
          for (const x of tables) x.drain(); // a direct change is newer than what is queued
          for (const x of tables) x.setBgp(o.p, o.hops, elevation(o.lp));
          m.setBgp(o.p, o.hops, o.lp);
          break;
        case 'policy':
          for (const x of tables) x.drain();
          for (const x of tables) x.setPolicy(policyOf(o.name));
          m.policy = o.name;
          break;
        case 'device':
          for (const x of tables) x.setDevice(o.p, o.dev);
          if (o.dev === null) m.dev.delete(o.p);
          else m.dev.set(o.p, o.dev);
          break;
        case 'blackhole':
          for (const x of tables) x.setBlackhole(o.p, o.on);
          if (o.on) m.bh.add(o.p);
          else m.bh.delete(o.p);
          break;
        case 'open':
          for (const x of tables) x.drain();
          for (const x of tables) x.setOpen(o.on);
          open = o.on;
          everOpen ||= o.on;
          break;
        case 'stale':
          for (const x of tables) x.markBgpStale();
          for (const p of m.stale) m.bgp.delete(p); // a second mark sweeps what the first left
          m.stale = new Set(m.bgp.keys());
          break;
        case 'sweep': {
          const n = rt.sweepBgpStale();
          if (bare.sweepBgpStale() !== n) throw new Error('the FIB-less table swept another count');
          if (n !== m.stale.size) throw new Error(`swept ${n}, model ${m.stale.size}`);
          for (const p of m.stale) m.bgp.delete(p);
          m.stale.clear();
          break;
        }
        case 'turn':
          watching = !watching;
          await new Promise((r) => setImmediate(r));
          break;
      }
    }
    await rt.idle();
    await bare.idle();
    if (rt.pending !== 0 || bare.pending !== 0) throw new Error(`pending ${rt.pending} ${bare.pending}`);
    if (!everOpen && watched.length > 0) throw new Error('a write was told while the gate was never open');
    for (const p of PREFIXES) {
      const want = m.want(p);
      const d = rt.desired(p);
      const got = d === undefined ? undefined : d.kind === 'device' ? d.dev : d.kind === 'blackhole' ? 'blackhole' : d.nextHops.filter((x) => !OWN.has(x)).join(',');
      if (got !== want?.v) throw new Error(`${p}: desired ${got}, model ${want?.v}`);
      if (JSON.stringify(bare.desired(p)) !== JSON.stringify(d)) throw new Error(`${p}: the FIB-less table wants ${JSON.stringify(bare.desired(p))}, the other ${JSON.stringify(d)}`);
      if (open && bare.metricOf(p) !== rt.metricOf(p)) throw new Error(`${p}: the FIB-less table's metric ${bare.metricOf(p)}, the other ${rt.metricOf(p)}`);
      if (open) {
        if (rt.metricOf(p) !== want?.metric) throw new Error(`${p}: metric ${rt.metricOf(p)}, model ${want?.metric}`);
        // exactly one kernel route for the prefix, at the model's metric, or none
        const inKernel = [...kernel].filter(([k]) => k.startsWith(`${p}@`)).map(([k, v]) => `${k}=${v}`);
        const expect = want === undefined ? [] : [`${p}@${want.metric ?? 'd'}=${want.v}`];
        if (inKernel.join(' ') !== expect.join(' ')) throw new Error(`${p}: kernel ${inKernel.join(' ')}, model ${expect.join(' ')}`);
      }
    }
    if (!everOpen && kernel.size > 0) throw new Error('written while the gate was never open');
  }), { numRuns: 300 });
});

function keyOfText(p: string): PrefixKey {
  const [a, l] = p.split('/');
  const n = a!.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  return key4(n, Number(l));
}

t.test('a large batch is applied in slices: the loop turns in between, and each change lands once', async (t) => {
  const { fib, calls } = fakeFib();
  const rt = new RouteTable(fib, { sliceMs: 0 });
  rt.setOpen(true);
  const N = 5000;
  const base = (10 << 24) >>> 0;
  rt.bestChanges(Array.from({ length: N }, (_, i) => best(key4(base + i, 32), ['10.0.0.2'])));
  t.equal(rt.pending, N, 'queued, nothing applied synchronously');
  t.equal(calls.length, 0);
  const seen: number[] = [];
  let turns = 0;
  while (rt.pending > 0 && turns < 10_000) {
    await new Promise((r) => setImmediate(r));
    turns++;
    seen.push(rt.pending);
  }
  t.equal(rt.pending, 0);
  t.ok(seen.some((p) => p > 0 && p < N), 'the event loop turned while part of the batch was applied');
  t.equal(calls.length, N, 'one write per prefix');
  t.equal(new Set(calls).size, N, 'no prefix written twice');
  // withdrawing half, with a direct change of one of them in between: the direct one is the last word
  rt.bestChanges(Array.from({ length: N / 2 }, (_, i) => best(key4(base + i, 32), null)));
  rt.drain();
  t.equal(calls.filter((c) => c.startsWith('remove')).length, N / 2);
  t.equal(rt.size, N / 2);
});

t.test('the policy\'s IPv4 decision on numbers equals its decision on text', (t) => {
  const v3 = 'projectcalico.org/v3';
  const docs: unknown[] = [
    { apiVersion: v3, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asNumber: 64512, programClusterRoutes: 'Enabled', serviceClusterIPs: [{ cidr: '10.96.0.0/12' }], serviceExternalIPs: [{ cidr: '0.0.0.0/1' }] } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'plain' }, spec: { cidr: '10.65.0.0/16' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'ipip' }, spec: { cidr: '10.66.0.0/16', ipipMode: 'Always' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'cross' }, spec: { cidr: '10.67.0.0/16', ipipMode: 'CrossSubnet' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'vxlan' }, spec: { cidr: '10.68.0.0/16', vxlanMode: 'Always' } },
    { apiVersion: v3, kind: 'IPPool', metadata: { name: 'big' }, spec: { cidr: '172.16.0.0/12', ipipMode: 'CrossSubnet' } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'a' }, spec: { bgp: { ipv4Address: '10.0.0.1/24' }, wireguard: { interfaceIPv4Address: '10.65.9.1' } } },
    { apiVersion: v3, kind: 'Node', metadata: { name: 'w' }, spec: { bgp: { ipv4Address: '10.0.0.9/24' }, wireguard: { interfaceIPv4Address: '10.65.9.9' } } },
  ];
  const r = loadResourcesText(docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''), 'r.yaml');
  t.same(r.issues, []);
  const p = kernelPolicy(r.model, 'a');
  // addresses near the interesting edges, any length
  const addr = fc.oneof(
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.constantFrom(0x0a410000, 0x0a420000, 0x0a430000, 0x0a440000, 0x0a600000, 0xac100000, 0x80000000, 0x7fffffff).chain((b) => fc.integer({ min: -70000, max: 70000 }).map((d) => (b + d) >>> 0)),
  );
  const hop = fc.constantFrom('10.0.0.2', '10.1.0.3', '10.0.0.9', '172.16.0.1');
  fc.assert(fc.property(addr, fc.integer({ min: 0, max: 32 }), fc.array(hop, { minLength: 1, maxLength: 3 }), (a, len, hops) => {
    const masked = len === 0 ? 0 : (a & (0xffffffff << (32 - len))) >>> 0;
    const text = `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${len}`;
    const want = p.decide(text, hops);
    const got = p.decide4(masked, len, hops);
    if (got !== want) throw new Error(`${text} via ${hops.join(',')}: decide4 ${got}, decide ${want}`);
  }), { numRuns: 3000 });
  t.pass('decide4 = decide');
  t.end();
});
