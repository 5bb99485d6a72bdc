// BFD interop with FRR's bfdd (run alone, no zebra) across a veth pair between
// two network namespaces: Up both ways with the timers each side asked for
// (read from `vtysh -d bfdd -c 'show bfd peers json'`), FRR's link set down
// inside its namespace detected by skein (diag 1), skein's agent SIGSTOPped
// detected by FRR.
import t from 'tap';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { AgentClient } from '../helpers/agent-client.js';
import type { BfdKey, BfdSessionInfo } from '../../bgp/index.js';

const BFD_AGENT = 'dist/test/helpers/bfd-agent.js';
const BFDD = '/usr/lib/frr/bfdd';

interface FrrPeer {
  peer: string;
  status: string;
  diagnostic?: string;
  'receive-interval': number;
  'transmit-interval': number;
  'detect-multiplier': number;
  'remote-receive-interval': number;
  'remote-transmit-interval': number;
  'remote-detect-multiplier': number;
}

function frrUid(): { uid: number; gid: number } | null {
  try {
    return {
      uid: Number(execFileSync('id', ['-u', 'frr'], { encoding: 'utf8' }).trim()),
      gid: Number(execFileSync('id', ['-g', 'frr'], { encoding: 'utf8' }).trim()),
    };
  } catch {
    return null;
  }
}

t.test('BFD with FRR bfdd: Up both ways, negotiated timers, power loss detected on both sides', async (t) => {
  if (!requires(t, { root: true, commands: [BFDD, 'vtysh'] })) return;
  const ids = frrUid();
  if (!ids) {
    // The Debian frr package creates the user; without it bfdd cannot drop privileges.
    t.comment('skipping: no frr user');
    return;
  }
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const nsA = lab.ns('bfa');
  const nsB = lab.ns('bff');
  const [va, vb] = lab.link(nsA, nsB);
  lab.addr(nsA, va, '10.32.0.1/24');
  lab.addr(nsB, vb, '10.32.0.2/24');

  // bfdd drops privileges to the frr user, so its directory and config belong to it.
  const dir = mkdtempSync(join(tmpdir(), 'skein-bfdd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chownSync(dir, ids.uid, ids.gid);
  const conf = join(dir, 'bfdd.conf');
  writeFileSync(conf, `bfd
 peer 10.32.0.1 local-address 10.32.0.2
  receive-interval 100
  transmit-interval 150
  detect-multiplier 4
 !
!
`);
  chownSync(conf, ids.uid, ids.gid);
  const bfdd = nsSpawn(nsB, BFDD, [
    '-f', conf, '-i', join(dir, 'bfdd.pid'), '--vty_socket', dir, '-z', join(dir, 'zserv.api'),
    '--bfdctl', join(dir, 'bfdd.sock'), '--log', 'stdout', '-P', '0',
  ]);
  let log = '';
  bfdd.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-10_000)));
  bfdd.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-10_000)));
  t.teardown(() => {
    bfdd.kill('SIGKILL');
  });
  const frrPeer = (): FrrPeer | undefined => {
    const text = nsExec(nsB, 'vtysh', ['--vty_socket', dir, '-d', 'bfdd', '-c', 'show bfd peers json'], { timeoutMs: 10_000 });
    return (JSON.parse(text) as FrrPeer[]).find((p) => p.peer === '10.32.0.1');
  };
  await until(() => frrPeer(), `bfdd answering (log: ${log})`, 15_000, 100);

  const agent = new AgentClient(nsSpawn(nsA, process.execPath, [BFD_AGENT]));
  t.teardown(() => {
    agent.proc.kill('SIGCONT');
    agent.proc.kill('SIGKILL');
  });
  const key: BfdKey = { peer: '10.32.0.2', local: '10.32.0.1', interface: va, multihop: false };
  await agent.call('add', { key, params: { desiredMinTxUs: 100_000, requiredMinRxUs: 200_000, idleTxUs: 1_000_000, detectMult: 3 } });
  const mine = async (): Promise<BfdSessionInfo | undefined> => (await agent.call<BfdSessionInfo[]>('sessions'))[0];

  // Without zebra bfdd knows no interfaces, so its peer is not bound to one: addresses only.
  await until(async () => (await mine())?.state === 'Up', 'skein session Up', 20_000, 100).catch(async (e: unknown) => {
    throw new Error(`${String(e)}; agent ${JSON.stringify(await agent.call('counters'))}; FRR ${JSON.stringify(frrPeer())}; log ${log}`);
  });
  await until(() => frrPeer()?.status === 'up', 'FRR session up', 20_000, 100);
  await until(async () => !(await mine())?.pollActive && (await mine())?.remoteMinTxUs === 150_000, 'timers settled', 10_000, 100);
  const s = (await mine())!;
  const f = frrPeer()!;
  t.comment(`skein: tx ${s.txIntervalUs / 1000} ms, detect ${s.detectTimeUs / 1000} ms; FRR: ${JSON.stringify(f)}`);
  t.equal(s.remoteMinTxUs, 150_000, 'FRR advertises transmit-interval 150 ms');
  t.equal(s.remoteMinRxUs, 100_000, 'and receive-interval 100 ms');
  t.equal(s.remoteDetectMult, 4);
  t.equal(s.detectTimeUs, 4 * 200_000, 'skein detects in FRR mult 4 × max(skein rx 200, FRR tx 150)');
  t.equal(f['remote-receive-interval'], 200, 'FRR sees skein ask for 200 ms');
  t.equal(f['remote-transmit-interval'], 100, 'FRR sees skein send at 100 ms');
  t.equal(f['remote-detect-multiplier'], 3);

  const downAt = Date.now();
  nsExec(nsB, 'ip', ['link', 'set', vb, 'down']);
  await until(
    () => agent.events.find((e) => e.event === 'bfd' && (e.output as { type?: string }).type === 'down'),
    'skein detects FRR gone', 10_000, 20,
  );
  const down = agent.events.find((e) => e.event === 'bfd' && (e.output as { type?: string }).type === 'down')!;
  t.match(down.output, { diag: 1, reason: 'Control Detection Time Expired' }, 'by the detection timer');
  t.comment(`power loss detected after ≈${(down.atMs as number) - downAt} ms (wall clock; detection time ${s.detectTimeUs / 1000} ms)`);
  await until(() => frrPeer()?.status !== 'up', 'FRR sees it too', 10_000, 50);

  nsExec(nsB, 'ip', ['link', 'set', vb, 'up']);
  await until(async () => (await mine())?.state === 'Up', 'skein Up again', 30_000, 100);
  await until(() => frrPeer()?.status === 'up', 'FRR up again', 30_000, 100);

  const stopAt = Date.now();
  agent.proc.kill('SIGSTOP');
  await until(() => frrPeer()?.status === 'down', 'FRR sees skein gone', 10_000, 20);
  t.comment(`FRR saw skein stop within ${Date.now() - stopAt} ms (polled through vtysh)`);
  t.equal(frrPeer()?.diagnostic, 'control detection time expired', 'FRR: detection time expired');
});
