// The live-migration watch (src/daemon/migration.ts over bgp/native/announce_watch.c) under load: every VM
// announcement is seen, with no timer draining the socket behind the poll. Taps in one namespace, watched by the real
// MigrationWatcher in a child process inside it; while the child's event loop is blocked, bursts of RARPs and
// gratuitous ARPs arrive on every tap at once. The taps are in the states an incoming VM's tap goes through:
//   up     — up before the watch opens;
//   down   — down when the watch opens, up afterwards (a packet socket bound to a down interface reports ENETDOWN;
//            libuv answered that POLLERR by stopping the poll, so nothing was ever read from it again: the cause of
//            the misses once worked around with a 100 ms timer);
//   flap   — goes down and up again while watched (the same ENETDOWN, later);
//   reborn — deleted and created again under the same name while watched (the socket is unbound for good: the
//            watch must open anew on the new interface).
// And one tap that must NOT be reported: it gets ordinary ARP requests and IPv4 frames, never an announcement.
// Afterwards no packet socket holds a queued frame.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';

const root = join(`${import.meta.dirname}/..`, '..');
const dist = (p: string): string => JSON.stringify(join(root, 'dist', p));

// The child (`node -e`: its arguments start at argv[1]): the daemon's MigrationWatcher, its log lines and sightings reported as JSON lines; "busy N" blocks its
// event loop for N ms (as a long synchronous task in skeind would).
const AGENT = `
import { MigrationWatcher } from ${dist('src/daemon/migration.js')};
import { Logger } from ${dist('src/log.js')};
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const log = new Logger({ level: 'info', sink: (line) => say({ log: JSON.parse(line) }) });
const w = new MigrationWatcher(log, (id, kind) => say({ seen: id, kind }), () => {});
w.sync(new Map(process.argv.slice(1).map((d) => [d, d])), undefined);
createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, arg] = l.split(' ');
  if (cmd === 'busy') {
    say({ busy: 'start' });
    const end = Date.now() + Number(arg);
    while (Date.now() < end) { /* the loop is blocked: frames can only queue */ }
    say({ busy: 'done' });
  } else if (cmd === 'rmem') {
    const rows = readFileSync('/proc/net/packet', 'utf8').trim().split('\\n').slice(1).map((r) => r.trim().split(/\\s+/));
    say({ rmem: rows.map((r) => Number(r[6])) });
  } else if (cmd === 'quit') { w.close(); process.exit(0); }
});
`;

// A burst per interface: "dev:kind:count"; kind garp (ARP with sender = target address), rarp (QEMU's), or noise
// (ARP requests between two different addresses and IPv4 frames: no announcement).
const SENDER = `
import socket, struct, sys
mac = bytes.fromhex('fa163e123456')
def eth(t, body): return (b'\\xff' * 6 + mac + struct.pack('!H', t) + body).ljust(60, b'\\0')
ip = socket.inet_aton
frames = {
  'garp': [eth(0x0806, struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + mac + ip('10.66.0.5') + bytes(6) + ip('10.66.0.5'))],
  'rarp': [eth(0x8035, struct.pack('!HHBBH', 1, 0x0800, 6, 4, 3) + mac + bytes(4) + mac + bytes(4))],
  'noise': [eth(0x0806, struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + mac + ip('10.66.0.5') + bytes(6) + ip('10.66.0.1')),
            eth(0x0800, bytes.fromhex('4500001c0000000040010000') + ip('10.66.0.5') + ip('10.66.0.1'))],
}
socks = {}
for spec in sys.argv[1:]:
  dev, kind, n = spec.split(':')
  s = socks.setdefault(dev, socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
  s.bind((dev, 0))
  for i in range(int(n)):
    for f in frames[kind]: s.send(f)
`;

interface Msg { seen?: string; kind?: string; busy?: string; rmem?: number[]; log?: { msg: string; dev?: string; endpoint?: string } }

t.test('every announcement is seen while the event loop is busy, whatever state the tap was in', async (t) => {
  if (!requires(t, { root: true, commands: ['python3'] })) return;
  const lab = new Lab();
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
  });
  const ns = lab.ns('cw');
  const groups = { up: ['mwu0', 'mwu1', 'mwu2', 'mwu3'], down: ['mwd0', 'mwd1', 'mwd2', 'mwd3'], flap: ['mwf0', 'mwf1'], reborn: ['mwr0'] };
  const quiet = 'mwq0';
  const announcing = Object.values(groups).flat();
  const all = [...announcing, quiet];
  const peer = (d: string): string => `${d}p`;
  const pair = (d: string, up: boolean): void => {
    nsExec(ns, 'ip', ['link', 'add', d, 'type', 'veth', 'peer', 'name', peer(d)]);
    nsExec(ns, 'ip', ['link', 'set', peer(d), 'up']);
    if (up) nsExec(ns, 'ip', ['link', 'set', d, 'up']);
  };
  for (const d of all) pair(d, !groups.down.includes(d));

  const msgs: Msg[] = [];
  const agent = nsSpawn(ns, 'node', ['--input-type=module', '-e', AGENT, ...all]);
  procs.push(agent);
  let buf = '';
  let stderr = '';
  agent.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l.trim() !== '') msgs.push(JSON.parse(l) as Msg);
  });
  agent.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const watching = (d: string): number => msgs.filter((m) => m.log?.msg.includes('watching for the VM') && m.log.dev === d).length;
  const seen = (): string[] => [...new Set(msgs.filter((m) => m.seen !== undefined).map((m) => m.seen!))].sort();
  const send = (line: string): void => { agent.stdin!.write(`${line}\n`); };
  try {
    await until(() => all.every((d) => watching(d) >= 1), 'every tap watched (the down ones too)', 20_000, 50);

    // The taps change under the open watches.
    for (const d of groups.down) nsExec(ns, 'ip', ['link', 'set', d, 'up']);
    for (const d of groups.flap) {
      nsExec(ns, 'ip', ['link', 'set', d, 'down']);
      nsExec(ns, 'ip', ['link', 'set', d, 'up']);
    }
    for (const d of groups.reborn) {
      nsExec(ns, 'ip', ['link', 'del', d]);
      await until(() => msgs.some((m) => m.log?.msg.includes('went away') && m.log.dev === d), `${d}: the watch notices the interface is gone`, 10_000, 50);
      pair(d, true);
      await until(() => watching(d) >= 2, `${d}: watched again once it is back`, 10_000, 50);
    }
    // A veth drops what it is given until the kernel's link watch has made it operational.
    const operUp = (d: string): boolean => (JSON.parse(nsExec(ns, 'ip', ['-j', 'link', 'show', d])) as { operstate: string }[])[0]?.operstate === 'UP';
    await until(() => all.every((d) => operUp(d) && operUp(peer(d))), 'every tap and peer operational', 10_000, 50);
    t.same(seen(), [], 'nothing reported before any announcement');

    // The bursts arrive while the child's loop is blocked.
    const busyMs = 2500;
    send(`busy ${busyMs}`);
    await until(() => msgs.some((m) => m.busy === 'start'), 'the child is busy', 10_000, 10);
    const specs = [
      ...announcing.map((d, i) => `${peer(d)}:${i % 2 === 0 ? 'garp' : 'rarp'}:20`),
      `${peer(quiet)}:noise:100`,
    ];
    nsExec(ns, 'python3', ['-c', SENDER, ...specs]);
    const sentWhileBusy = !msgs.some((m) => m.busy === 'done');
    await until(() => msgs.some((m) => m.busy === 'done'), 'the child\'s loop runs again', 20_000, 20);
    await until(() => seen().length >= announcing.length, 'every announcing tap reported', 10_000, 20).catch(() => undefined);
    t.same(seen(), [...announcing].sort(), 'every tap that carried an announcement was reported (down-at-open, flapped and re-created ones included)');
    t.notOk(seen().includes(quiet), 'the tap with only ARP requests and IPv4 frames was NOT reported');
    t.ok(msgs.filter((m) => m.seen !== undefined).every((m) => m.kind === 'garp' || m.kind === 'rarp'), 'each sighting names its frame');
    t.comment(`bursts sent ${sentWhileBusy ? 'while' : 'partly after'} the child's loop was blocked (${busyMs} ms)`);

    // Nothing left queued behind the poll: the packet sockets are empty.
    const before = msgs.length;
    send('rmem');
    await until(() => msgs.slice(before).some((m) => m.rmem !== undefined), 'rmem answered', 10_000, 20);
    const rmem = msgs.slice(before).find((m) => m.rmem !== undefined)!.rmem!;
    t.equal(rmem.length, all.length, 'one packet socket per watched tap (the re-created tap\'s old one closed)');
    t.same(rmem.filter((r) => r !== 0), [], 'no frame left queued in any socket');
    send('quit');
  } catch (e) {
    t.comment(`agent messages:\n${msgs.slice(-40).map((m) => JSON.stringify(m)).join('\n')}\nstderr: ${stderr}`);
    throw e;
  }
});
