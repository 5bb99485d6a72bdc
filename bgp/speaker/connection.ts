// Connection handling: the sockets of a peer's Connections. Accepting (and refusing) inbound connections, dialling,
// attaching a socket to a Connection, closing, and receiving: bytes → Framer → decoded messages for the speaker, and
// codec errors as the FSM events RFC 4271 §6 and RFC 7606 call for. One Peer has one Connection, or two while a
// collision is being resolved (RFC 4271 §6.8, decided by the speaker when the OPENs are in).
// Must not: decide anything about a session (the FSM and the speaker do), or write UPDATEs (sender.ts does).
import type net from 'node:net';
import { connectWithOptions, fdOf, setTtlSecurity } from '../net/index.js';
import type { FsmEvent, SessionFsm } from '../session/fsm.js';
import { CeaseSubcode, ErrorCode, MessageType } from '../wire/constants.js';
import { BgpError } from '../wire/errors.js';
import { Framer } from '../wire/framer.js';
import { decodeMessage } from '../wire/message.js';
import { encodeNotification } from '../wire/notification.js';
import { isIpv4 } from '../wire/prefix.js';
import { DEFAULT_CONTEXT } from '../wire/types.js';
import type { Message } from '../wire/types.js';
import { normalizeAddress } from './config.js';
import type { PeerOptions } from './config.js';
import { Connection } from './peer.js';
import { ReadSlices } from './read-slices.js';
import type { Peer } from './peer.js';
import type { LogRateLimit } from './rate-limit.js';
import type { Sender } from './sender.js';

/** a closing socket that does not finish flushing in this time is destroyed */
const CLOSE_GRACE_MS = 2000;
/** dial attempts give up after this long; the FSM's ConnectRetryTimer decides when to try again */
const DIAL_TIMEOUT_MS = 10_000;

/** What connection handling needs of the speaker. */
export interface ConnectionHost {
  peer(address: string): Peer | undefined;
  isRunning(): boolean;
  newFsm(o: PeerOptions): SessionFsm;
  feed(p: Peer, c: Connection, e: FsmEvent): void;
  /** a decoded message from the peer; throwing means a fault of ours: this session is reset */
  onMessage(p: Peer, c: Connection, msg: Message): void;
  /** octets of one received message (the speaker pumps early after many, see PUMP_EVERY_OCTETS) */
  countReceived(octets: number): void;
  /** a received chunk was handled */
  receiveDone(): void;
  /** the addresses listened on (a dial starts from the one of the peer's family) */
  listenHosts(): string[];
  log(level: 'info' | 'warn' | 'error', msg: string, peer?: string): void;
  readonly remoteLog: LogRateLimit;
  readonly sender: Sender;
}

export class Connections {
  /** sliceMs: how long input is handled before the event loop gets a turn (read-slices.ts; tests use less) */
  constructor(
    private readonly host: ConnectionHost,
    private readonly slices = new ReadSlices(),
  ) {}

  /** A connection the listener accepted: refused, or given to its peer's primary or to a second Connection. */
  accept(s: net.Socket): void {
    s.on('error', () => {}); // errors on a refused socket are of no interest; accepted ones get their own handler
    const address = normalizeAddress(s.remoteAddress ?? '');
    const p = this.host.peer(address);
    if (p && p.heldUntil > Date.now()) {
      this.reject(s, `connection from ${address}, held down after exceeding its maximum prefixes`);
      return;
    }
    if (!p || !this.host.isRunning() || p.removed) {
      this.reject(s, `connection from unconfigured address ${address}`);
      return;
    }
    s.setNoDelay(true);
    if (p.opts.ttlSecurity !== undefined) {
      try {
        setTtlSecurity(fdOf(s), p.opts.ttlSecurity);
      } catch (e) {
        this.host.log('warn', `GTSM on accepted connection: ${(e as Error).message}`, p.address);
      }
    }
    const primary = p.primary;
    // The primary waits for a connection (passive, or between attempts): it is this one.
    if (!primary.socket && !primary.dial && primary.fsm.state === 'Active') {
      this.attach(p, primary, s);
      this.host.feed(p, primary, { type: 'TcpConnected' });
      return;
    }
    const live = p.conns.filter((c) => c.socket || c.dial).length;
    if (p.conns.length >= 2 || live >= 2) {
      this.reject(s, `third connection from ${address}`);
      return;
    }
    // A second connection: its own FSM until the OPENs decide (RFC 4271 §6.8).
    const c = new Connection(this.host.newFsm(p.opts), true);
    p.conns.push(c);
    this.attach(p, c, s);
    this.host.feed(p, c, { type: 'ManualStart' });
    this.host.feed(p, c, { type: 'TcpConnected' });
  }

  /** RFC 4486 §4: Cease / Connection Rejected, then close. */
  private reject(s: net.Socket, why: string): void {
    const suppressed = this.host.remoteLog.take(normalizeAddress(s.remoteAddress ?? ''), 'connection-refused');
    if (suppressed !== null) this.host.log('info', `refused: ${why}${suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : ''}`);
    try {
      s.end(encodeNotification({ code: ErrorCode.Cease, subcode: CeaseSubcode.ConnectionRejected, data: Buffer.alloc(0) }));
    } catch {
      /* the socket is already broken */
    }
    setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
  }

  private attach(p: Peer, c: Connection, s: net.Socket): void {
    c.socket = s;
    c.framer = new Framer();
    c.readPaused = false;
    c.ctx = DEFAULT_CONTEXT;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => {
      if (c.socket === s && !c.dead) this.receive(p, c, chunk);
    });
    const gone = (why: string) => (): void => {
      if (c.socket !== s || c.dead) return;
      c.socket = null;
      this.host.feed(p, c, { type: 'TcpFails', reason: why });
    };
    s.on('end', gone('closed by peer'));
    s.on('close', gone('connection closed'));
    s.on('error', (e: Error) => gone(e.message)());
    s.on('drain', () => {
      if (c.socket !== s || c.dead) return;
      c.blocked = false;
      this.host.sender.progress(p, c);
      // the peer's update group is pumped once for all members that drained this turn (sender.ts)
      this.host.sender.schedulePump(p);
    });
  }

  // ------------------------------------------------------------------ receiving

  private receive(p: Peer, c: Connection, chunk: Buffer): void {
    try {
      c.framer.push(chunk);
    } catch (e) {
      this.codecError(p, c, e, MessageType.UPDATE, true);
      return;
    }
    if (c.readWaiting) return; // a later slice handles it, with what was buffered before (read-slices.ts)
    this.handleInput(p, c);
  }

  /**
   * Handle the messages buffered for a connection until they run out or the read slice is spent (read-slices.ts):
   * then the socket is paused and the rest handled in a later slice; it is resumed once all is handled.
   */
  private handleInput(p: Peer, c: Connection): void {
    let buf: Buffer | null;
    const s = c.socket;
    for (let n = 0; ; n++) {
      if (c.dead || c.socket === null || c.socket !== s) return;
      // the first message of each call is handled whatever the slice says: every connection makes progress
      if (this.slices.spent() && n > 0) {
        if (!c.readPaused) {
          c.readPaused = true;
          s.pause();
        }
        c.readWaiting = true;
        this.slices.later(() => {
          c.readWaiting = false;
          this.handleInput(p, c);
        });
        this.host.receiveDone();
        return;
      }
      try {
        buf = c.framer.next();
      } catch (e) {
        this.codecError(p, c, e, 0, true);
        return;
      }
      if (buf === null) break;
      this.host.countReceived(buf.length);
      let msg: Message;
      try {
        msg = decodeMessage(buf, c.ctx);
      } catch (e) {
        this.codecError(p, c, e, buf[18] ?? 0, false);
        return;
      }
      try {
        this.host.onMessage(p, c, msg);
      } catch (e) {
        // A fault of ours (or of a policy hook), not of the peer: reset this session only, keep the process.
        this.host.log('error', `internal error handling ${msg.type}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, p.address);
        this.host.feed(p, c, { type: 'AutomaticStop', subcode: CeaseSubcode.OutOfResources, reason: `internal error: ${String(e)}` });
        return;
      }
    }
    if (c.readPaused) {
      c.readPaused = false;
      s.resume();
    }
    this.host.receiveDone();
  }

  private codecError(p: Peer, c: Connection, e: unknown, type: number, header: boolean): void {
    if (!(e instanceof BgpError)) {
      this.host.log('error', `decoder failure: ${String(e)}`, p.address);
      this.host.feed(p, c, { type: 'TcpFails', reason: `internal decoder failure: ${String(e)}` });
      return;
    }
    p.info = `received malformed message: ${e.reason}`;
    if (header || type === MessageType.KEEPALIVE || type === MessageType.ROUTE_REFRESH) this.host.feed(p, c, { type: 'HeaderError', error: e });
    else if (type === MessageType.OPEN) this.host.feed(p, c, { type: 'OpenError', error: e });
    else if (type === MessageType.UPDATE) this.host.feed(p, c, { type: 'UpdateError', error: e });
    else this.host.feed(p, c, { type: 'TcpFails', reason: `undecodable NOTIFICATION: ${e.reason}` });
  }

  /** Dial the peer for this connection (the FSM's 'connect' action). */
  connect(p: Peer, c: Connection): void {
    if (c.socket || c.dial) return; // an inbound connection's FSM asks to connect on ManualStart: it already is
    const o = p.opts;
    const ac = new AbortController();
    c.dial = ac;
    const src = o.sourceAddress ?? this.defaultSource(p.address);
    connectWithOptions({
      host: p.address,
      port: o.port ?? 179,
      ...(src !== undefined ? { localAddress: src } : {}),
      ...(o.md5Key !== undefined ? { md5Key: o.md5Key } : {}),
      ...(o.ttlSecurity !== undefined ? { ttl: 255, minTtl: 256 - o.ttlSecurity } : {}),
      noDelay: true,
      timeoutMs: DIAL_TIMEOUT_MS,
      signal: ac.signal,
    }).then(
      (s) => {
        if (c.dial !== ac || c.dead || c.socket) {
          s.destroy();
          return;
        }
        c.dial = null;
        if (c.fsm.state !== 'Connect' && c.fsm.state !== 'Active') {
          s.destroy();
          return;
        }
        this.attach(p, c, s);
        this.host.feed(p, c, { type: 'TcpConnected' });
      },
      (e: Error) => {
        if (c.dial !== ac || c.dead) return;
        c.dial = null;
        this.host.feed(p, c, { type: 'TcpFails', reason: e.message });
      },
    );
  }

  /** Dial from the listen address when it is a specific address of the peer's family (so the peer recognises us). */
  private defaultSource(peer: string): string | undefined {
    return this.host.listenHosts().find((l) => l !== '::' && l !== '0.0.0.0' && isIpv4(l) === isIpv4(peer));
  }

  /** Close the connection's socket or cancel its dial (the FSM's 'close' action, or the connection is discarded). */
  close(c: Connection): void {
    if (c.dial) {
      c.dial.abort();
      c.dial = null;
    }
    const s = c.socket;
    if (!s) return;
    c.socket = null;
    c.blocked = false;
    // end() lets a NOTIFICATION written just before go out; a peer that does not read gets no more than the grace time
    try {
      s.end();
    } catch {
      /* already broken */
    }
    setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
  }
}
