// Update groups through a real speaker over loopback (no root): a reflector with three clients that share one
// update group (bgp/rib/update-group.ts), one of which did not offer the 4-octet AS capability, so the sender
// encodes the group's UPDATEs once per codec context (RFC 6793: AS_TRANS in AS_PATH, the real path in AS4_PATH for
// that one). Each client gets every route but its own, in its own encoding; an eBGP peer's route with a 4-octet AS
// reaches all three; a client's withdrawal reaches the others and is never sent to the client itself.
import t from 'tap';
import net from 'node:net';
import {
  Framer, buildCapabilities, decodeMessage, encodeMessage, packUpdates, packWithdrawals, parseIpv4, parsePrefixText, prefix4ToString,
  type CodecContext, type Message, type PathAttributes, type Speaker,
} from '../../bgp/index.js';
import { until } from '../helpers/netns.js';
import { loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';

const PORT = 24187;
const addr = loopbackNet();
const AS = 65000;
const FAR_AS = 4200000005;
let rr: Speaker | null = null;
const sockets: net.Socket[] = [];
t.teardown(async () => {
  for (const s of sockets) s.destroy();
  await rr?.stop();
});

/** A minimal client: OPEN with or without the 4-octet AS capability; what the reflector sent, decoded in that context. */
class Client {
  readonly ctx: CodecContext;
  readonly rib = new Map<string, PathAttributes>();
  readonly raw: Buffer[] = [];
  readonly messages: Message[] = [];
  private readonly framer = new Framer();
  constructor(readonly socket: net.Socket, as4: boolean) {
    this.ctx = { as4, extendedMessage: false, addPathRx: new Set(), addPathTx: new Set() };
    socket.on('data', (d: Buffer) => {
      this.framer.push(d);
      for (let b = this.framer.next(); b !== null; b = this.framer.next()) {
        const m = decodeMessage(b, this.ctx);
        this.messages.push(m);
        if (m.type !== 'UPDATE') continue;
        this.raw.push(Buffer.from(b));
        for (const p of m.withdrawn.prefixes) this.rib.delete(prefix4ToString(p as number));
        for (const p of m.nlri.prefixes) this.rib.set(prefix4ToString(p as number), m.attributes);
      }
    });
    socket.on('error', () => {});
  }
  static async open(n: number, asn: number, as4: boolean): Promise<Client> {
    const s = net.connect({ host: addr(1), port: PORT, localAddress: addr(n) });
    sockets.push(s);
    await new Promise<void>((res, rej) => {
      s.once('connect', res);
      s.once('error', rej);
    });
    const c = new Client(s, as4);
    const capabilities = buildCapabilities({ localAs: asn, families: [0x101] }).filter((x) => as4 || x.code !== 65);
    s.write(encodeMessage({ type: 'OPEN', version: 4, myAs: asn > 65535 ? 23456 : asn, holdTime: 90, bgpId: parseIpv4(`10.0.0.${n}`), capabilities }, c.ctx));
    await until(() => c.messages.some((m) => m.type === 'OPEN'), 'the reflector\'s OPEN', 5000);
    s.write(encodeMessage({ type: 'KEEPALIVE' }));
    return c;
  }
  announce(prefixes: string[], attrs: PathAttributes): void {
    for (const b of packUpdates(attrs, { afi: 1, safi: 1, prefixes: prefixes.map((p) => parsePrefixText(p) as number), pathIds: null }, this.ctx)) this.socket.write(b);
  }
  withdraw(...prefixes: string[]): void {
    for (const b of packWithdrawals({ afi: 1, safi: 1, prefixes: prefixes.map((p) => parsePrefixText(p) as number), pathIds: null }, this.ctx)) this.socket.write(b);
  }
}

t.test('clients with different 4-octet AS capability share a group, each gets its own encoding and never its own routes', async (t) => {
  const s = loopbackSpeaker(addr, PORT, 1, AS, [
    ...[2, 3, 4].map((n) => ({ address: addr(n), port: PORT, asn: AS, routeReflectorClient: true, passive: true })),
    { address: addr(5), port: PORT, asn: FAR_AS, passive: true },
  ]);
  rr = s;
  await s.start();
  const c2 = await Client.open(2, AS, true);
  const c3 = await Client.open(3, AS, true);
  const c4 = await Client.open(4, AS, false);
  const far = await Client.open(5, FAR_AS, true);
  await until(() => [2, 3, 4, 5].every((n) => s.peerInfo(addr(n))?.state === 'Established'), 'four sessions', 10_000);
  const gid = (n: number): number | undefined => s.rib.groupOf(s.coreIdOf(addr(n))!)?.id;
  t.equal(gid(2), gid(3), 'clients 2 and 3 in one group');
  t.equal(gid(2), gid(4), 'client 4 (2-octet AS) in the same group: the codec context is the sender\'s matter');
  t.not(gid(5), gid(2), 'the eBGP peer in another');

  c2.announce(['10.2.0.0/24'], { origin: 0, asPath: [], nextHop: addr(2), localPref: 100 });
  far.announce(['10.5.0.0/24'], { origin: 0, asPath: [{ type: 2, asns: [FAR_AS] }], nextHop: addr(5) });
  await until(() => c3.rib.size === 2 && c4.rib.size === 2 && c2.rib.size === 1, 'the routes reflected', 10_000);
  t.same([...c2.rib.keys()], ['10.5.0.0/24'], 'client 2 gets the eBGP route, not its own back');
  for (const c of [c3, c4]) {
    t.same([...c.rib.keys()].sort(), ['10.2.0.0/24', '10.5.0.0/24'], 'clients 3 and 4 get both');
    t.same(c.rib.get('10.5.0.0/24')?.asPath, [{ type: 2, asns: [FAR_AS] }], 'the 4-octet AS path, as the client reads it');
    t.equal(c.rib.get('10.2.0.0/24')?.originatorId, parseIpv4('10.0.0.2') >>> 0, 'ORIGINATOR_ID names client 2 (RFC 4456 §8)');
  }
  // the bytes differ: the 2-octet client's AS_PATH carries AS_TRANS (23456 = 0x5ba0), the others' the real AS
  const hasTrans = (c: Client): boolean => c.raw.some((b) => b.includes(Buffer.from([0x02, 0x01, 0x5b, 0xa0])));
  t.ok(hasTrans(c4), 'client 4 got AS_TRANS in AS_PATH (RFC 6793 §4.2.2)');
  t.notOk(hasTrans(c3), 'client 3 did not');

  const before2 = c2.messages.length;
  c2.withdraw('10.2.0.0/24');
  await until(() => !c3.rib.has('10.2.0.0/24') && !c4.rib.has('10.2.0.0/24'), 'the withdrawal reflected', 10_000);
  far.announce(['10.5.1.0/24'], { origin: 0, asPath: [{ type: 2, asns: [FAR_AS] }], nextHop: addr(5) });
  await until(() => c2.rib.has('10.5.1.0/24'), 'a later route at client 2', 10_000);
  const sentTo2 = c2.messages.slice(before2).filter((m): m is Extract<Message, { type: 'UPDATE' }> => m.type === 'UPDATE');
  t.notOk(sentTo2.some((m) => m.withdrawn.prefixes.length > 0), 'client 2 was sent no withdrawal of its own route (it never had it)');
});
