// TCP MD5 (RFC 2385) and GTSM (RFC 5082) against a real BIRD 2: our client
// (test/native/agent.ts) in one namespace, BIRD in another. BIRD is passive, so
// every TCP connection in this test is one we open.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../helpers/env.js';
import { Lab, nsExec, nsSpawn, until } from '../helpers/netns.js';
import { agentBuilt, AGENT, nstat, runClient } from '../native/harness.js';

/** The BGP message types found in a byte stream (RFC 4271 §4.1: marker, length, type). */
function messageTypes(hex: string): number[] {
  const b = Buffer.from(hex, 'hex');
  const types: number[] = [];
  let off = 0;
  while (off + 19 <= b.length) {
    if (!b.subarray(off, off + 16).equals(Buffer.alloc(16, 0xff))) throw new Error(`no BGP marker at offset ${off}`);
    const len = b.readUInt16BE(off + 16);
    if (len < 19 || off + len > b.length) break;
    types.push(b[off + 18]!);
    off += len;
  }
  return types;
}

/** A minimal OPEN (RFC 4271 §4.2) with IPv4 unicast (RFC 4760) and 4-octet AS (RFC 6793) capabilities. */
function open(asn: number, routerId: string): string {
  const caps = Buffer.from([2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 65, 4, (asn >>> 24) & 255, (asn >>> 16) & 255, (asn >>> 8) & 255, asn & 255]);
  const body = Buffer.alloc(10);
  body[0] = 4;
  body.writeUInt16BE(asn > 65535 ? 23456 : asn, 1);
  body.writeUInt16BE(90, 3);
  Buffer.from(routerId.split('.').map(Number)).copy(body, 5);
  body[9] = caps.length;
  const head = Buffer.alloc(19, 0xff);
  head.writeUInt16BE(19 + body.length + caps.length, 16);
  head[18] = 1;
  return Buffer.concat([head, body, caps]).toString('hex');
}

t.test('MD5 and GTSM against BIRD 2', async (t) => {
  if (!requires(t as never, { root: true, commands: ['bird', 'birdc', 'nstat'] })) return;
  if (!agentBuilt()) {
    t.fail(`${AGENT} is missing: run "npm run build" first`);
    return;
  }
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  const rs = lab.ns('bird');
  const us = lab.ns('us');
  const [a, b] = lab.link(rs, us);
  lab.addr(rs, a, '10.88.0.1/24');
  lab.addr(rs, a, 'fd00:88::1/64');
  for (const addr of ['10.88.0.2/24', '10.88.0.3/24', '10.88.0.4/24', 'fd00:88::2/64']) lab.addr(us, b, addr);

  const dir = mkdtempSync(join(tmpdir(), 'skein-bird-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'bird.ctl');
  const peer = (name: string, local: string, neighbor: string, asn: number, extra: string, af: 'ipv4' | 'ipv6'): string =>
    `protocol bgp ${name} {\n  local ${local} as 65001;\n  neighbor ${neighbor} as ${asn};\n  passive on;\n${extra}` +
    `  ${af} { import none; export none; };\n}\n`;
  writeFileSync(
    join(dir, 'bird.conf'),
    'router id 10.88.0.1;\nprotocol device {}\n' +
      peer('md5v4', '10.88.0.1', '10.88.0.2', 65002, '  password "skein-secret";\n', 'ipv4') +
      peer('md5v6', 'fd00:88::1', 'fd00:88::2', 65002, '  password "skein-secret6";\n', 'ipv6') +
      peer('gtsm255', '10.88.0.1', '10.88.0.3', 65003, '  ttl security on;\n', 'ipv4') +
      peer('gtsm64', '10.88.0.1', '10.88.0.4', 65004, '  ttl security on;\n', 'ipv4'),
  );
  const bird = nsSpawn(rs, 'bird', ['-f', '-c', join(dir, 'bird.conf'), '-s', sock, '-P', join(dir, 'bird.pid')]);
  let birdErr = '';
  bird.stderr?.on('data', (d: Buffer) => (birdErr += d.toString()));
  t.teardown(() => bird.kill('SIGKILL'));
  const birdc = (...args: string[]): string => nsExec(rs, 'birdc', ['-s', sock, ...args]);
  await until(() => {
    if (bird.exitCode !== null) throw new Error(`bird exited: ${birdErr}`);
    return /md5v4\s+BGP\s+---\s+start/.test(birdc('show', 'protocols'));
  }, 'BIRD to start its protocols', 15_000, 100);

  const COUNTERS = ['TcpExtTCPMD5NotFound', 'TcpExtTCPMD5Failure', 'TcpExtTCPMinTTLDrop'] as const;
  const FAIL_MS = 1500;

  for (const v of [
    { name: 'IPv4', host: '10.88.0.1', local: '10.88.0.2', key: 'skein-secret' },
    { name: 'IPv6', host: 'fd00:88::1', local: 'fd00:88::2', key: 'skein-secret6' },
  ]) {
    t.test(`MD5 ${v.name}: BIRD answers a signed connection with an OPEN, ignores others`, async (t) => {
      const before = nstat(rs, COUNTERS);
      const none = await runClient(us, { host: v.host, port: 179, localAddress: v.local, timeoutMs: FAIL_MS });
      t.match(none, { ok: false, code: 'ETIMEDOUT' }, 'without a key the connect times out');
      const mid = nstat(rs, COUNTERS);
      t.ok(mid.TcpExtTCPMD5NotFound! > before.TcpExtTCPMD5NotFound!, "BIRD's kernel counted the unsigned SYNs");
      const wrong = await runClient(us, { host: v.host, port: 179, localAddress: v.local, md5Key: 'wrong', timeoutMs: FAIL_MS });
      t.match(wrong, { ok: false, code: 'ETIMEDOUT' }, 'with a wrong key the connect times out');
      t.ok(nstat(rs, COUNTERS).TcpExtTCPMD5Failure! > mid.TcpExtTCPMD5Failure!, "BIRD's kernel counted the bad signatures");

      const good = await runClient(us, {
        host: v.host, port: 179, localAddress: v.local, md5Key: v.key, timeoutMs: 5000, readBytes: 19, readTimeoutMs: 5000,
      });
      t.ok(good.ok, `with the right key the connection is established: ${JSON.stringify(good)}`);
      t.same(messageTypes(good.data ?? '').slice(0, 1), [1], 'and BIRD sends a BGP OPEN');
    });
  }

  t.test('GTSM: BIRD with "ttl security on" only talks to TTL 255', async (t) => {
    // BIRD sets the minimum TTL on the accepted socket, so the SYN itself gets through and BIRD
    // sends its OPEN; what BIRD then drops is our every later segment, so our OPEN never arrives.
    const before = nstat(rs, COUNTERS);
    const low = await runClient(us, {
      host: '10.88.0.1', port: 179, localAddress: '10.88.0.4', timeoutMs: 5000,
      replyHex: open(65004, '10.88.0.4'), readBytes: 1000, readTimeoutMs: 2500,
    });
    t.ok(low.ok, `TTL 64: TCP connects: ${JSON.stringify(low)}`);
    t.same(messageTypes(low.data ?? ''), [1], 'TTL 64: BIRD sent its OPEN but never answered ours');
    t.ok(nstat(rs, COUNTERS).TcpExtTCPMinTTLDrop! > before.TcpExtTCPMinTTLDrop!, "BIRD's kernel dropped our low-TTL segments");

    const high = await runClient(us, {
      host: '10.88.0.1', port: 179, localAddress: '10.88.0.3', ttl: 255, minTtl: 255, timeoutMs: 5000,
      replyHex: open(65003, '10.88.0.3'), readBytes: 1000, readTimeoutMs: 2500,
    });
    t.ok(high.ok, `TTL 255 (and we require 255 from BIRD): TCP connects: ${JSON.stringify(high)}`);
    t.same(messageTypes(high.data ?? '').slice(0, 2), [1, 4], 'TTL 255: BIRD accepted our OPEN and sent a KEEPALIVE');
  });
});
