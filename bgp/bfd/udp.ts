// The BFD UDP driver: node:dgram sockets and one timer around a BfdManager.
// Single hop per RFC 5881 (destination port 3784, TTL 255 sent and required
// on reception), multihop per RFC 5883 (port 4784, a configurable lowest TTL).
//
// Sockets:
// - one receive socket per (local address, port), bound to that address, so
//   the local address of a packet is known without IP_PKTINFO (§6.8.6 selects
//   a session by addresses when Your Discriminator is zero);
// - one send socket per session, bound to the local address and a source port
//   in 49152–65535, unique per session (RFC 5881 §4), TTL 255 (§5).
// The received TTL is checked by the kernel: node:dgram cannot read it
// (no IP_RECVTTL), so the native addon attaches a BPF filter to each receive
// socket that drops anything below the required TTL (255 for single hop).
// What it cannot do: bind to an interface (SO_BINDTODEVICE) — a session's
// interface is a label and a scope for link-local addresses, not a filter.
import dgram from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import { native } from '../net/native.js';
import { BfdError } from './packet.js';
import { BfdManager, keyString, type BfdKey, type BfdManagerOptions, type BfdOutput } from './manager.js';
import type { BfdParams } from './session.js';

/** RFC 5881 §4 / RFC 5883 §5 destination ports. */
export const BFD_SINGLE_HOP_PORT = 3784;
export const BFD_MULTIHOP_PORT = 4784;
/** RFC 5881 §4: source ports. */
export const BFD_SOURCE_PORT_MIN = 49152;
export const BFD_SOURCE_PORT_MAX = 65535;

export interface BfdUdpOptions extends Partial<BfdManagerOptions> {
  /** destination ports (tests may move them) */
  readonly singleHopPort?: number;
  readonly multihopPort?: number;
  /** RFC 5883 §5: lowest TTL accepted on multihop sessions; default 1 (no check) */
  readonly multihopMinTtl?: number;
  /** up/down/state events and discarded packets, as plain data */
  readonly onEvent?: (e: BfdOutput | { readonly type: 'discard'; readonly code: string; readonly reason: string; readonly from: string }) => void;
  /** socket errors that do not stop the driver (a failed send, a vanished address) */
  readonly onError?: (err: Error, where: string) => void;
}

/** The descriptor under a dgram socket, without the deprecated _handle accessor. */
function dgramFd(s: dgram.Socket): number {
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  const state = sym ? (s as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym] : undefined;
  const fd = state?.handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw Object.assign(new Error('cannot find the UDP socket descriptor'), { code: 'EBADF' });
  return fd;
}

const familyOf = (addr: string): 'udp4' | 'udp6' => (isIPv4(addr.split('%')[0] ?? '') ? 'udp4' : 'udp6');

function bindAsync(s: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    s.once('error', onError);
    s.bind({ port, address, exclusive: true }, () => {
      s.off('error', onError);
      resolve();
    });
  });
}

/** Strip an IPv4-mapped prefix so the manager sees one spelling per address. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a;
}

interface TxSocket {
  readonly socket: dgram.Socket;
  readonly sourcePort: number;
}

export class BfdUdpDriver {
  readonly manager: BfdManager;
  private readonly rx = new Map<string, dgram.Socket>();
  private readonly tx = new Map<string, TxSocket>();
  private timer: NodeJS.Timeout | null = null;
  private timerAt: number | null = null;
  private closed = false;
  private readonly clock: BfdManagerOptions['clock'];
  /** datagrams sent and received, for cost measurements */
  packetsSent = 0;
  packetsReceived = 0;

  constructor(private readonly opts: BfdUdpOptions = {}) {
    this.clock = opts.clock ?? { now: () => performance.now() };
    this.manager = new BfdManager({
      clock: this.clock,
      ...(opts.random ? { random: opts.random } : {}),
      ...(opts.controlPlaneIndependent !== undefined ? { controlPlaneIndependent: opts.controlPlaneIndependent } : {}),
    });
  }

  /** Adds a session (opening its sockets) and starts it. */
  async add(key: BfdKey, params: BfdParams): Promise<void> {
    if (this.closed) throw new Error('BFD driver is closed');
    if (!isIPv4(key.peer) && !isIPv6(key.peer.split('%')[0] ?? '')) throw new TypeError(`peer "${key.peer}" is not an IP address`);
    if (familyOf(key.peer) !== familyOf(key.local)) throw new TypeError(`peer ${key.peer} and local ${key.local} differ in family`);
    await this.ensureRx(key);
    const k = keyString(key);
    if (!this.tx.has(k)) this.tx.set(k, await this.openTx(key));
    this.apply(this.manager.add(key, params));
  }

  update(key: BfdKey, params: BfdParams): void {
    this.apply(this.manager.update(key, params));
  }

  /** Removes a session: one AdminDown packet, then its send socket closes. */
  remove(key: BfdKey): void {
    this.apply(this.manager.remove(key));
    const k = keyString(key);
    const t = this.tx.get(k);
    this.tx.delete(k);
    // Close after the AdminDown packet left (send is asynchronous).
    if (t) setImmediate(() => t.socket.close());
  }

  disable(key: BfdKey, diag?: number): void {
    this.apply(this.manager.disable(key, diag));
  }

  enable(key: BfdKey): void {
    this.apply(this.manager.enable(key));
  }

  /**
   * Stops everything. graceful: every session says AdminDown first (§6.8.16);
   * otherwise the sockets just close, as if the process died, and peers find
   * out by their detection timers.
   */
  async close(opts: { graceful?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    if (opts.graceful) for (const s of this.manager.sessions()) this.apply(this.manager.remove(s.key));
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await new Promise((r) => setImmediate(r));
    const all = [...this.rx.values(), ...[...this.tx.values()].map((t) => t.socket)];
    this.rx.clear();
    this.tx.clear();
    await Promise.all(all.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  /** The source port of a session's packets (RFC 5881 §4). */
  sourcePort(key: BfdKey): number | undefined {
    return this.tx.get(keyString(key))?.sourcePort;
  }

  private port(multihop: boolean): number {
    return multihop ? (this.opts.multihopPort ?? BFD_MULTIHOP_PORT) : (this.opts.singleHopPort ?? BFD_SINGLE_HOP_PORT);
  }

  private async ensureRx(key: BfdKey): Promise<void> {
    const port = this.port(key.multihop);
    const id = `${key.local}|${port}`;
    if (this.rx.has(id)) return;
    const s = dgram.createSocket({ type: familyOf(key.local), reuseAddr: false });
    this.rx.set(id, s);
    try {
      await bindAsync(s, port, key.local);
      // RFC 5881 §5 GTSM: 255 exactly on a single hop; RFC 5883 §5: a configured floor on multihop.
      const minTtl = key.multihop ? (this.opts.multihopMinTtl ?? 1) : 255;
      if (minTtl > 1) native().attachMinTtlFilter(dgramFd(s), minTtl);
    } catch (e) {
      this.rx.delete(id);
      s.close();
      throw e;
    }
    const local = key.local;
    const multihop = key.multihop;
    s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo, local, multihop));
    s.on('error', (e) => this.opts.onError?.(e, `receive socket ${id}`));
  }

  private async openTx(key: BfdKey): Promise<TxSocket> {
    let last: unknown;
    // A random port in the RFC 5881 §4 range, a bounded number of tries when taken.
    for (let i = 0; i < 64; i++) {
      const port = BFD_SOURCE_PORT_MIN + Math.floor(Math.random() * (BFD_SOURCE_PORT_MAX - BFD_SOURCE_PORT_MIN + 1));
      const s = dgram.createSocket({ type: familyOf(key.local) });
      try {
        await bindAsync(s, port, key.local);
        s.setTTL(255); // RFC 5881 §5 / RFC 5883 §5: sent with TTL 255 (hop limit for IPv6)
        s.on('error', (e) => this.opts.onError?.(e, `send socket ${keyString(key)}`));
        return { socket: s, sourcePort: port };
      } catch (e) {
        last = e;
        s.close();
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      }
    }
    throw last;
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo, local: string, multihop: boolean): void {
    if (this.closed) return;
    this.packetsReceived++;
    const peer = plainAddress(rinfo.address);
    try {
      this.apply(this.manager.receive(msg, { peer, local, multihop }));
    } catch (e) {
      if (e instanceof BfdError) this.opts.onEvent?.({ type: 'discard', code: e.code, reason: e.reason, from: peer });
      else this.opts.onError?.(e as Error, `packet from ${peer}`);
    }
  }

  private apply(outputs: readonly BfdOutput[]): void {
    for (const o of outputs) {
      if (o.type === 'send') this.send(o.key, o.bytes);
      else this.opts.onEvent?.(o);
    }
    this.schedule();
  }

  private send(key: BfdKey, bytes: Buffer): void {
    const t = this.tx.get(keyString(key));
    if (!t || this.closed) return;
    this.packetsSent++;
    t.socket.send(bytes, this.port(key.multihop), key.peer, (err) => {
      // A lost packet is what BFD is built to survive; report, never throw.
      if (err) this.opts.onError?.(err, `send to ${key.peer}`);
    });
  }

  /** One setTimeout for the earliest deadline of all sessions. */
  private schedule(): void {
    if (this.closed) return;
    const next = this.manager.nextDeadline();
    if (next === this.timerAt && this.timer) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = next;
    if (next === null) return;
    const timer = setTimeout(() => {
      // Run the timers after this turn's I/O (setImmediate follows the poll phase): when the process was stalled
      // (a loaded host, a long task on the loop), packets the peer sent in time are already waiting in the socket,
      // and expiring the Detection Time before reading them would declare a live peer dead.
      setImmediate(() => {
        if (this.timer !== timer || this.closed) return; // replaced by a packet handled in between
        this.timer = null;
        this.timerAt = null;
        this.apply(this.manager.tick());
      });
    }, Math.max(0, next - this.clock.now()));
    this.timer = timer;
  }
}
