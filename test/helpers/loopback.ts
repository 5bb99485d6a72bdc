// In-process Speakers over loopback (no root): each test file takes a /24 of 127/8 and its own port, so files
// running at once (or in several checkouts) never collide; speaker n listens on <net>.n.
import { Speaker, type BestEvent, type PeerOptions, type SpeakerOptions } from '../../bgp/index.js';

/** addr(n) = <a /24 of 127/8 picked for this process>.n */
export function loopbackNet(): (n: number) => string {
  const net = `127.${40 + (process.pid % 200)}.${1 + Math.floor(Math.random() * 250)}`;
  return (n: number): string => `${net}.${n}`;
}

/** Speaker n on addr(n):port with short timers (connect retry 1 s, idle hold 1–2 s) and its log silenced. */
export function loopbackSpeaker(addr: (n: number) => string, port: number, n: number, localAsn: number, peers: PeerOptions[], extra: Partial<SpeakerOptions> = {}): Speaker {
  const s = new Speaker({
    localAsn,
    routerId: `10.0.0.${n}`,
    listenAddress: addr(n),
    listenPort: port,
    holdTime: 30,
    connectRetryTime: 1,
    idleHold: { initial: 1, max: 2 },
    peers,
    ...extra,
  });
  s.on('log', () => {});
  return s;
}

/** The FIB-facing view of a speaker's 'best' stream: prefix → event (absent when withdrawn; own routes left out), and every event. */
export function fibView(s: Speaker): { fib: Map<string, BestEvent>; events: BestEvent[] } {
  const fib = new Map<string, BestEvent>();
  const events: BestEvent[] = [];
  s.on('best', (changes: BestEvent[]) => {
    for (const c of changes) {
      events.push(c);
      if (c.attributes === null) fib.delete(c.prefix);
      else if (!c.local) fib.set(c.prefix, c);
    }
  });
  return { fib, events };
}
