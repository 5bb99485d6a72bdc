// A hand-driven BGP peer for in-process speaker tests over loopback: it opens the TCP session itself, sends an
// OPEN with exactly the capabilities a test asks for, then UPDATEs, End-of-RIB, NOTIFICATION or a TCP reset on
// command, and records everything the speaker sends (and, for IPv4, what the speaker advertises to it).
// (test/helpers/bgp-peer.ts is the other talker: a separate process that captures real daemons' bytes.)
import net from 'node:net';
import {
  Framer,
  buildCapabilities,
  decodeMessage,
  encodeMessage,
  endOfRib,
  packUpdates,
  packWithdrawals,
  parseIpv4,
  parsePrefixText,
  prefix4ToString,
  type CodecContext,
  type Message,
  type PathAttributes,
} from '../../bgp/index.js';
import { until } from './netns.js';

/** 4-octet AS on both sides (buildCapabilities offers it), no ADD-PATH, 4096-octet messages. */
export const RAW_CTX: CodecContext = { as4: true, extendedMessage: false, addPathRx: new Set(), addPathTx: new Set() };

type CapabilityOptions = Parameters<typeof buildCapabilities>[0];

export interface RawSession {
  /** the speaker's address and port */
  readonly host: string;
  readonly port: number;
  /** our address (the speaker knows peers by it) */
  readonly localAddress: string;
  readonly asn: number;
  readonly routerId: string;
  /** familyKey values; default IPv4 and IPv6 unicast */
  readonly families?: number[];
  readonly gracefulRestart?: CapabilityOptions['gracefulRestart'];
  readonly longLivedGracefulRestart?: CapabilityOptions['longLivedGracefulRestart'];
}

export class RawPeer {
  readonly messages: Message[] = [];
  /** IPv4 prefix → attributes of the speaker's last announcement to us, deleted on its withdrawal */
  readonly rib = new Map<string, PathAttributes>();
  closed = false;
  private readonly framer = new Framer();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.framer.push(d);
      for (let b = this.framer.next(); b !== null; b = this.framer.next()) {
        const m = decodeMessage(b, RAW_CTX);
        this.messages.push(m);
        if (m.type !== 'UPDATE') continue;
        for (const p of m.withdrawn.prefixes) this.rib.delete(prefix4ToString(p as number));
        for (const p of m.nlri.prefixes) this.rib.set(prefix4ToString(p as number), m.attributes);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  /** Connect, exchange OPENs and send the KEEPALIVE that takes the speaker to Established. */
  static async session(o: RawSession): Promise<RawPeer> {
    const s = net.connect({ host: o.host, port: o.port, localAddress: o.localAddress });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    const r = new RawPeer(s);
    const capabilities = buildCapabilities({
      localAs: o.asn,
      families: o.families ?? [0x101, 0x201],
      ...(o.gracefulRestart ? { gracefulRestart: o.gracefulRestart } : {}),
      ...(o.longLivedGracefulRestart ? { longLivedGracefulRestart: o.longLivedGracefulRestart } : {}),
    });
    s.write(encodeMessage({ type: 'OPEN', version: 4, myAs: o.asn, holdTime: 90, bgpId: parseIpv4(o.routerId), capabilities }));
    await until(() => r.messages.some((m) => m.type === 'OPEN'), 'the speaker\'s OPEN', 5000);
    s.write(encodeMessage({ type: 'KEEPALIVE' }));
    return r;
  }

  /** Announce IPv4 prefixes with these attributes (packed as the codec packs them). */
  announce(prefixes: string[], attrs: PathAttributes): void {
    const list = { afi: 1 as const, safi: 1, prefixes: prefixes.map((p) => parsePrefixText(p) as number), pathIds: null };
    for (const b of packUpdates(attrs, list, RAW_CTX)) this.socket.write(b);
  }

  withdraw(...prefixes: string[]): void {
    const list = { afi: 1 as const, safi: 1, prefixes: prefixes.map((p) => parsePrefixText(p) as number), pathIds: null };
    for (const b of packWithdrawals(list, RAW_CTX)) this.socket.write(b);
  }

  /** End-of-RIB (RFC 4724 §2) for each AFI given, unicast; default IPv4 only. */
  endOfRib(...afis: number[]): void {
    for (const afi of afis.length > 0 ? afis : [1]) this.socket.write(endOfRib(afi, 1, RAW_CTX));
  }

  notify(code: number, subcode: number): void {
    this.socket.end(encodeMessage({ type: 'NOTIFICATION', code, subcode, data: Buffer.alloc(0) }));
  }

  /** TCP reset: what a kill -9 of the peer looks like from the speaker */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  /** The speaker's OPEN. */
  open(): Extract<Message, { type: 'OPEN' }> | undefined {
    return this.messages.find((m): m is Extract<Message, { type: 'OPEN' }> => m.type === 'OPEN');
  }
}
