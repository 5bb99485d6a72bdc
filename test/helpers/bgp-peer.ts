// A tiny scripted BGP talker for capturing what real daemons send. It
// connects to a peer, sends our OPEN (built with our encoder), answers OPEN
// with KEEPALIVE and keeps the session up with keepalives, and reports every
// message it receives, whole and as hex, as one JSON line on stdout:
//   {"event":"message","type":"UPDATE","hex":"ffff..."}
//   {"event":"end-of-rib","afi":2,"safi":1}        after the message itself
//   {"event":"decode-error","reason":"..."}         our decoder refused it (capture goes on)
//   {"event":"closed","reason":"..."}               then it exits
// It must run inside the peer's network namespace, so it is an entry point:
//   ip netns exec NS node dist/test/helpers/bgp-peer.js '<json PeerScript>'
// It decodes with our own codec only to follow the session (type, End-of-RIB);
// the bytes it reports are exactly what came off the socket.
import { connect, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import {
  DEFAULT_CONTEXT,
  Framer,
  MESSAGE_TYPE_NAMES,
  decodeMessage,
  encodeMessage,
  familyKey,
  isEndOfRib,
  parseIpv4,
  type Capability,
  type CodecContext,
  type OpenMessage,
} from '../../bgp/index.js';

export interface PeerScript {
  /** daemon address and port to connect to */
  readonly host: string;
  readonly port?: number;
  readonly localAddress?: string;
  readonly asn: number;
  readonly routerId: string;
  readonly holdTime?: number;
  /** capabilities to send; default: IPv4+IPv6 unicast, route refresh, 4-octet AS, GR helper */
  readonly capabilities?: readonly Capability[];
  /** give up after this long (ms) */
  readonly timeoutMs?: number;
}

export function defaultCapabilities(asn: number): Capability[] {
  return [
    { code: 1, name: 'multiprotocol', afi: 1, safi: 1 },
    { code: 1, name: 'multiprotocol', afi: 2, safi: 1 },
    { code: 2, name: 'route-refresh' },
    { code: 65, name: '4-octet-as', asn },
    {
      code: 64,
      name: 'graceful-restart',
      restarting: false,
      notification: false,
      restartTime: 120,
      families: [
        { afi: 1, safi: 1, forwardingState: false },
        { afi: 2, safi: 1, forwardingState: false },
      ],
    },
  ];
}

export type PeerEvent =
  | { event: 'connected' }
  | { event: 'message'; type: string; hex: string }
  | { event: 'established' }
  | { event: 'end-of-rib'; afi: number; safi: number }
  | { event: 'decode-error'; reason: string }
  | { event: 'closed'; reason: string };

/** Run one session; `emit` sees every event; resolves when the session is over. */
export function runPeer(script: PeerScript, emit: (e: PeerEvent) => void): Promise<void> {
  return new Promise((resolve) => {
    const open: OpenMessage = {
      type: 'OPEN',
      version: 4,
      myAs: script.asn > 0xffff ? 23456 : script.asn,
      holdTime: script.holdTime ?? 90,
      bgpId: parseIpv4(script.routerId),
      capabilities: script.capabilities ?? defaultCapabilities(script.asn),
    };
    const framer = new Framer();
    let ctx: CodecContext = DEFAULT_CONTEXT;
    let keepalive: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (reason: string, sock?: Socket): void => {
      if (done) return;
      done = true;
      clearInterval(keepalive);
      clearTimeout(timer);
      sock?.destroy();
      emit({ event: 'closed', reason });
      resolve();
    };
    const timer = setTimeout(() => finish('timeout', sock), script.timeoutMs ?? 30_000);
    const sock = connect({ host: script.host, port: script.port ?? 179, ...(script.localAddress ? { localAddress: script.localAddress } : {}) });
    sock.on('connect', () => {
      emit({ event: 'connected' });
      sock.write(encodeMessage(open));
    });
    sock.on('data', (chunk: Buffer) => {
      let msgs: Buffer[];
      try {
        msgs = framer.feed(chunk);
      } catch (e) {
        finish(`framing error: ${(e as Error).message}`, sock);
        return;
      }
      for (const raw of msgs) {
        const type = MESSAGE_TYPE_NAMES[raw[18] as number] ?? 'unknown';
        emit({ event: 'message', type, hex: raw.toString('hex') });
        let msg;
        try {
          msg = decodeMessage(raw, ctx);
        } catch (e) {
          // keep capturing: the bytes were reported; the test judges them
          emit({ event: 'decode-error', reason: (e as Error).message });
          continue;
        }
        if (msg.type === 'OPEN') {
          // RFC 6793 / RFC 8654: what both ends support sets how later messages are read.
          const theirs = new Set(msg.capabilities.map((c) => c.code));
          const ours = new Set(open.capabilities.map((c) => c.code));
          // RFC 7911 §4: path identifiers come in for a family we offered to receive and they offered to send.
          const addPathRx = new Set<number>();
          for (const mine of open.capabilities) {
            if (mine.name !== 'add-path') continue;
            for (const f of mine.families) {
              if (!(f.sendReceive & 1)) continue;
              const sends = msg.capabilities.some(
                (c) => c.name === 'add-path' && c.families.some((g) => g.afi === f.afi && g.safi === f.safi && g.sendReceive & 2),
              );
              if (sends) addPathRx.add(familyKey(f.afi, f.safi));
            }
          }
          ctx = { ...ctx, as4: theirs.has(65) && ours.has(65), extendedMessage: theirs.has(6) && ours.has(6), addPathRx };
          framer.extendedMessage = ctx.extendedMessage;
          sock.write(encodeMessage({ type: 'KEEPALIVE' }));
          const hold = Math.min(open.holdTime, msg.holdTime);
          if (hold > 0) keepalive = setInterval(() => sock.write(encodeMessage({ type: 'KEEPALIVE' })), (hold * 1000) / 3);
        } else if (msg.type === 'KEEPALIVE') {
          emit({ event: 'established' });
        } else if (msg.type === 'UPDATE') {
          const eor = isEndOfRib(msg);
          if (eor) emit({ event: 'end-of-rib', ...eor });
        } else if (msg.type === 'NOTIFICATION') {
          finish('notification received', sock);
          return;
        }
      }
    });
    sock.on('error', (e) => finish(`socket error: ${e.message}`, sock));
    sock.on('close', () => finish('connection closed', sock));
  });
}

// Entry point: ip netns exec NS node dist/test/helpers/bgp-peer.js '<json>'
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const script = JSON.parse(process.argv[2] ?? '{}') as PeerScript;
  const seen = new Set<string>();
  void runPeer(script, (e) => {
    // 'established' is reported once, on the first KEEPALIVE
    if (e.event === 'established') {
      if (seen.has('established')) return;
      seen.add('established');
    }
    process.stdout.write(`${JSON.stringify(e)}\n`);
  }).then(() => process.exit(0));
}
