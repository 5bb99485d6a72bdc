// BFD interop with real BIRD 2 (`protocol bfd`) across a veth pair between two
// network namespaces: skein's UDP driver (bfd-agent in namespace A) and BIRD
// (namespace B) bring a single-hop session Up both ways with the timers each
// side asked for; BIRD's "power loss" (its link set down inside its namespace)
// is detected by skein's detection timer (diag 1); skein's agent stopped
// (SIGSTOP: no more packets, no goodbye) is detected by BIRD.
import t from 'tap';
import { Bird } from '../helpers/bird.js';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { AgentClient } from '../helpers/agent-client.js';
import type { BfdKey, BfdSessionInfo } from '../../bgp/index.js';

const BFD_AGENT = 'dist/test/helpers/bfd-agent.js';

interface BirdBfdSession {
  address: string;
  iface: string;
  state: string;
  intervalSec: number;
  timeoutSec: number;
}

/** `show bfd sessions`: "10.31.0.1  v0b  Up  12:00:00.123  0.100  0.300" rows. */
function birdSessions(bird: Bird): BirdBfdSession[] {
  const text = bird.birdc('show', 'bfd', 'sessions');
  const rows: BirdBfdSession[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d+\.\d+\.\d+|[0-9a-f:]+)\s+(\S+)\s+(\S+)\s+\S+(?:\s+\S+)?\s+([\d.]+)\s+([\d.]+)\s*$/.exec(line.trim());
    if (m) rows.push({ address: m[1]!, iface: m[2]!, state: m[3]!, intervalSec: Number(m[4]), timeoutSec: Number(m[5]) });
  }
  return rows;
}

t.test('BFD with BIRD 2: Up both ways, negotiated timers, power loss detected on both sides', async (t) => {
  if (!requires(t, { root: true, commands: ['bird', 'birdc'] })) return;
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const nsA = lab.ns('bfa');
  const nsB = lab.ns('bfb');
  const [va, vb] = lab.link(nsA, nsB);
  lab.addr(nsA, va, '10.31.0.1/24');
  lab.addr(nsB, vb, '10.31.0.2/24');
  lab.addr(nsA, va, 'fd00:31::1/64');
  lab.addr(nsB, vb, 'fd00:31::2/64');

  const bird = new Bird(nsB);
  t.teardown(() => bird.stop());
  await bird.start(`
log stderr all;
router id 10.31.0.2;
protocol device { scan time 1; }
protocol bfd bfd1 {
  interface "${vb}" {
    min rx interval 100 ms;
    min tx interval 150 ms;
    idle tx interval 1 s;
    multiplier 4;
  };
  neighbor 10.31.0.1 dev "${vb}" local 10.31.0.2;
  neighbor fd00:31::1 dev "${vb}" local fd00:31::2;
}
`);

  const agent = new AgentClient(nsSpawn(nsA, process.execPath, [BFD_AGENT]));
  t.teardown(() => {
    agent.proc.kill('SIGCONT');
    agent.proc.kill('SIGKILL');
  });
  const key: BfdKey = { peer: '10.31.0.2', local: '10.31.0.1', interface: va, multihop: false };
  await agent.call('add', { key, params: { desiredMinTxUs: 100_000, requiredMinRxUs: 200_000, idleTxUs: 1_000_000, detectMult: 3 } });
  const mine = async (): Promise<BfdSessionInfo | undefined> =>
    (await agent.call<BfdSessionInfo[]>('sessions')).find((x) => x.key.peer === '10.31.0.2');
  // An IPv6 session beside it: the hop-limit branch of the receive filter, and BIRD over IPv6.
  const key6: BfdKey = { peer: 'fd00:31::2', local: 'fd00:31::1', interface: va, multihop: false };
  await agent.call('add', { key: key6, params: { desiredMinTxUs: 100_000, requiredMinRxUs: 100_000, idleTxUs: 1_000_000, detectMult: 3 } });
  await until(async () => (await agent.call<BfdSessionInfo[]>('sessions')).find((x) => x.key.peer === 'fd00:31::2')?.state === 'Up', 'IPv6 session Up', 20_000, 100);
  await until(() => birdSessions(bird).find((x) => x.address === 'fd00:31::1')?.state === 'Up', 'BIRD IPv6 session Up', 20_000, 100);
  t.pass('IPv6 session Up on both sides');

  await until(async () => (await mine())?.state === 'Up', 'skein session Up', 20_000, 100);
  await until(() => birdSessions(bird).find((s) => s.address === '10.31.0.1')?.state === 'Up', 'BIRD session Up', 20_000, 100);
  await until(async () => !(await mine())?.pollActive, 'Polls done', 10_000, 100);
  const s = (await mine())!;
  const b = birdSessions(bird).find((x) => x.address === '10.31.0.1')!;
  t.comment(`skein: tx ${s.txIntervalUs / 1000} ms, detect ${s.detectTimeUs / 1000} ms; BIRD: interval ${b.intervalSec} s, timeout ${b.timeoutSec} s`);
  t.equal(s.remoteMinTxUs, 150_000, 'BIRD advertises its min tx 150 ms once Up');
  t.equal(s.remoteMinRxUs, 100_000, 'and its min rx 100 ms');
  t.equal(s.txIntervalUs, 100_000, 'skein sends at max(100, BIRD rx 100)');
  t.equal(s.detectTimeUs, 4 * 200_000, 'skein detects in BIRD mult 4 × max(skein rx 200, BIRD tx 150)');
  t.equal(b.intervalSec, 0.2, 'BIRD sends at max(its 150 ms, skein rx 200 ms)');
  t.equal(b.timeoutSec, 0.3, 'BIRD detects in skein mult 3 × max(BIRD rx 100, skein tx 100)');

  const isDown4 = (e: { event: string; [k: string]: unknown }): boolean =>
    e.event === 'bfd' && (e.output as { type?: string; key?: BfdKey }).type === 'down' && (e.output as { key: BfdKey }).key.peer === '10.31.0.2';
  // BIRD's host loses power: its link goes down inside its namespace; nothing more is sent.
  const downAt = Date.now();
  nsExec(nsB, 'ip', ['link', 'set', vb, 'down']);
  await until(
    () => agent.events.find(isDown4),
    'skein detects BIRD gone', 10_000, 20,
  );
  const down = agent.events.find(isDown4)!;
  t.match(down.output, { diag: 1, reason: 'Control Detection Time Expired' }, 'by the detection timer');
  t.comment(`power loss detected after ≈${((down.atMs as number) - downAt).toFixed(0)} ms (wall clock; detection time ${s.detectTimeUs / 1000} ms)`);
  await until(() => birdSessions(bird).find((x) => x.address === '10.31.0.1')?.state !== 'Up', 'BIRD sees it too', 10_000, 50);

  // Power back: both Up again.
  nsExec(nsB, 'ip', ['link', 'set', vb, 'up']);
  await until(async () => (await mine())?.state === 'Up', 'skein Up again', 30_000, 100);
  await until(() => birdSessions(bird).find((x) => x.address === '10.31.0.1')?.state === 'Up', 'BIRD Up again', 30_000, 100);

  // The reverse: skein's side stops dead (SIGSTOP: no packets, no AdminDown).
  const stopAt = Date.now();
  agent.proc.kill('SIGSTOP');
  await until(() => birdSessions(bird).find((x) => x.address === '10.31.0.1')?.state === 'Down', 'BIRD sees skein gone', 10_000, 20);
  t.comment(`BIRD saw skein stop within ${Date.now() - stopAt} ms (polled through birdc; its detection time ${b.timeoutSec * 1000} ms)`);
  t.match(bird.birdc('show', 'bfd', 'sessions'), /Down/);
});
