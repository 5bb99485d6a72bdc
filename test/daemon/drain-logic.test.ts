// The drain's state machine alone (src/daemon/drain.ts), with a fake clock, a fake timer and a stand-in speaker that
// records what it is told; test/daemon/drain-config, drain-bird and drain-traffic run the same code against real sessions.
import t from 'tap';
import type { Speaker } from '../../bgp/index.js';
import { ControlError } from '../../src/control/index.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Drain, SHUTDOWN_MESSAGE } from '../../src/daemon/drain.js';
import { jobKind, ownUnit, stopKind } from '../../src/daemon/systemd-job.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';

function rig(o: { seconds?: number; established?: boolean; stateFile?: string; now?: number; logs?: string[] } = {}) {
  let now = o.now ?? 1_000_000;
  const timers: { fn: () => void; at: number; live: boolean }[] = [];
  const calls: boolean[] = [];
  const speaker = {
    setDraining: (on: boolean) => void calls.push(on),
    peerAddresses: () => ['192.0.2.1'],
    peerInfo: () => ({ state: o.established === false ? 'Active' : 'Established' }),
  };
  const cfg = { seconds: o.seconds ?? 0 };
  const notified: string[] = [];
  const metrics = new Metrics({});
  const drain = new Drain({
    log: createLogger({ level: 'warn', sink: (l: string) => void o.logs?.push(l) }),
    ...(o.stateFile !== undefined ? { stateFile: o.stateFile } : {}),
    metrics,
    seconds: () => cfg.seconds,
    speaker: () => speaker as unknown as Speaker,
    notify: (s) => void notified.push(s),
    now: () => now,
    setTimer: (fn, ms) => {
      const tm = { fn, at: now + ms, live: true };
      timers.push(tm);
      return {};
    },
    clearTimer: () => {
      for (const tm of timers) tm.live = false;
    },
  });
  /** moves the clock and runs the timers that are due */
  const advance = (ms: number): void => {
    now += ms;
    for (const tm of timers.filter((x) => x.live && x.at <= now)) {
      tm.live = false;
      tm.fn();
    }
  };
  return { drain, calls, advance, cfg, metrics, notified, now: () => now };
}

t.test('skeinctl drain: draining, then drained after the wait; again is a no-op; undrain reverts', async (t) => {
  const { drain, calls, advance } = rig({ seconds: 0 });
  const j = drain.control({});
  t.equal((j as { state: string }).state, 'draining');
  t.equal((j as { seconds: number }).seconds, 30, 'bgp.shutdownDrainSeconds 0: the default wait');
  t.same(calls, [true], 'the speaker told once');
  void drain.control({ seconds: 5 });
  t.same(calls, [true], 'a second drain changes nothing');
  let settled = false;
  const waiting = drain.settled().then((x) => {
    settled = true;
    return x;
  });
  advance(29_000);
  await Promise.resolve();
  t.equal(drain.json().secondsLeft, 1);
  t.notOk(settled, 'not drained before the wait is over');
  advance(1_000);
  t.equal((await waiting).state, 'drained');
  t.equal(drain.state, 'drained');
  t.equal(drain.undrain().state, 'off');
  t.same(calls, [true, false]);
  t.equal(drain.undrain().state, 'off', 'undrain when off: nothing');
  t.same(calls, [true, false], 'the speaker not told again');
});

t.test('undrain during the wait: the old timer does not make it drained', (t) => {
  const { drain, advance } = rig({ seconds: 10 });
  void drain.control({});
  t.equal(drain.json().seconds, 10, 'the configured seconds');
  drain.undrain();
  advance(20_000);
  t.equal(drain.state, 'off');
  t.end();
});

t.test('bad seconds are refused with a ControlError; a new speaker inherits the drain', (t) => {
  const { drain } = rig();
  for (const s of [-1, 1.5, 3601, '10', null]) t.throws(() => drain.control({ seconds: s }), ControlError, `seconds ${JSON.stringify(s)}`);
  t.equal(drain.state, 'off', 'nothing started');
  const told: boolean[] = [];
  const other = { setDraining: (on: boolean) => void told.push(on) } as unknown as Speaker;
  drain.attach(other);
  t.same(told, [], 'off: a new speaker is left alone');
  void drain.control({ seconds: 1 });
  drain.attach(other);
  t.same(told, [true], 'draining: a new speaker drains too');
  t.end();
});

t.test('a stop: no key, no drain; with the key, drain, wait, then the shutdown message', async (t) => {
  const off = rig({ seconds: 0 });
  t.equal(await off.drain.beforeStop(), undefined, 'bgp.shutdownDrainSeconds 0: a restart');
  t.same(off.calls, [], 'nothing re-announced');

  const on = rig({ seconds: 5 });
  const p = on.drain.beforeStop();
  t.equal(on.drain.state, 'draining');
  t.equal(on.drain.json().stopping, true);
  t.throws(() => on.drain.undrain(), /stopping/, 'undrain refused while stopping');
  on.advance(5_000);
  t.equal(await p, SHUTDOWN_MESSAGE);
  t.same(on.calls, [true]);
  t.match(on.notified[0], /^STOPPING=1\nEXTEND_TIMEOUT_USEC=20000000$/, 'systemd is asked for the drain\'s time plus 15 s');
  t.match(on.notified.at(-1), /^STATUS=drained .*stopping/, 'and told when it is drained');
  t.same(off.notified, [], 'no drain: systemd hears nothing from it');
});

t.test('a stop after a long manual drain waits at most the configured time; a second signal cuts it', async (t) => {
  const r = rig({ seconds: 5 });
  void r.drain.control({ seconds: 600 });
  const p = r.drain.beforeStop();
  r.advance(5_000);
  t.equal(await p, SHUTDOWN_MESSAGE, 'over after 5 s, not 600');

  const h = rig({ seconds: 60 });
  const q = h.drain.beforeStop();
  h.drain.hurry();
  t.equal(await q, SHUTDOWN_MESSAGE, 'hurry ends the wait');
  t.equal(h.drain.state, 'drained');
});

t.test('a stop with no established peer does not wait; already drained does not wait either', async (t) => {
  const r = rig({ seconds: 60, established: false });
  t.equal(await r.drain.beforeStop(), SHUTDOWN_MESSAGE, 'resolved without the clock moving');
  const d = rig({ seconds: 60 });
  void d.drain.control({ seconds: 1 });
  d.advance(1_000);
  t.equal(await d.drain.beforeStop(), SHUTDOWN_MESSAGE, 'drained already');
  t.same(d.calls, [true], 'announced once');
});

t.test('the gauge follows the state', async (t) => {
  const { drain, metrics, advance } = rig({ seconds: 1 });
  const read = async (): Promise<string> => metrics.registry.getSingleMetricAsString('skein_drain_state');
  t.match(await read(), /state="off"\} 1/);
  void drain.control({});
  t.match(await read(), /state="draining"\} 1/);
  t.match(await read(), /state="off"\} 0/);
  advance(1_000);
  t.match(await read(), /state="drained"\} 1/);
  t.match(await read(), /state="draining"\} 0/);
});

t.test('drain.json: a skeinctl drain outlives a restart; undrain removes it; a stop\'s drain is not kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-drain-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'drain.json');
  const a = rig({ seconds: 0, stateFile: file });
  void a.drain.control({ seconds: 60 });
  t.match(JSON.parse(readFileSync(file, 'utf8')), { state: 'draining', seconds: 60 }, 'written when the drain starts');
  a.advance(20_000);
  // a restart 20 s into the wait: the new skeind is draining with 40 s left, and tells its speaker
  const b = rig({ seconds: 0, stateFile: file, now: a.now() });
  t.equal(b.drain.state, 'draining', 'the next skeind starts draining');
  t.equal(b.drain.json().secondsLeft, 40, 'with what was left of the wait');
  b.drain.attach({ setDraining: (on: boolean) => void b.calls.push(on) } as unknown as Speaker);
  t.same(b.calls, [true], 'its speaker advertises drained routes from the start');
  b.advance(40_000);
  t.equal(b.drain.state, 'drained');
  t.match(JSON.parse(readFileSync(file, 'utf8')), { state: 'drained' }, 'drained is written too');
  // a restart long after: still drained (maintenance lasts until undrain)
  const c = rig({ seconds: 0, stateFile: file, now: b.now() + 3_600_000 });
  t.equal(c.drain.state, 'drained');
  c.drain.undrain();
  t.notOk(existsSync(file), 'undrain removes drain.json');
  const d = rig({ seconds: 0, stateFile: file });
  t.equal(d.drain.state, 'off', 'and the next skeind starts undrained');
  // a wait that ran out while skeind was away reads as drained
  const e = rig({ seconds: 0, stateFile: file });
  void e.drain.control({ seconds: 10 });
  const f = rig({ seconds: 0, stateFile: file, now: e.now() + 11_000 });
  t.equal(f.drain.state, 'drained', 'the wait ran out during the restart: drained');
  f.drain.undrain();
  // a stop with bgp.shutdownDrainSeconds drains but leaves nothing: the node left, and comes back undrained
  const g = rig({ seconds: 5, stateFile: file });
  const stopping = g.drain.beforeStop();
  g.advance(5_000);
  t.equal(await stopping, SHUTDOWN_MESSAGE);
  t.notOk(existsSync(file), 'a stop\'s drain is not written');
});

t.test('drain.json: no state directory, or a broken file: one warning, and the drain works as before', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-drain-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const logs: string[] = [];
  const a = rig({ seconds: 0, stateFile: join(dir, 'absent', 'drain.json'), logs });
  void a.drain.control({ seconds: 5 });
  a.advance(5_000);
  t.equal(a.drain.state, 'drained', 'the drain itself is unaffected');
  t.notOk(existsSync(join(dir, 'absent')), 'skeind does not make the directory (systemd\'s StateDirectory= does)');
  t.equal(logs.filter((l) => /cannot be kept for a restart/.test(l)).length, 1, 'one warning, not one per change');
  writeFileSync(join(dir, 'drain.json'), '{"state":"sideways"}');
  const b = rig({ seconds: 0, stateFile: join(dir, 'drain.json'), logs });
  t.equal(b.drain.state, 'off', 'unexpected content: undrained');
  t.ok(logs.some((l) => /drain\.json unreadable/.test(l)), 'and said so');
});

t.test('systemd job: a restart job of our unit tells a restart from a stop', async (t) => {
  t.equal(ownUnit('0::/system.slice/skein.service\n'), 'skein.service', 'the unit from a cgroup v2 path');
  t.equal(ownUnit('12:pids:/system.slice/skein.service\n0::/system.slice/skein.service\n'), 'skein.service', 'hybrid hierarchy');
  t.equal(ownUnit('0::/user.slice/user-0.slice/session-3.scope\n'), undefined, 'run by hand: no service');
  const jobs = ' 912 skein.service      restart running\n 913 skein-bfd.service  stop    waiting\n';
  t.equal(jobKind(jobs, 'skein.service'), 'restart');
  t.equal(jobKind(jobs, 'skein-bfd.service'), 'stop');
  t.equal(jobKind(' 914 skein.service stop running\n', 'skein.service'), 'stop');
  t.equal(jobKind('', 'skein.service'), 'unknown', 'no job (a signal by hand): unknown');
  t.equal(jobKind(' 915 skeind-other.service restart running\n', 'skein.service'), 'unknown', 'another unit\'s job is not ours');
  t.equal(await stopKind({ unit: undefined }), 'unknown', 'outside systemd: unknown, no command run');
  t.equal(await stopKind({ unit: 'skein.service', systemctl: '/nonexistent/systemctl' }), 'unknown', 'no systemctl: unknown');
});
