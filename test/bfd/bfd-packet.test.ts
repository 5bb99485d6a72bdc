// The BFD Control packet codec (RFC 5880 §4.1) and the reception checks of
// §6.8.6: hand-built vectors from the RFC's layout, fast-check round trips,
// arbitrary bytes giving a packet or a BfdError and nothing else, and the
// manager's session-selection checks that must leave every session alone.
import t from 'tap';
import fc from 'fast-check';
import { BFD_STATES, BfdError, BfdManager, decodeControl, diagName, encodeControl, parseServerMessage, toIpcSession } from '../../bgp/index.js';
import { lateTimerLimitMs } from '../../bgp/bfd/manager.js';
import type { BfdKey, ControlPacket } from '../../bgp/index.js';

// RFC 5880 §4.1, bit by bit: Vers 1, Diag 0, Sta Down (1), no flags, Detect Mult 3, Length 24,
// My Discriminator 1, Your Discriminator 0, Desired Min TX 1 s, Required Min RX 1 s, Echo 0.
const DOWN_HEX = '20' + '40' + '03' + '18' + '00000001' + '00000000' + '000f4240' + '000f4240' + '00000000';
const DOWN: ControlPacket = {
  diag: 0, state: 'Down', poll: false, final: false, controlPlaneIndependent: false, demand: false, multipoint: false,
  detectMult: 3, myDiscriminator: 1, yourDiscriminator: 0, desiredMinTxUs: 1_000_000, requiredMinRxUs: 1_000_000,
  requiredMinEchoRxUs: 0,
};
// Vers 1, Diag 3 (Neighbor Signaled Session Down) → 0x23; Sta Up (3) with P and C → 0b11_1_0_1_0_0_0 = 0xe8.
const UP_POLL_HEX = '23' + 'e8' + '05' + '18' + 'deadbeef' + '00000001' + '000186a0' + '0000c350' + '00000000';
const UP_POLL: ControlPacket = {
  ...DOWN, diag: 3, state: 'Up', poll: true, controlPlaneIndependent: true, detectMult: 5,
  myDiscriminator: 0xdeadbeef, yourDiscriminator: 1, desiredMinTxUs: 100_000, requiredMinRxUs: 50_000,
};
// Final + Demand: Sta Init (2) F D → 0b10_0_1_0_0_1_0 = 0x92
const INIT_FINAL_HEX = '20' + '92' + '01' + '18' + '00000002' + '00000003' + '00000001' + '00000000' + '00000000';
const INIT_FINAL: ControlPacket = {
  ...DOWN, state: 'Init', final: true, demand: true, detectMult: 1, myDiscriminator: 2, yourDiscriminator: 3,
  desiredMinTxUs: 1, requiredMinRxUs: 0,
};
// A bit with a Simple Password section (§4.2): type 1, len 7, key id 1, "abcd".
const AUTH_HEX = '20' + '44' + '03' + '1f' + '00000001' + '00000000' + '000f4240' + '000f4240' + '00000000' + '01070161626364';

t.test('RFC 5880 §4.1 vectors decode and encode both ways', async (t) => {
  for (const [hex, p] of [[DOWN_HEX, DOWN], [UP_POLL_HEX, UP_POLL], [INIT_FINAL_HEX, INIT_FINAL]] as const) {
    t.same(decodeControl(Buffer.from(hex, 'hex')), p, `decode ${p.state}`);
    t.equal(encodeControl(p).toString('hex'), hex, `encode ${p.state}`);
  }
  const auth = decodeControl(Buffer.from(AUTH_HEX, 'hex'));
  t.equal(auth.auth?.type, 1, 'authentication type kept');
  t.equal(encodeControl(auth).toString('hex'), AUTH_HEX, 'an authenticated packet round-trips byte for byte');
});

t.test('bytes after Length are ignored (§6.8.6 only bounds Length by the payload)', async (t) => {
  t.same(decodeControl(Buffer.from(DOWN_HEX + '0000', 'hex')), DOWN);
});

const arbPacket: fc.Arbitrary<ControlPacket> = fc
  .record({
    diag: fc.integer({ min: 0, max: 31 }),
    state: fc.constantFrom(...BFD_STATES),
    poll: fc.boolean(),
    final: fc.boolean(),
    controlPlaneIndependent: fc.boolean(),
    demand: fc.boolean(),
    detectMult: fc.integer({ min: 1, max: 255 }),
    myDiscriminator: fc.integer({ min: 1, max: 0xffffffff }),
    yourDiscriminator: fc.nat({ max: 0xffffffff }),
    desiredMinTxUs: fc.nat({ max: 0xffffffff }),
    requiredMinRxUs: fc.nat({ max: 0xffffffff }),
    requiredMinEchoRxUs: fc.nat({ max: 0xffffffff }),
    auth: fc.option(
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 })).map(([type, data]) => ({
        type,
        raw: Buffer.concat([Buffer.from([type, data.length + 2]), data]),
      })),
      { nil: undefined },
    ),
  })
  .map((r) => {
    const { auth, ...rest } = r;
    const p: ControlPacket = { ...rest, multipoint: false };
    return auth ? { ...p, auth } : p;
  });

t.test('decode(encode(p)) is p for every valid packet', async (t) => {
  fc.assert(fc.property(arbPacket, (p) => {
    t.same(decodeControl(encodeControl(p)), p);
  }), { numRuns: 500 });
});

t.test('arbitrary bytes give a packet or a BfdError, never anything else', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
    try {
      const p = decodeControl(bytes);
      return p.detectMult > 0 && p.myDiscriminator !== 0;
    } catch (e) {
      return e instanceof BfdError;
    }
  }), { numRuns: 2000 });
  // Mutations of a valid packet, which reach deeper checks than random bytes.
  fc.assert(fc.property(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 255 }), (i, v) => {
    const b = Buffer.from(UP_POLL_HEX, 'hex');
    b[i] = v;
    try {
      decodeControl(b);
      return true;
    } catch (e) {
      return e instanceof BfdError;
    }
  }), { numRuns: 2000 });
});

/** The BfdError code a call throws ('none' when it returns, 'other' for anything but a BfdError). */
function errorCode(f: () => unknown): string {
  try {
    f();
    return 'none';
  } catch (e) {
    return e instanceof BfdError ? e.code : 'other';
  }
}

function mutate(hex: string, f: (b: Buffer) => void): Buffer {
  const b = Buffer.from(hex, 'hex');
  f(b);
  return b;
}

t.test('each §6.8.6 syntax check, with its code', async (t) => {
  const cases: [string, Buffer][] = [
    ['SHORT_PACKET', Buffer.from(DOWN_HEX, 'hex').subarray(0, 23)],
    ['BAD_VERSION', mutate(DOWN_HEX, (b) => { b[0] = 0x00; })],
    ['BAD_VERSION', mutate(DOWN_HEX, (b) => { b[0] = 0x40; })],
    ['BAD_LENGTH', mutate(DOWN_HEX, (b) => { b[3] = 23; })],
    ['BAD_LENGTH', mutate(DOWN_HEX, (b) => { b[1] = 0x44; b[3] = 25; })], // A bit needs 26
    ['LENGTH_EXCEEDS_PAYLOAD', mutate(DOWN_HEX, (b) => { b[3] = 25; })],
    ['ZERO_DETECT_MULT', mutate(DOWN_HEX, (b) => { b[2] = 0; })],
    ['MULTIPOINT', mutate(DOWN_HEX, (b) => { b[1] = 0x41; })],
    ['ZERO_MY_DISCRIMINATOR', mutate(DOWN_HEX, (b) => { b.writeUInt32BE(0, 4); })],
    ['BAD_AUTH_SECTION', mutate(AUTH_HEX, (b) => { b[25] = 9; })],
    ['BAD_AUTH_SECTION', mutate(AUTH_HEX, (b) => { b[25] = 1; })],
  ];
  for (const [code, bytes] of cases) {
    t.equal(errorCode(() => decodeControl(bytes)), code, code);
  }
});

t.test('diagnostic names follow §4.1', async (t) => {
  t.equal(diagName(1), 'Control Detection Time Expired');
  t.equal(diagName(7), 'Administratively Down');
  t.equal(diagName(20), 'Reserved (20)');
});

const KEY: BfdKey = { peer: '192.0.2.2', local: '192.0.2.1', interface: 'eth0', multihop: false };
const PARAMS = { desiredMinTxUs: 100_000, requiredMinRxUs: 100_000, idleTxUs: 1_000_000, detectMult: 3 };

function managerWithSession() {
  const clock = { t: 0, now(): number { return this.t; } };
  const m = new BfdManager({ clock, random: () => 0.25 });
  const out = m.add(KEY, PARAMS);
  const first = out.find((o) => o.type === 'send');
  const ours = decodeControl(first!.bytes).myDiscriminator;
  return { m, ours, clock };
}

const from = (p: Partial<ControlPacket>): Buffer => encodeControl({ ...DOWN, myDiscriminator: 77, ...p });

t.test('session selection checks (§6.8.6) discard without touching any session', async (t) => {
  const { m, ours } = managerWithSession();
  const meta = { peer: KEY.peer, local: KEY.local, multihop: false };
  const before = JSON.stringify(m.sessions());
  const cases: [string, Buffer, typeof meta][] = [
    ['NO_SESSION', from({ state: 'Up', yourDiscriminator: ours + 1 }), meta],
    ['NO_SESSION', from({ state: 'Init', yourDiscriminator: ours }), { ...meta, peer: '192.0.2.99' }],
    ['NO_SESSION', from({ state: 'Down' }), { ...meta, local: '192.0.2.50' }],
    ['NO_SESSION', from({ state: 'Down' }), { ...meta, multihop: true }],
    ['ZERO_YOUR_DISCRIMINATOR', from({ state: 'Up' }), meta],
    ['ZERO_YOUR_DISCRIMINATOR', from({ state: 'Init' }), meta],
    ['AUTH_NOT_IN_USE', Buffer.from(AUTH_HEX, 'hex'), meta],
    ['ZERO_DETECT_MULT', mutate(DOWN_HEX, (b) => { b[2] = 0; }), meta],
  ];
  for (const [code, bytes, md] of cases) {
    t.equal(errorCode(() => m.receive(bytes, md)), code, code);
  }
  t.equal(JSON.stringify(m.sessions()), before, 'no session changed');
  t.equal(m.discarded.get('NO_SESSION'), 4, 'discards are counted by reason');
  // A good Down from the peer, selected by address, moves the session to Init.
  const out = m.receive(from({ state: 'Down' }), meta);
  t.equal(m.get(KEY)?.state, 'Init');
  t.ok(out.some((o) => o.type === 'state' && o.to === 'Init'));
  // From now on Your Discriminator selects it; Up with ours → Up, and an 'up' event.
  const up = m.receive(from({ state: 'Up', yourDiscriminator: ours }), meta);
  t.ok(up.some((o) => o.type === 'up'));
  t.equal(m.get(KEY)?.remoteDiscriminator, 77);
});

t.test('manager: discriminators are unique and nonzero; remove tells the peer once', async (t) => {
  const clock = { now: (): number => 0 };
  let r = 0;
  const m = new BfdManager({ clock, random: () => [0.5, 0.5, 0.5, 0.7][r++ % 4]! }); // forces a collision
  m.add(KEY, PARAMS);
  m.add({ ...KEY, peer: '192.0.2.3' }, PARAMS);
  const ds = m.sessions().map((s) => s.localDiscriminator);
  t.equal(new Set(ds).size, 2);
  t.ok(ds.every((d) => d > 0 && d <= 0xffffffff));
  const out = m.remove(KEY);
  const sent = out.filter((o) => o.type === 'send');
  t.equal(sent.length, 1, 'one packet');
  t.equal(decodeControl(sent[0]!.bytes).state, 'AdminDown');
  t.equal(m.size, 1);
  t.same(m.remove(KEY), [], 'removing twice does nothing');
});

t.test('manager: up and down events carry the reason and the peer’s C bit', async (t) => {
  const { m, ours, clock } = managerWithSession();
  const meta = { peer: KEY.peer, local: KEY.local, multihop: false };
  const up = m.receive(from({ state: 'Init', yourDiscriminator: ours, controlPlaneIndependent: true }), meta);
  t.match(up.find((o) => o.type === 'up'), { remoteControlPlaneIndependent: true });
  clock.t = m.nextDeadline()!;
  const detect = m.get(KEY)!.detectTimeUs / 1000;
  clock.t = detect + 1;
  const out = m.tick();
  t.match(out.find((o) => o.type === 'down'), { reason: 'Control Detection Time Expired', diag: 1, to: 'Down' });
  const info = m.get(KEY)!;
  t.equal(info.downCount, 1);
  t.equal(info.lastDownReason, 'Control Detection Time Expired');
});

t.test('manager: a timer fired later than half a detection time is reported and counted; one on time is not', async (t) => {
  const { m, ours, clock } = managerWithSession();
  const meta = { peer: KEY.peer, local: KEY.local, multihop: false };
  t.equal(lateTimerLimitMs(m.get(KEY)!), null, 'no limit before the timers are negotiated');
  m.receive(from({ state: 'Init', yourDiscriminator: ours }), meta);
  t.equal(m.get(KEY)?.state, 'Up');
  const limit = lateTimerLimitMs(m.get(KEY)!)!;
  t.ok(limit > 0, `limit ${limit} ms`);
  // On time: exactly at the deadline.
  clock.t = m.nextDeadline()!;
  const onTime = m.tick();
  t.notOk(onTime.some((o) => o.type === 'late'), 'a timer on time is not late');
  t.equal(m.get(KEY)?.timerLateMaxMs, 0);
  // The peer is heard, then our process sleeps: the next transmit fires limit + 5 ms after its deadline, still
  // inside the Detection Time of the packet just received.
  m.receive(from({ state: 'Up', yourDiscriminator: ours }), meta);
  const due = m.nextDeadline()!;
  clock.t = due + limit + 5;
  const late = m.tick();
  const ev = late.find((o) => o.type === 'late');
  t.match(ev, { type: 'late', key: KEY, limitMs: limit }, 'a late event with the limit');
  t.ok(ev?.type === 'late' && Math.abs(ev.lateMs - (limit + 5)) < 1e-6, 'how late it was');
  const info = m.get(KEY)!;
  t.equal(info.lateTimers, 1, 'counted once');
  t.ok(Math.abs(info.timerLateMaxMs - (limit + 5)) < 1e-6, 'the maximum kept');
  t.equal(info.state, 'Up', 'lateness alone is no state change here');
  // Carried across the companion's socket, and a companion from before these fields reads as 0.
  const ipc = toIpcSession(info, clock.t);
  t.equal(ipc.lateTimers, 1);
  const old = JSON.parse(JSON.stringify({ type: 'sessions', id: null, sessions: [ipc] })) as { sessions: Record<string, unknown>[] };
  delete old.sessions[0]!.lateTimers;
  delete old.sessions[0]!.timerLateMaxMs;
  const parsed = parseServerMessage(JSON.stringify(old));
  t.match(parsed, { type: 'sessions', sessions: [{ lateTimers: 0, timerLateMaxMs: 0 }] });
});
