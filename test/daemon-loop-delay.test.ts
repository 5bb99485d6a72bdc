// Event-loop delay (src/loop-delay.ts) and its series in /metrics: a block of the loop is seen, a reset starts a
// new window, the figures are ordered (p50 <= p99 <= max) and carry the resolution off (an idle loop is not
// reported as 10 ms late), and skein_event_loop_delay_seconds is exactly what the source says, per quantile.
import t from 'tap';
import { LoopDelay } from '../src/loop-delay.js';
import { Metrics } from '../src/metrics.js';

const block = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* block the event loop on purpose */ }
};
const turn = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a blocked loop is measured; take() starts a new window', async (t) => {
  const d = new LoopDelay(10).start();
  t.teardown(() => d.stop());
  t.equal(d.summary().samples, 0, 'nothing sampled before the loop turned');
  await turn(30);
  block(150);
  await turn(30);
  const s = d.take();
  t.ok(s.samples > 0, 'samples were taken');
  t.ok(s.max > 0, 'the block made the sampling timer late');
  t.ok(s.p50 >= 0 && s.p50 <= s.p99 && s.p99 <= s.max, `ordered: ${JSON.stringify(s)}`);
  t.same(d.summary(), { p50: 0, p99: 0, max: 0, samples: 0 }, 'take() reset the window');
});

t.test('stop() ends sampling; summary of an empty window is zeros, never NaN', async (t) => {
  const d = new LoopDelay(10).start();
  d.stop();
  d.reset();
  await turn(40);
  const s = d.summary();
  t.same(s, { p50: 0, p99: 0, max: 0, samples: 0 });
});

t.test('skein_event_loop_delay_seconds reports the source per quantile, read at scrape time', async (t) => {
  const m = new Metrics({ defaultMetrics: false });
  t.notMatch((await m.scrape()).body, /^skein_event_loop_delay_seconds\{/m, 'no series without a source');
  let calls = 0;
  m.loopDelaySource(() => {
    calls++;
    return { p50: 0.001, p99: 0.025, max: 0.5, samples: 100 };
  });
  const body = (await m.scrape()).body;
  const lines = new Set(body.split('\n'));
  t.ok(lines.has('skein_event_loop_delay_seconds{quantile="0.5"} 0.001'), 'p50');
  t.ok(lines.has('skein_event_loop_delay_seconds{quantile="0.99"} 0.025'));
  t.ok(lines.has('skein_event_loop_delay_seconds{quantile="1"} 0.5'));
  t.equal(calls, 1, 'the source is read once per scrape');
  await m.scrape();
  t.equal(calls, 2);
});
