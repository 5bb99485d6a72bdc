// Framer throughput: a 64 MiB stream of BGP messages (UPDATE-sized, 23..4096
// octets, valid headers) fed in socket-sized chunks (64 KiB, as a busy TCP
// socket delivers, and 1460 octets, one segment each). Prints messages/s and
// MB/s, and two references measured in the same run: copying the same chunks
// into one buffer (the memcpy floor), and a naive framer that concatenates
// every chunk onto what it holds (the approach the framer avoids).
//
// Run: npm run bench (or: npm run build && node --expose-gc dist/bench/framer.js)
import { Framer } from '../bgp/wire/framer.js';
import { writeHeader } from '../bgp/wire/header.js';

const TOTAL = 64 * 1024 * 1024;
const ROUNDS = 5;

let seed = 0xf4a3;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}

// the stream: mostly full messages (a table dump packs them), some small ones
const stream = Buffer.alloc(TOTAL);
let count = 0;
let off = 0;
for (;;) {
  const len = rnd() < 0.8 ? 4096 : 23 + Math.floor(rnd() * 4000);
  if (off + len > TOTAL) break;
  writeHeader(stream, off, len, 2);
  off += len;
  count++;
}
const used = stream.subarray(0, off);

function chunks(size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < used.length; i += size) out.push(used.subarray(i, Math.min(i + size, used.length)));
  return out;
}

function best(fn: () => number): { ms: number; n: number } {
  let ms = Infinity;
  let n = 0;
  for (let r = 0; r < ROUNDS; r++) {
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = process.hrtime.bigint();
    n = fn();
    const dt = Number(process.hrtime.bigint() - t0) / 1e6;
    if (dt < ms) ms = dt;
  }
  return { ms, n };
}

function framer(cs: Buffer[]): number {
  const f = new Framer();
  let n = 0;
  for (const c of cs) {
    f.push(c);
    while (f.next() !== null) n++;
  }
  return n;
}

const dst = Buffer.allocUnsafe(used.length);
function copyFloor(cs: Buffer[]): number {
  let o = 0;
  for (const c of cs) o += c.copy(dst, o);
  return o === used.length ? count : -1;
}

/** What not to do: append every chunk to the held bytes with Buffer.concat. */
function naive(cs: Buffer[]): number {
  let held = Buffer.alloc(0);
  let n = 0;
  for (const c of cs) {
    held = Buffer.concat([held, c]);
    while (held.length >= 19) {
      const len = held.readUInt16BE(16);
      if (held.length < len) break;
      held = held.subarray(len);
      n++;
    }
  }
  return n;
}

const mb = used.length / 1e6;
console.log(`stream: ${count} messages, ${mb.toFixed(1)} MB`);
for (const size of [65536, 1460]) {
  const cs = chunks(size);
  const f = best(() => framer(cs));
  if (f.n !== count) throw new Error(`framer returned ${f.n} messages, expected ${count}`);
  const c = best(() => copyFloor(cs));
  const nv = best(() => naive(cs));
  if (nv.n !== count) throw new Error(`naive framer returned ${nv.n}`);
  const line = (name: string, r: { ms: number }): string =>
    `  ${name.padEnd(34)} ${r.ms.toFixed(1).padStart(8)} ms  ${(mb / (r.ms / 1000)).toFixed(0).padStart(6)} MB/s  ${((count / r.ms) * 1000 / 1e6).toFixed(2)}M msgs/s`;
  console.log(`chunks of ${size} octets (${cs.length} chunks), best of ${ROUNDS}:`);
  console.log(line('Framer', f));
  console.log(line('reference: copy chunks (memcpy)', c));
  console.log(line('reference: naive concat framer', nv));
}
