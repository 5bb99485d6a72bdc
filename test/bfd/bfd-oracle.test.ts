// An independent decoder agrees with our BFD encoder: packets we encode are
// written into a pcap (one UDP datagram to port 3784 each, headers written by
// hand) and read back with tshark; Wireshark's BFD dissector must report the
// fields of the value we encoded.
import t from 'tap';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BFD_STATES, BFD_STATE_CODE, encodeControl, type ControlPacket } from '../../bgp/index.js';
import { requires } from '../helpers/env.js';

/** libpcap 2.4, Ethernet; each payload in a UDP datagram 10.0.0.1:49152 → 10.0.0.2:3784. */
function pcapOf(payloads: readonly Buffer[]): Buffer {
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(65535, 16);
  global.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const records = payloads.map((p, i) => {
    const frame = Buffer.alloc(14 + 20 + 8 + p.length);
    frame.writeUInt16BE(0x0800, 12);
    const ip = 14;
    frame[ip] = 0x45;
    frame.writeUInt16BE(20 + 8 + p.length, ip + 2);
    frame[ip + 8] = 255; // TTL 255, RFC 5881 §5
    frame[ip + 9] = 17; // UDP
    Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(frame, ip + 12);
    const udp = ip + 20;
    frame.writeUInt16BE(49152, udp);
    frame.writeUInt16BE(3784, udp + 2);
    frame.writeUInt16BE(8 + p.length, udp + 4);
    p.copy(frame, udp + 8);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(i, 0);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    return Buffer.concat([rec, frame]);
  });
  return Buffer.concat([global, ...records]);
}

const FIELDS = [
  'bfd.version', 'bfd.diag', 'bfd.sta', 'bfd.flags.p', 'bfd.flags.f', 'bfd.flags.c', 'bfd.flags.a', 'bfd.flags.d',
  'bfd.flags.m', 'bfd.detect_time_multiplier', 'bfd.message_length', 'bfd.my_discriminator', 'bfd.your_discriminator',
  'bfd.desired_min_tx_interval', 'bfd.required_min_rx_interval', 'bfd.required_min_echo_interval',
] as const;

const flag = (v: string): boolean => v === '1' || v === 'True' || v === 'true';

t.test('tshark decodes what we encode', async (t) => {
  if (!requires(t, { commands: ['tshark'] })) return;
  const packets = fc.sample(
    fc.record({
      diag: fc.integer({ min: 0, max: 8 }),
      state: fc.constantFrom(...BFD_STATES),
      poll: fc.boolean(),
      final: fc.boolean(),
      controlPlaneIndependent: fc.boolean(),
      demand: fc.boolean(),
      multipoint: fc.constant(false),
      detectMult: fc.integer({ min: 1, max: 255 }),
      myDiscriminator: fc.integer({ min: 1, max: 0xffffffff }),
      yourDiscriminator: fc.nat({ max: 0xffffffff }),
      desiredMinTxUs: fc.nat({ max: 0xffffffff }),
      requiredMinRxUs: fc.nat({ max: 0xffffffff }),
      requiredMinEchoRxUs: fc.nat({ max: 0xffffffff }),
    }),
    { numRuns: 60, seed: 18 },
  ) as ControlPacket[];
  const dir = mkdtempSync(join(tmpdir(), 'skein-bfd-oracle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bfd.pcap');
  writeFileSync(file, pcapOf(packets.map(encodeControl)));
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=\t', ...FIELDS.flatMap((f) => ['-e', f])], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const rows = out.trimEnd().split('\n').map((l) => l.split('\t'));
  t.equal(rows.length, packets.length, 'one dissected BFD packet per datagram');
  packets.forEach((p, i) => {
    const r = rows[i] ?? [];
    const n = (k: number): number => Number(r[k]);
    t.same(
      {
        version: n(0), diag: n(1), sta: n(2), p: flag(r[3] ?? ''), f: flag(r[4] ?? ''), c: flag(r[5] ?? ''),
        a: flag(r[6] ?? ''), d: flag(r[7] ?? ''), m: flag(r[8] ?? ''), mult: n(9), len: n(10), my: n(11), your: n(12),
        tx: n(13), rx: n(14), echo: n(15),
      },
      {
        version: 1, diag: p.diag, sta: BFD_STATE_CODE[p.state], p: p.poll, f: p.final, c: p.controlPlaneIndependent,
        a: false, d: p.demand, m: false, mult: p.detectMult, len: 24, my: p.myDiscriminator, your: p.yourDiscriminator,
        tx: p.desiredMinTxUs, rx: p.requiredMinRxUs, echo: p.requiredMinEchoRxUs,
      },
      `packet ${i}`,
    );
  });
});
