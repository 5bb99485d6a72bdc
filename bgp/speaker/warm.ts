// A warm-up of the route path before the first session: a private RibCore with two iBGP peers (one a route
// reflector client sending, the other receiving) runs a few thousand IPv4 /32s through what a table transfer runs —
// UPDATE bytes framed and decoded, imported, exported to the other peer's update group, packed into UPDATEs, then
// withdrawn the same way — and is dropped.
//
// Why: V8 runs a function as bytecode until it has been called often enough to be compiled with type feedback.
// A speaker's first table arrives in one burst, so without a warm-up the first ~100k prefixes go through the
// unoptimised code: skeind took ~3 µs a prefix at 100k routes against ~1.7 µs at 1M (issue 16; a bare RibCore
// imported its first 100k prefixes at a third of the speed of the next 100k). The warm-up costs a few tens of
// milliseconds of CPU once, at start (SpeakerOptions.warmUp: skeind turns it on for a route reflector), and nothing it made is kept (the feedback it leaves is of the same shapes
// the real sessions use: IPv4 prefix keys, interned attribute sets, 4-octet-AS codec contexts).
import { RibCore } from '../rib/core.js';
import { IPV4_UNICAST } from '../wire/constants.js';
import { Framer } from '../wire/framer.js';
import { decodeMessage } from '../wire/message.js';
import type { CodecContext, PathAttributes, PrefixList, UpdateMessage } from '../wire/types.js';
import { packUpdates, packWithdrawals } from '../wire/update.js';

const CTX: CodecContext = Object.freeze({ as4: true, extendedMessage: false, addPathRx: new Set<number>(), addPathTx: new Set<number>(), external: false });
/** per UPDATE, as a peer packs a 4096-octet message of /32s */
const PER_UPDATE = 800;
/** TEST-NET-free private space far from anything real: the table is private and dropped anyway */
const BASE = 0x0a800000;

/** Run the warm-up: `prefixes` routes in, out and withdrawn, `rounds` times. Returns the prefixes sent out (tests). */
export function warmUp(prefixes = 4096, rounds = 2): number {
  let out = 0;
  for (let r = 0; r < rounds; r++) out += warmRound(prefixes);
  return out;
}

function warmRound(n: number): number {
  const routerId = 0x0a000001;
  const core = new RibCore({ localAs: 64512, routerId, clusterId: routerId, updateGroups: true, maxPaths: 16 });
  const from = core.addPeer({ address: '10.0.0.2', asn: 64512, localAddress: '10.0.0.1', routeReflectorClient: true });
  const to = core.addPeer({ address: '10.0.1.2', asn: 64512, localAddress: '10.0.1.1', routeReflectorClient: true });
  const terms = (peerId: number): Parameters<RibCore['peerUp']>[1] => ({
    peerId, ibgp: true, families: [IPV4_UNICAST], addPathRx: new Set(), addPathTx: new Set(), enhancedRouteRefresh: false,
  });
  core.peerUp(from, terms(0x0a000002));
  core.peerUp(to, terms(0x0a000102));
  core.setBestTracking(false);
  core.finishWalks();
  const group = core.groupIdOf(to) as number;
  let sent = 0;
  const drain = (): void => {
    for (;;) {
      const g = core.nextGroupBatch(group, 2048);
      if (g === null) return;
      const b = g.batch;
      if (b.kind === 'announce') {
        sent += b.prefixes.length;
        packUpdates(b.attrs.attrs, list(b.prefixes as number[]), CTX);
      } else if (b.kind === 'withdraw') packWithdrawals(list(b.prefixes as number[]), CTX);
    }
  };
  const framer = new Framer();
  const feed = (bufs: Buffer[]): void => {
    for (const buf of bufs) framer.push(buf);
    for (let m = framer.next(); m !== null; m = framer.next()) core.applyUpdate(from, decodeMessage(m, CTX) as UpdateMessage);
    drain();
  };
  /** the /32s of one UPDATE's worth, from the s-th on */
  const keysFrom = (s: number): number[] => {
    const keys: number[] = [];
    for (let i = s; i < Math.min(n, s + PER_UPDATE); i++) keys.push((BASE + i) * 64 + 32);
    return keys;
  };
  for (let s = 0, g = 0; s < n; s += PER_UPDATE, g++) {
    const attrs: PathAttributes = {
      origin: 0, asPath: [{ type: 2, asns: [65000 + (g % 4), 65100] }], nextHop: `10.0.0.${11 + (g % 4)}`, localPref: 100,
    };
    feed(packUpdates(attrs, list(keysFrom(s)), CTX));
  }
  for (let s = 0; s < n; s += PER_UPDATE) feed(packWithdrawals(list(keysFrom(s)), CTX));
  core.removePeer(from);
  core.removePeer(to);
  core.finishWalks();
  return sent;
}

function list(prefixes: number[]): PrefixList {
  return { afi: 1, safi: 1, prefixes, pathIds: null };
}
