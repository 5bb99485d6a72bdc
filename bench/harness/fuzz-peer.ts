// A hostile BGP peer for fuzzing skeind (issue 15): it keeps a session with skeind and sends it mutated UPDATEs, and
// on some connections a mutated OPEN, each mutation drawn by fast-check from a seed, so a run can be repeated.
// After each mutated UPDATE it sends a ROUTE-REFRESH (RFC 2918): skeind answers it with its Adj-RIB-Out for us, in
// order after the mutated message, so an UPDATE back means "processed, session kept" and a NOTIFICATION back is
// the answer to that very message. Each answer is judged against the RFCs:
//   - a mutated header (marker, length, type): Message Header Error (RFC 4271 §6.1), or for a changed type what that
//     type calls for (RFC 6608 FSM error for an OPEN in Established, RFC 7313 §5 for a bad ROUTE-REFRESH), or
//     silence for a NOTIFICATION;
//   - a mutated UPDATE body: kept (treat-as-withdraw or attribute discard, RFC 7606), or UPDATE Message Error
//     (RFC 4271 §6.3 subcodes) or Bad Message Length (a body shorter than an UPDATE can be);
//   - a mutated OPEN: OPEN Message Error or Message Header Error (RFC 4271 §6.2), Cease (RFC 4486), or a session;
//   - never: no answer at all (a hang), Cease/Out of Resources (skeind's answer to an internal error), a Hold Timer
//     Expired, an OPEN Message Error once Established, a close without a NOTIFICATION.
// Environment: SKEIND_ADDR, SKEIND_PORT (179), ADDR (our address), ASN, SKEIND_ASN, COUNT (mutated UPDATEs, 2000),
// SEED (default: from the clock; printed), OPEN_EVERY (every n-th connection starts with a mutated OPEN, 4),
// ANSWER_MS (how long an answer may take, 10000). Prints JSON lines: {"event":"bad",...} per wrong answer,
// {"event":"progress",...} now and then, and {"event":"done",...} with the counts at the end; exit 0 even when
// something was wrong (the caller judges), 2 when it could not run at all.
import net from 'node:net';
import fc from 'fast-check';
import {
  Framer, buildCapabilities, encodeMessage, packUpdates, packWithdrawals, parseIpv4, parsePrefixText,
  type CodecContext, type PathAttributes,
} from '../../bgp/index.js';

const env = (k: string, d?: string): string => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} not set`);
  return v;
};
const HOST = env('SKEIND_ADDR');
const PORT = Number(env('SKEIND_PORT', '179'));
const ADDR = env('ADDR');
const ASN = Number(env('ASN', '65066'));
const COUNT = Number(env('COUNT', '2000'));
const SEED = Number(env('SEED', String(Date.now() % 2 ** 31)));
const OPEN_EVERY = Number(env('OPEN_EVERY', '4'));
const ANSWER_MS = Number(env('ANSWER_MS', '10000'));
const CTX: CodecContext = { as4: true, extendedMessage: false, addPathRx: new Set(), addPathTx: new Set() };
const out = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
process.stdout.on('error', () => process.exit(0));

// ------------------------------------------------------------------ what is mutated

/** Valid UPDATEs of several shapes, the material the mutations start from (prefixes outside the test's pools). */
function bases(): Buffer[] {
  const v4 = (ps: string[]): { afi: 1; safi: number; prefixes: number[]; pathIds: null } => ({ afi: 1, safi: 1, prefixes: ps.map((p) => parsePrefixText(p) as number), pathIds: null });
  const attrs: PathAttributes[] = [
    { origin: 0, asPath: [{ type: 2, asns: [ASN] }], nextHop: ADDR },
    { origin: 2, asPath: [{ type: 2, asns: [ASN, 65100, 4_200_000_001] }, { type: 1, asns: [65200, 65201] }], nextHop: ADDR, med: 50, communities: [ASN * 65536 + 100, 0xffffff01] },
    { origin: 1, asPath: [{ type: 2, asns: [ASN] }], nextHop: ADDR, largeCommunities: [[ASN, 1, 2], [ASN, 3, 4]], atomicAggregate: true, aggregator: { asn: ASN, address: ADDR } },
  ];
  const out: Buffer[] = [];
  out.push(...packUpdates(attrs[0]!, v4(['172.30.1.0/24', '172.30.2.0/25']), CTX));
  out.push(...packUpdates(attrs[1]!, v4(['172.30.3.0/24', '172.30.4.0/26', '172.30.5.0/27']), CTX));
  out.push(...packUpdates(attrs[2]!, v4(['172.30.6.0/24']), CTX));
  out.push(...packWithdrawals(v4(['172.30.1.0/24', '172.30.9.0/24']), CTX));
  const v6 = { afi: 2 as const, safi: 1, prefixes: ['fd00:30::/64', 'fd00:31::/48'].map((p) => parsePrefixText(p) as string), pathIds: null };
  out.push(...packUpdates({ origin: 0, asPath: [{ type: 2, asns: [ASN] }] }, v6, CTX, undefined, ['fd00:99::1']));
  return out;
}

type Op =
  | { kind: 'flip'; at: number; mask: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'header'; at: number; value: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x40, 0x20, 0x10) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('header' as const), at: fc.integer({ min: 0, max: 18 }), value: fc.integer({ min: 0, max: 255 }) }) },
);
const mutationArb = fc.record({ base: fc.nat(), ops: fc.array(opArb, { minLength: 1, maxLength: 3 }) });

/** Applies the ops to the body (octets 19 on) and fixes the length field, unless an op changed the header itself. */
function mutate(msg: Buffer, ops: readonly Op[]): { buf: Buffer; header: boolean } {
  let body = [...msg.subarray(19)];
  const head = [...msg.subarray(0, 19)];
  let header = false;
  for (const op of ops) {
    const at = body.length === 0 ? 0 : op.at % (body.length + 1);
    if (op.kind === 'flip' && body.length > 0) body[at % body.length]! ^= op.mask;
    else if (op.kind === 'set' && body.length > 0) body[at % body.length] = op.value;
    else if (op.kind === 'truncate') body = body.slice(0, at);
    else if (op.kind === 'insert') body.splice(at, 0, ...op.bytes);
    else if (op.kind === 'header') {
      head[op.at] = op.value;
      header = true;
    }
  }
  const len = 19 + body.length;
  if (!header || (head[16] === msg[16] && head[17] === msg[17])) {
    head[16] = len >> 8;
    head[17] = len & 0xff;
  }
  // a header op that left every header octet as it was is no header mutation
  if (header && head.every((b, i) => b === msg[i] || i === 16 || i === 17) && head[16] === len >> 8 && head[17] === (len & 0xff)) header = false;
  // A length field made larger than the message: skeind rightly waits for the rest, so the rest is sent (zeros).
  // Above the largest message it must refuse at once (RFC 4271 §6.1), and below 19 as well.
  const declared = (head[16]! << 8) | head[17]!;
  if (declared > len && declared <= 4096) body.push(...new Array<number>(declared - len).fill(0));
  return { buf: Buffer.from([...head, ...body]), header };
}

// ------------------------------------------------------------------ judging answers

interface Notification { code: number; subcode: number }
const UPDATE_SUBCODES = new Set([1, 2, 3, 4, 5, 6, 8, 9, 10, 11]);

/** Whether a NOTIFICATION (or none: null, session kept) is an answer the RFCs allow to this mutated UPDATE. */
function updateAnswerOk(m: { buf: Buffer; header: boolean }, n: Notification | null): boolean {
  if (n !== null && n.code === 6 && n.subcode === 8) return false; // Out of Resources: skeind's internal error
  if (n !== null && (n.code === 4 || n.code === 2)) return false; // Hold Timer Expired, OPEN error in Established
  if (!m.header) {
    if (n === null) return true;
    if (n.code === 3) return UPDATE_SUBCODES.has(n.subcode);
    // RFC 4271 §6.1: an UPDATE shorter than 23 octets has a bad length
    return n.code === 1 && n.subcode === 2 && m.buf.length < 23;
  }
  if (n === null) return true; // e.g. a marker bit that changed nothing skeind checks, or KEEPALIVE of 19 octets
  const type = m.buf[18];
  if (n.code === 1) return n.subcode >= 1 && n.subcode <= 3;
  if (n.code === 3) return type === 2 && UPDATE_SUBCODES.has(n.subcode);
  if (n.code === 5) return type === 1 && n.subcode === 3; // RFC 6608: OPEN in Established
  if (n.code === 7) return type === 5; // RFC 7313 §5: malformed ROUTE-REFRESH
  return false;
}

function openAnswerOk(n: Notification | null, sent: Buffer): boolean {
  if (n === null) return true; // the mutation left a valid OPEN: a session
  if (n.code === 6) return n.subcode !== 8;
  // The mutation changed the type byte to another known message (UPDATE, KEEPALIVE, ROUTE-REFRESH): skeind is in
  // OpenSent, where any message but an OPEN is an FSM error (RFC 4271 §8.2.2), subcode 1 "Receive Unexpected
  // Message in OpenSent State" (RFC 6608 §3). (A header the mutation broke is still a 1/x, accepted below.)
  const type = sent[18];
  if (n.code === 5 && (n.subcode === 1 || n.subcode === 0) && (type === 2 || type === 4 || type === 5)) return true;
  return n.code === 1 || n.code === 2;
}

// ------------------------------------------------------------------ the session

class Conn {
  readonly sock: net.Socket;
  readonly framer = new Framer();
  /** messages from skeind: type and, for NOTIFICATION, code/subcode */
  readonly rx: { type: number; n?: Notification; body?: Buffer }[] = [];
  closed = false;
  #wake: (() => void) | undefined;

  constructor() {
    this.sock = net.connect({ host: HOST, port: PORT, localAddress: ADDR });
    this.sock.on('data', (d: Buffer) => {
      try {
        this.framer.push(d);
        for (let b = this.framer.next(); b !== null; b = this.framer.next()) {
          const type = b[18]!;
          this.rx.push(type === 3 ? { type, n: { code: b[19] ?? 0, subcode: b[20] ?? 0 } } : { type, body: b });
        }
      } catch (e) {
        out({ event: 'bad', what: `skeind sent something our framer refuses: ${(e as Error).message}` });
        this.sock.destroy();
      }
      this.#wake?.();
    });
    const end = (): void => {
      this.closed = true;
      this.#wake?.();
    };
    this.sock.on('close', end);
    this.sock.on('error', end);
  }

  /** Waits until `f` holds (true) or the connection closed or the time ran out (false). */
  async wait(f: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!f()) {
      if (this.closed || Date.now() >= end) return f();
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(100, Math.max(1, end - Date.now())));
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.#wake = undefined;
    }
    return true;
  }

  notification(from = 0): Notification | null {
    return this.rx.slice(from).find((m) => m.type === 3)?.n ?? null;
  }
}

const open = (): Buffer => encodeMessage({
  type: 'OPEN', version: 4, myAs: ASN, holdTime: 90, bgpId: parseIpv4(ADDR),
  capabilities: buildCapabilities({ localAs: ASN, families: [0x101, 0x201] }),
});
const routeRefresh = Buffer.from([...Buffer.alloc(16, 0xff), 0, 23, 5, 0, 1, 0, 1]);
const keepalive = encodeMessage({ type: 'KEEPALIVE' });

const counts = { updates: 0, kept: 0, notifications: {} as Record<string, number>, connections: 0, refused: 0, badOpens: 0, openAnswers: {} as Record<string, number>, bad: 0, silentCloses: 0 };
const bad = (o: Record<string, unknown>): void => {
  counts.bad++;
  if (counts.bad <= 50) out({ event: 'bad', ...o });
};
const key = (n: Notification | null): string => (n === null ? 'none' : `${n.code}/${n.subcode}`);

/** Connects until a session is Established (our valid OPEN); on every OPEN_EVERY-th attempt a mutated OPEN first. */
async function establish(openMutations: Iterator<{ base: number; ops: Op[] }>, deadline: number): Promise<Conn | null> {
  while (Date.now() < deadline) {
    counts.connections++;
    const c = new Conn();
    const connected = await c.wait(() => c.sock.readyState === 'open', 5000);
    if (!connected) {
      c.sock.destroy();
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    if (OPEN_EVERY > 0 && counts.connections % OPEN_EVERY === 0) {
      const m = openMutations.next().value as { ops: Op[] };
      const mutated = mutate(open(), m.ops);
      counts.badOpens++;
      c.sock.write(mutated.buf);
      // skeind sends its own OPEN at once; the answer to ours is a NOTIFICATION, or a KEEPALIVE (accepted)
      const answered = await c.wait(() => c.rx.some((x) => x.type === 3 || x.type === 4), ANSWER_MS);
      const n = c.notification();
      counts.openAnswers[key(n)] = (counts.openAnswers[key(n)] ?? 0) + 1;
      if (!answered && !c.closed) bad({ what: 'no answer to a mutated OPEN', open: mutated.buf.toString('hex') });
      else if (!openAnswerOk(n, mutated.buf) || (n === null && !c.rx.some((x) => x.type === 4) && c.closed)) {
        if (n === null) counts.silentCloses++;
        else bad({ what: 'wrong answer to a mutated OPEN', answer: key(n), open: mutated.buf.toString('hex') });
      }
      c.sock.destroy();
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    c.sock.write(open());
    const ok = await c.wait(() => c.rx.some((x) => x.type === 1) || c.rx.some((x) => x.type === 3), ANSWER_MS);
    if (!ok || c.notification() !== null) {
      // refused (Cease/Connection Rejected while skeind holds the peer down after an error): try again shortly
      counts.refused++;
      c.sock.destroy();
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    c.sock.write(keepalive);
    // our table from skeind, ending in End-of-RIB (an UPDATE with nothing in it)
    await c.wait(() => c.rx.some((x) => x.type === 2 && x.body !== undefined && x.body.length === 23), 5000);
    return c;
  }
  return null;
}

async function main(): Promise<void> {
  out({ event: 'start', seed: SEED, count: COUNT });
  const base = bases();
  const updates = fc.sample(mutationArb, { seed: SEED, numRuns: COUNT });
  const opens = fc.sample(mutationArb, { seed: SEED + 1, numRuns: Math.max(1, Math.ceil(COUNT / Math.max(1, OPEN_EVERY))) + 1000 })[Symbol.iterator]();
  const deadline = Date.now() + Number(env('MAX_SECONDS', '3600')) * 1000;
  let c: Conn | null = null;
  let lastProgress = Date.now();
  for (let i = 0; i < updates.length && Date.now() < deadline; i++) {
    if (c === null || c.closed) {
      c?.sock.destroy();
      c = await establish(opens, deadline);
      if (c === null) break;
    }
    const u = updates[i]!;
    const m = mutate(base[u.base % base.length]!, u.ops);
    const from = c.rx.length;
    counts.updates++;
    c.sock.write(m.buf);
    c.sock.write(routeRefresh);
    const conn = c;
    const answered = await c.wait(() => conn.rx.slice(from).some((x) => x.type === 2 || x.type === 3), ANSWER_MS);
    const n = c.notification(from);
    if (n === null && answered) counts.kept++;
    else counts.notifications[key(n)] = (counts.notifications[key(n)] ?? 0) + 1;
    if (!answered && !c.closed) bad({ what: 'no answer (neither our routes again nor a NOTIFICATION)', i, msg: m.buf.toString('hex') });
    else if (!answered && n === null) {
      // closed without a NOTIFICATION: right only when we sent a NOTIFICATION ourselves (type changed to 3)
      if (!(m.header && m.buf[18] === 3)) bad({ what: 'closed without a NOTIFICATION', i, msg: m.buf.toString('hex') });
      else counts.silentCloses++;
    } else if (!updateAnswerOk(m, n)) bad({ what: 'answer the RFCs do not allow', answer: key(n), header: m.header, i, msg: m.buf.toString('hex') });
    if (n !== null || !answered) {
      c.sock.destroy();
      c = null;
    }
    if (Date.now() - lastProgress > 5000) {
      lastProgress = Date.now();
      out({ event: 'progress', ...counts });
    }
  }
  c?.sock.destroy();
  out({ event: 'done', seed: SEED, ...counts });
}

main().then(() => process.exit(0), (e: unknown) => {
  out({ event: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  process.exit(2);
});
