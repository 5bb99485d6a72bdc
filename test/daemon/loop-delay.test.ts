// src/loop-delay.ts: the adaptive event-loop delay sampler. A quiet loop is sampled at most every SLOW_MS (not at the
// fixed 1 ms of monitorEventLoopDelay); a stall that covers a due time is recorded at its length, and once the loop is
// busy the sampler goes back to FAST_MS; closing the last view stops the timer. No wall time is asserted beyond
// "the stall was seen at no less than part of its length", which load can only make larger. While busy the samples come
// from Node's native monitor and reach the views through sync().
import t from 'tap';
import { CHECK_MS, FAST_MS, LoopDelaySampler, SLOW_MS } from '../../src/loop-delay.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* stall the loop on purpose */ }
}
async function until(f: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await sleep(5);
  return f();
}

t.test('a quiet loop backs off to the slow interval', async (t) => {
  const s = new LoopDelaySampler();
  const h = s.open();
  t.equal(s.interval, FAST_MS, 'starts at the fast interval');
  t.ok(await until(() => s.interval === SLOW_MS), `reaches ${SLOW_MS} ms while nothing runs (at ${s.interval})`);
  t.ok(h.count > 0, 'samples were recorded');
  s.close(h);
});

t.test('a stall is recorded at its length and makes the sampler fast again', async (t) => {
  const s = new LoopDelaySampler();
  const h = s.open();
  const other = s.open();
  t.ok(await until(() => s.interval === SLOW_MS), 'quiet first');
  // A stall longer than the slow interval must cover a due time, so it is seen however the phases fall.
  const before = s.samples;
  const ups = s.speedUps;
  block(3 * SLOW_MS);
  t.ok(await until(() => s.samples > before), 'a sample after the stall');
  t.ok(h.max >= 2 * SLOW_MS * 1e6, `the stall is seen at >= ${2 * SLOW_MS} ms (max ${(h.max / 1e6).toFixed(1)} ms)`);
  t.equal(other.max, h.max, 'every open view records the same samples');
  // (by the time this runs it may already be backing off again: a quiet loop after the stall)
  t.ok(s.speedUps > ups, 'a late sample brings back the fast interval');
  h.reset();
  t.equal(h.count, 0, 'a view resets on its own');
  t.ok(other.count > 0, '... and not the others');
  s.close(h);
  s.close(other);
});

t.test('closing the last view stops sampling; a closed view records nothing more', async (t) => {
  const s = new LoopDelaySampler();
  const a = s.open();
  const b = s.open();
  await until(() => s.samples >= 3);
  s.close(a);
  const countA = a.count;
  const n = s.samples;
  await until(() => s.samples > n + 2);
  t.equal(a.count, countA, 'the closed view is left alone');
  t.ok(b.count > countA, 'the open one keeps recording');
  s.close(b);
  const stopped = s.samples;
  await sleep(3 * SLOW_MS);
  t.equal(s.samples, stopped, 'no sample after the last view is closed');
  // and it starts again with a new view
  const c = s.open();
  t.ok(await until(() => c.count > 0), 'a new view restarts the timer');
  s.close(c);
});

t.test('while busy the native samples reach every view through sync(), stalls at their length; then quiet again', async (t) => {
  const s = new LoopDelaySampler();
  const h = s.open();
  const other = s.open();
  t.ok(await until(() => s.interval === SLOW_MS), 'quiet first');
  block(3 * SLOW_MS);
  t.ok(await until(() => s.interval === FAST_MS), 'busy after a stall');
  h.reset();
  other.reset();
  const before = s.samples;
  // Short stalls with gaps, each shorter than a check window: only the native monitor sees them one by one.
  for (let i = 0; i < 10; i++) {
    block(20);
    await sleep(3);
  }
  t.equal(s.interval, FAST_MS, 'still busy while the loop works');
  s.sync();
  t.ok(s.samples > before, `busy samples were counted (${s.samples - before})`);
  t.ok(h.count > 0, 'the view has them');
  t.ok(h.max >= 10e6, `a 20 ms stall reads >= 10 ms (max ${(h.max / 1e6).toFixed(1)} ms)`);
  t.ok(h.min >= 1, 'no sample below 1 ns');
  t.equal(other.count, h.count, 'every view gets the same samples');
  t.equal(other.max, h.max, '... with the same max');
  const n = h.count;
  s.sync();
  t.equal(h.count, n, 'a second sync adds nothing (the native histogram was emptied)');
  t.ok(await until(() => s.interval === SLOW_MS, 20 * CHECK_MS + 10_000), 'back to the slow interval once the loop is quiet');
  s.close(h);
  s.close(other);
});

t.test('a short burst right after going quiet leaves it quiet; sustained work makes it busy', async (t) => {
  const s = new LoopDelaySampler();
  const h = s.open();
  t.ok(await until(() => s.interval === SLOW_MS), 'quiet first');
  // A host handling a workload event now and then: busy for a moment, quiet again, then the next event's few ms of
  // work. Judged over the quiet timer's first 10 ms interval alone, 3 ms read as 30% busy and flipped the sampler
  // back to its 1 ms mode after nearly every event; over a window of at least JUDGE_MS it is a few percent.
  let flips = 0;
  for (let i = 0; i < 5; i++) {
    block(3 * SLOW_MS);
    t.ok(await until(() => s.interval === FAST_MS), `busy after a stall (${i + 1})`);
    t.ok(await until(() => s.interval !== FAST_MS, 20 * CHECK_MS + 10_000), `quiet again (${i + 1})`);
    const ups = s.speedUps;
    block(3);
    await sleep(3 * CHECK_MS);
    if (s.speedUps !== ups) flips++;
  }
  t.equal(flips, 0, 'no switch to the busy mode for 3 ms of work right after going quiet (5 tries)');
  // a loop working most of the time is busy, however the windows fall
  const ups = s.speedUps;
  for (let i = 0; i < 40 && s.interval !== FAST_MS; i++) {
    block(15);
    await sleep(1);
  }
  t.equal(s.interval, FAST_MS, 'busy while the loop works 15 ms of every ~16');
  t.ok(s.speedUps > ups, 'counted as a switch to the busy mode');
  s.close(h);
});
