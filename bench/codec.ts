// UPDATE codec throughput: a feed of 1,000,000 IPv4 prefixes in realistic
// UPDATEs (a few thousand distinct attribute sets, ~300 prefixes per message,
// AS paths of 2-6 ASNs, communities on some), decoded and encoded on one core.
// Prints prefixes/s for decode, encode (re-encoding decoded messages) and the
// packer (one attribute set, many prefixes), bytes allocated per prefix, and
// references measured in the same run: a loop that only walks the NLRI bytes
// (the floor for decoding) and Buffer.copy of the same bytes (the floor for
// encoding). Targets: decode >= 5M prefixes/s, encode >= 3M prefixes/s.
//
// Run: npm run bench (or: npm run build && node --expose-gc dist/bench/codec.js)
import { GCProfiler } from 'node:v8';
import { decodeUpdate, encodeUpdate, packUpdates } from '../bgp/wire/update.js';
import { DEFAULT_CONTEXT } from '../bgp/wire/types.js';
import type { CodecContext, PathAttributes, PrefixList, UpdateMessage } from '../bgp/wire/types.js';
import { prefix4, prefix6FromBytes } from '../bgp/wire/prefix.js';

const TOTAL_PREFIXES = 1_000_000;
const PER_MESSAGE = 300;
const ATTR_SETS = 3000;
const ROUNDS = 7;
const DECODE_TARGET = 5e6;
const ENCODE_TARGET = 3e6;

const ctx: CodecContext = DEFAULT_CONTEXT; // 4-octet AS, 4096-octet messages, no ADD-PATH

// a small deterministic PRNG (mulberry32) so every run measures the same feed
let seed = 0x5eed;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}
const pick = (n: number): number => Math.floor(rnd() * n);

function attributeSet(): PathAttributes {
  const len = 2 + pick(5); // 2..6 ASNs
  const asns = Array.from({ length: len }, () => (rnd() < 0.2 ? 4200000000 + pick(1e6) : 1 + pick(64000)));
  const a: PathAttributes = {
    origin: pick(3) as 0 | 1 | 2,
    asPath: [{ type: 2, asns }],
    nextHop: `192.0.2.${1 + pick(250)}`,
    ...(rnd() < 0.5 && { med: pick(1000) }),
    ...(rnd() < 0.4 && { communities: Array.from({ length: 1 + pick(4) }, () => ((asns[0]! & 0xffff) * 65536 + pick(65536)) >>> 0) }),
    ...(rnd() < 0.1 && { largeCommunities: [[asns[0]!, pick(100), pick(100)] as const] }),
  };
  return a;
}

// the feed: distinct prefixes, mostly /24 with some /16-/23 and a few /25-/32
const attrSets = Array.from({ length: ATTR_SETS }, attributeSet);
const seen = new Set<number>();
const messages: Buffer[] = [];
const setOf: number[] = []; // which attribute set each message carries
let made = 0;
while (made < TOTAL_PREFIXES) {
  const n = Math.min(PER_MESSAGE - 20 + pick(41), TOTAL_PREFIXES - made);
  const prefixes: number[] = [];
  while (prefixes.length < n) {
    const r = rnd();
    const len = r < 0.8 ? 24 : r < 0.95 ? 16 + pick(8) : 25 + pick(8);
    const p = prefix4((1 + pick(223)) * 0x1000000 + pick(0x1000000), len);
    if (seen.has(p)) continue;
    seen.add(p);
    prefixes.push(p);
  }
  const nlri: PrefixList = { afi: 1, safi: 1, prefixes, pathIds: null };
  const set = pick(ATTR_SETS);
  setOf.push(set);
  messages.push(encodeUpdate({ withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null }, attributes: attrSets[set]!, nlri }, ctx));
  made += n;
}
const bodies = messages.map((m) => m.subarray(19));
const feedBytes = messages.reduce((s, m) => s + m.length, 0);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Run `fn` ROUNDS times after a warm-up; returns best and median prefixes/s. */
function measure(fn: () => number): { best: number; median: number } {
  fn();
  fn();
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    const n = fn();
    const ns = Number(process.hrtime.bigint() - t0);
    rates.push((n * 1e9) / ns);
  }
  return { best: Math.max(...rates), median: median(rates) };
}

/**
 * Bytes allocated on the V8 heap while `fn` runs: the growth of the used heap
 * plus whatever each garbage collection during the run reclaimed (v8.GCProfiler
 * reports the heap before and after every collection).
 */
function allocated(fn: () => void): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const profiler = new GCProfiler();
  const before = process.memoryUsage().heapUsed;
  profiler.start();
  fn();
  const after = process.memoryUsage().heapUsed;
  const data = profiler.stop();
  let reclaimed = 0;
  for (const s of data.statistics) reclaimed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
  return after - before + reclaimed;
}

// -------------------------------------------------------------- the phases

let sink = 0;

function decodeAll(): number {
  let n = 0;
  for (const b of bodies) {
    const m = decodeUpdate(b, ctx);
    n += m.nlri.prefixes.length;
  }
  sink += n;
  return n;
}

/** Reference: walk the NLRI bytes only (read each length octet, skip the prefix), no attribute parsing or output. */
function walkNlri(): number {
  let n = 0;
  let acc = 0;
  for (const b of bodies) {
    const wlen = (b[0]! << 8) | b[1]!;
    const alen = (b[2 + wlen]! << 8) | b[3 + wlen]!;
    let p = 4 + wlen + alen;
    while (p < b.length) {
      const len = b[p]!;
      acc ^= b[p + 1]!;
      p += 1 + ((len + 7) >> 3);
      n++;
    }
  }
  sink += acc;
  return n;
}

const decoded: UpdateMessage[] = bodies.map((b) => decodeUpdate(b, ctx));
for (const d of decoded) if (d.errors !== undefined) throw new Error('feed has errors');

function encodeAll(): number {
  let n = 0;
  for (const d of decoded) {
    const buf = encodeUpdate(d, ctx);
    sink += buf.length;
    n += d.nlri.prefixes.length;
  }
  return n;
}

// the packer: each attribute set with all its prefixes at once (what an
// Adj-RIB-Out flush does)
const groups = new Map<number, number[]>();
decoded.forEach((d, i) => {
  let g = groups.get(setOf[i]!);
  if (g === undefined) groups.set(setOf[i]!, (g = []));
  for (const p of d.nlri.prefixes as number[]) g.push(p);
});
const packJobs = [...groups].map(([set, prefixes]): [PathAttributes, PrefixList] => [attrSets[set]!, { afi: 1, safi: 1, prefixes, pathIds: null }]);

function packAll(): number {
  let n = 0;
  for (const [attrs, list] of packJobs) {
    const msgs = packUpdates(attrs, list, ctx);
    sink += msgs.length;
    n += list.prefixes.length;
  }
  return n;
}

/** Reference: copy the same bytes the encoder produces, one Buffer per message (the floor for encoding). */
function copyAll(): number {
  let n = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    const out = Buffer.allocUnsafe(m.length);
    m.copy(out);
    sink += out[20]!;
    n += decoded[i]!.nlri.prefixes.length;
  }
  return n;
}

// IPv6 for comparison (no target): 100,000 prefixes in MP_REACH_NLRI, packed
// per attribute set; Prefix6 is text, so each prefix costs a string
const V6_PREFIXES = 100_000;
const v6Jobs: [PathAttributes, PrefixList][] = [];
{
  const bytes = new Uint8Array(16);
  for (let made6 = 0; made6 < V6_PREFIXES; ) {
    const n = Math.min(PER_MESSAGE, V6_PREFIXES - made6);
    const prefixes: string[] = [];
    for (let i = 0; i < n; i++) {
      bytes.fill(0);
      bytes[0] = 0x20;
      bytes[1] = 0x01;
      for (let k = 2; k < 8; k++) bytes[k] = pick(256);
      prefixes.push(prefix6FromBytes(bytes, rnd() < 0.8 ? 48 : 64));
    }
    v6Jobs.push([attrSets[pick(ATTR_SETS)]!, { afi: 2, safi: 1, prefixes, pathIds: null }]);
    made6 += n;
  }
}
const v6Bodies = v6Jobs.flatMap(([a, l]) => packUpdates(a, l, ctx, undefined, ['2001:db8::1', 'fe80::1'])).map((m) => m.subarray(19));
function decode6(): number {
  let n = 0;
  for (const b of v6Bodies) n += decodeUpdate(b, ctx).mpReach!.nlri.prefixes.length;
  sink += n;
  return n;
}
function pack6(): number {
  let n = 0;
  for (const [a, l] of v6Jobs) {
    sink += packUpdates(a, l, ctx, undefined, ['2001:db8::1', 'fe80::1']).length;
    n += l.prefixes.length;
  }
  return n;
}

// ------------------------------------------------------------------ report

const fmt = (x: number): string => (x / 1e6).toFixed(2) + 'M';
console.log(
  `feed: ${messages.length} UPDATEs, ${made.toLocaleString('en')} IPv4 prefixes, ${ATTR_SETS} attribute sets, ${(feedBytes / 1e6).toFixed(1)} MB; ` +
    `node ${process.version}, ${ROUNDS} rounds after warm-up (best / median)`,
);
const dec = measure(decodeAll);
const walk = measure(walkNlri);
const enc = measure(encodeAll);
const pack = measure(packAll);
const copy = measure(copyAll);
console.log(`decode        ${fmt(dec.best)} / ${fmt(dec.median)} prefixes/s   (reference, NLRI byte walk: ${fmt(walk.best)} / ${fmt(walk.median)})`);
console.log(`encode        ${fmt(enc.best)} / ${fmt(enc.median)} prefixes/s   (reference, Buffer copy of the same bytes: ${fmt(copy.best)} / ${fmt(copy.median)})`);
console.log(`packUpdates   ${fmt(pack.best)} / ${fmt(pack.median)} prefixes/s   (${packJobs.length} attribute sets)`);
const dec6 = measure(decode6);
const pack6r = measure(pack6);
console.log(`IPv6 (MP_REACH, ${V6_PREFIXES.toLocaleString('en')} prefixes, no target): decode ${fmt(dec6.best)} / ${fmt(dec6.median)}, packUpdates ${fmt(pack6r.best)} / ${fmt(pack6r.median)} prefixes/s`);

const hasGc = typeof (globalThis as { gc?: unknown }).gc === 'function';
const aDec = allocated(() => decodeAll()) / made;
const aEnc = allocated(() => encodeAll()) / made;
const aPack = allocated(() => packAll()) / made;
const aCopy = allocated(() => copyAll()) / made;
console.log(
  `allocated per prefix: decode ${aDec.toFixed(1)} B, encode ${aEnc.toFixed(1)} B, packUpdates ${aPack.toFixed(1)} B, Buffer copy reference ${aCopy.toFixed(1)} B` +
    ` (V8 heap; Buffer contents live outside it${hasGc ? '' : '; run with --expose-gc for a clean baseline'})`,
);
const decOk = dec.median >= DECODE_TARGET;
const encOk = enc.median >= ENCODE_TARGET;
console.log(`target decode >= ${fmt(DECODE_TARGET)}/s: ${decOk ? 'MET' : 'NOT MET'} (median ${fmt(dec.median)})`);
console.log(`target encode >= ${fmt(ENCODE_TARGET)}/s: ${encOk ? 'MET' : 'NOT MET'} (median ${fmt(enc.median)}; packer ${fmt(pack.median)})`);
if (sink === 0.5) console.log('unreachable'); // keep results observable so nothing is optimised away
