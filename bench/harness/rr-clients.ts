// The client side of bench/rr.ts: C emulated iBGP route-reflector clients in one process, each a raw BGP session
// from its own loopback address (127.0.100.1, 127.0.100.2, ...) to the reflector. Deliberately not skein's own
// speaker: the clients must cost as little CPU as possible (they share the machine with the reflector) and must
// not share code with the thing measured. Each client announces R IPv4 /32s in one UPDATE when told, and keeps a
// bitmap of the prefixes it holds from the others, so "has everything" is a counter compare, not a table walk.
//
// Commands on stdin, one per line:  announce | withdraw <client> | reannounce <client> | quit
// Reports on stdout, one JSON object per line (t: Date.now()):
//   {"ev":"up","n":K}                         every 50th session Established and the last one
//   {"ev":"full","t":...}                     every client holds all (C-1)*R prefixes of the others
//   {"ev":"gone","client":i,"t":...}          every other client has dropped client i's R prefixes
//   {"ev":"back","client":i,"t":...}          every other client holds client i's R prefixes again
//   {"ev":"error","msg":...}
// Environment: RR_ADDR, RR_PORT, C, R, ASN (the reflector's, iBGP), BASE (first prefix, dotted; default 10.128.0.0).
import { connect, type Socket } from 'node:net';

const env = (k: string, d?: string): string => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} not set`);
  return v;
};
const rrAddr = env('RR_ADDR');
const rrPort = Number(env('RR_PORT'));
const C = Number(env('C'));
const R = Number(env('R'));
const ASN = Number(env('ASN', '64512'));
const BASE = env('BASE', '10.128.0.0').split('.').reduce((a, o) => a * 256 + Number(o), 0);
const TOTAL = C * R;
process.stdout.on('error', () => process.exit(0));
const out = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);

const addrOf = (i: number): string => `127.0.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`;

function msg(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(19, 0xff);
  h.writeUInt16BE(19 + body.length, 16);
  h[18] = type;
  return Buffer.concat([h, body]);
}

function open(i: number): Buffer {
  // capabilities: MP IPv4 unicast (RFC 4760), route refresh (RFC 2918), 4-octet AS (RFC 6793)
  const caps = Buffer.from([1, 4, 0, 1, 0, 1, 2, 0, 65, 4, (ASN >>> 24) & 255, (ASN >>> 16) & 255, (ASN >>> 8) & 255, ASN & 255]);
  const b = Buffer.alloc(10);
  b[0] = 4;
  b.writeUInt16BE(ASN > 65535 ? 23456 : ASN, 1);
  b.writeUInt16BE(90, 3);
  addrOf(i).split('.').forEach((o, k) => (b[5 + k] = Number(o)));
  b[9] = caps.length + 2;
  return msg(1, Buffer.concat([b, Buffer.from([2, caps.length]), caps]));
}
const KEEPALIVE = msg(4, Buffer.alloc(0));

function prefixBytes(idx: number): number[] {
  const a = BASE + idx;
  return [32, (a >>> 24) & 255, (a >>> 16) & 255, (a >>> 8) & 255, a & 255];
}

/** One UPDATE announcing client i's R /32s: ORIGIN IGP, empty AS_PATH, NEXT_HOP itself, LOCAL_PREF 100. */
function announce(i: number): Buffer {
  const nh = addrOf(i).split('.').map(Number);
  const attrs = Buffer.from([0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, ...nh, 0x40, 5, 4, 0, 0, 0, 100]);
  const nlri: number[] = [];
  for (let r = 0; r < R; r++) nlri.push(...prefixBytes(i * R + r));
  const b = Buffer.alloc(4);
  b.writeUInt16BE(0, 0);
  b.writeUInt16BE(attrs.length, 2);
  return msg(2, Buffer.concat([b, attrs, Buffer.from(nlri)]));
}

function withdraw(i: number): Buffer {
  const w: number[] = [];
  for (let r = 0; r < R; r++) w.push(...prefixBytes(i * R + r));
  const b = Buffer.alloc(2);
  b.writeUInt16BE(w.length, 0);
  return msg(2, Buffer.concat([b, Buffer.from(w), Buffer.from([0, 0])]));
}

class Client {
  sock: Socket;
  buf: Buffer = Buffer.alloc(0);
  established = false;
  /** held[k]: 1 when this client holds prefix k (from another client) */
  held = new Uint8Array(TOTAL);
  count = 0;
  tries = 0;
  constructor(readonly i: number) {
    this.sock = this.dial();
  }

  /** Connect; until the session is up, a refused or closed connection is tried again (at most 700 times, 0.5 s apart). */
  dial(): Socket {
    const i = this.i;
    const s = connect({ host: rrAddr, port: rrPort, localAddress: addrOf(i), noDelay: true });
    s.on('connect', () => s.write(open(i)));
    s.on('data', (d: Buffer) => this.data(d));
    s.on('error', () => {}); // 'close' follows
    s.on('close', () => {
      if (this.established) out({ ev: 'error', msg: `client ${i}: session closed` });
      else if (++this.tries < 700) setTimeout(() => (this.sock = this.dial()), 500);
      else out({ ev: 'error', msg: `client ${i}: no session after ${this.tries} tries` });
      this.established = false;
      this.buf = Buffer.alloc(0);
    });
    return s;
  }

  data(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let off = 0;
    while (this.buf.length - off >= 19) {
      const len = this.buf.readUInt16BE(off + 16);
      if (this.buf.length - off < len) break;
      const type = this.buf[off + 18];
      if (type === 1) this.sock.write(KEEPALIVE);
      else if (type === 4 && !this.established) {
        this.established = true;
        setInterval(() => this.sock.write(KEEPALIVE), 30_000).unref();
        sessionUp();
      } else if (type === 2) this.update(off + 19, off + len);
      else if (type === 3) out({ ev: 'error', msg: `client ${this.i}: NOTIFICATION ${this.buf[off + 19]}/${this.buf[off + 20]}` });
      off += len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
  }

  update(s: number, e: number): void {
    const b = this.buf;
    const wl = b.readUInt16BE(s);
    this.prefixes(s + 2, s + 2 + wl, false);
    const al = b.readUInt16BE(s + 2 + wl);
    this.prefixes(s + 4 + wl + al, e, true);
  }

  prefixes(s: number, e: number, add: boolean): void {
    const b = this.buf;
    let o = s;
    while (o < e) {
      const bits = b[o] as number;
      const n = (bits + 7) >> 3;
      let a = 0;
      for (let k = 0; k < 4; k++) a = a * 256 + (k < n ? (b[o + 1 + k] as number) : 0);
      o += 1 + n;
      const k = a - BASE;
      if (bits !== 32 || k < 0 || k >= TOTAL) continue;
      const own = Math.floor(k / R) === this.i;
      if (own) continue; // a reflector that sent a client its own route back: not counted
      if (add && this.held[k] === 0) {
        this.held[k] = 1;
        this.count++;
        changed(this, k);
      } else if (!add && this.held[k] === 1) {
        this.held[k] = 0;
        this.count--;
        changed(this, k);
      }
    }
  }
}

const clients: Client[] = [];
let up = 0;
function sessionUp(): void {
  up++;
  if (up % 50 === 0 || up === C) out({ ev: 'up', n: up });
}

// ----- completion tracking
let wantFull = false;
let full = 0; // clients holding everything
/** the client being flapped, and how many others still disagree with the wanted state of its prefixes */
let flap: { client: number; want: 0 | 1; pending: number } | null = null;
/** per client: how many of the flapped client's prefixes it holds */
let flapHeld: Uint16Array = new Uint16Array(C);

function changed(c: Client, k: number): void {
  if (wantFull && c.count === (C - 1) * R) {
    full++;
    if (full === C) {
      wantFull = false;
      out({ ev: 'full' });
    }
  }
  if (flap !== null && Math.floor(k / R) === flap.client) {
    const before = flapHeld[c.i] as number;
    const now = before + (c.held[k] === 1 ? 1 : -1);
    flapHeld[c.i] = now;
    const target = flap.want === 1 ? R : 0;
    if (before !== target && now === target) flap.pending--;
    else if (before === target && now !== target) flap.pending++;
    if (flap.pending === 0) {
      out({ ev: flap.want === 1 ? 'back' : 'gone', client: flap.client });
      flap = null;
    }
  }
}

function startFlap(i: number, want: 0 | 1): void {
  flapHeld = new Uint16Array(C);
  let pending = 0;
  for (const c of clients) {
    if (c.i === i) continue;
    let h = 0;
    for (let r = 0; r < R; r++) h += c.held[i * R + r] as number;
    flapHeld[c.i] = h;
    if (h !== (want === 1 ? R : 0)) pending++;
  }
  flap = { client: i, want, pending };
  clients[i]!.sock.write(want === 1 ? announce(i) : withdraw(i));
}

for (let i = 0; i < C; i++) clients.push(new Client(i));

let line = '';
process.stdin.on('data', (d: Buffer) => {
  line += d.toString();
  let nl;
  while ((nl = line.indexOf('\n')) >= 0) {
    const [cmd, arg] = line.slice(0, nl).trim().split(' ');
    line = line.slice(nl + 1);
    if (cmd === 'announce') {
      wantFull = true;
      full = clients.filter((c) => c.count === (C - 1) * R).length;
      for (const c of clients) c.sock.write(announce(c.i));
    } else if (cmd === 'withdraw') startFlap(Number(arg), 0);
    else if (cmd === 'reannounce') startFlap(Number(arg), 1);
    else if (cmd === 'quit') process.exit(0);
  }
});
process.stdin.on('end', () => process.exit(0));
