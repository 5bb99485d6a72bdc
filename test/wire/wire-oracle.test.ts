// An independent decoder agrees with our encoder: messages we encode are
// written into a pcap (one TCP segment to port 179 per message) and read back
// with tshark; the fields Wireshark's BGP dissector reports must equal the
// fields of the value we encoded. The pcap is written here by hand (global
// header, then per packet Ethernet/IPv4/TCP headers): no dependency needed.
import t from 'tap';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodeMessage,
  ipv4ToString,
  prefix4,
  prefix4ToString,
  prefix6FromBytes,
  shutdownData,
  type Capability,
  type Message,
  type NotificationMessage,
  type OpenMessage,
  type UpdateMessage,
} from '../../bgp/index.js';
import { requires } from '../helpers/env.js';

/** A pcap file (libpcap 2.4, Ethernet link type) with each payload in its own TCP segment 10.0.0.1:40000 -> 10.0.0.2:179. */
export function pcapOf(payloads: readonly Buffer[]): Buffer {
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0); // magic, microsecond timestamps
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(262144, 16); // snaplen
  global.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const parts = [global];
  let seq = 1000;
  payloads.forEach((p, i) => {
    const frame = Buffer.alloc(14 + 20 + 20 + p.length);
    // Ethernet: dst, src, EtherType IPv4
    frame.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 0);
    frame.writeUInt16BE(0x0800, 12);
    // IPv4: version 4, IHL 5, total length, DF, TTL 64, TCP, 10.0.0.1 -> 10.0.0.2 (checksum left 0: tshark does not check it by default)
    const ip = 14;
    frame[ip] = 0x45;
    frame.writeUInt16BE(20 + 20 + p.length, ip + 2);
    frame.writeUInt16BE(i + 1, ip + 4);
    frame.writeUInt16BE(0x4000, ip + 6);
    frame[ip + 8] = 64;
    frame[ip + 9] = 6;
    frame.set([10, 0, 0, 1, 10, 0, 0, 2], ip + 12);
    // TCP: ports, sequence number advancing by the payload, data offset 5, PSH+ACK
    const tcp = ip + 20;
    frame.writeUInt16BE(40000, tcp);
    frame.writeUInt16BE(179, tcp + 2);
    frame.writeUInt32BE(seq, tcp + 4);
    frame.writeUInt32BE(1, tcp + 8);
    frame[tcp + 12] = 5 << 4;
    frame[tcp + 13] = 0x18;
    frame.writeUInt16BE(65535, tcp + 14);
    p.copy(frame, tcp + 20);
    seq += p.length;
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000 + i, 0);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    parts.push(rec, frame);
  });
  return Buffer.concat(parts);
}

type Layers = Record<string, string[]>;

/** Run tshark on the messages and return, per packet, the requested fields. */
function dissect(messages: readonly Buffer[], fields: readonly string[]): Layers[] {
  const dir = mkdtempSync(join(tmpdir(), 'skein-oracle-'));
  try {
    const file = join(dir, 'bgp.pcap');
    writeFileSync(file, pcapOf(messages));
    const out = execFileSync('tshark', ['-o', 'bgp.asn_len:4', '-r', file, '-T', 'json', '-e', 'frame.number', ...fields.flatMap((f) => ['-e', f])], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return (JSON.parse(out) as { _source: { layers: Layers } }[]).map((p) => p._source.layers);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const num = (v: string | undefined): number => Number(v);

// ---------------------------------------------------------------- the messages

const OPEN_FULL: OpenMessage = {
  type: 'OPEN',
  version: 4,
  myAs: 23456,
  holdTime: 90,
  bgpId: 0xc0000201,
  capabilities: [
    { code: 1, name: 'multiprotocol', afi: 1, safi: 1 },
    { code: 1, name: 'multiprotocol', afi: 2, safi: 1 },
    { code: 2, name: 'route-refresh' },
    { code: 5, name: 'extended-next-hop', entries: [{ afi: 1, safi: 1, nextHopAfi: 2 }] },
    { code: 6, name: 'extended-message' },
    {
      code: 64,
      name: 'graceful-restart',
      restarting: true,
      notification: true,
      restartTime: 120,
      families: [{ afi: 1, safi: 1, forwardingState: true }],
    },
    { code: 65, name: '4-octet-as', asn: 4200000000 },
    // (no ADD-PATH here: Wireshark would then read the UPDATEs of this stream with path identifiers)
    { code: 70, name: 'enhanced-route-refresh' },
    { code: 73, name: 'fqdn', hostname: 'host-a', domainName: 'lab.example' },
  ],
};

const v4 = (text: string): number => {
  const [a, l] = text.split('/');
  const o = (a as string).split('.').map(Number);
  return prefix4((((o[0] as number) << 24) | ((o[1] as number) << 16) | ((o[2] as number) << 8) | (o[3] as number)) >>> 0, Number(l));
};

const UPDATE_V4: UpdateMessage = {
  type: 'UPDATE',
  withdrawn: { afi: 1, safi: 1, prefixes: [v4('10.9.0.0/16')], pathIds: null },
  attributes: {
    origin: 0,
    asPath: [{ type: 2, asns: [65001, 4200000000, 65002] }],
    nextHop: '192.0.2.1',
    med: 50,
    localPref: 200,
    communities: [65000 * 65536 + 100, 65000 * 65536 + 200],
    largeCommunities: [[65000, 1, 2]],
  },
  nlri: { afi: 1, safi: 1, prefixes: [v4('10.1.0.0/24'), v4('10.2.3.128/25'), v4('100.64.0.0/10')], pathIds: null },
};

const UPDATE_V6: UpdateMessage = {
  type: 'UPDATE',
  withdrawn: { afi: 1, safi: 1, prefixes: [], pathIds: null },
  attributes: { origin: 2, asPath: [{ type: 2, asns: [65001] }] },
  nlri: { afi: 1, safi: 1, prefixes: [], pathIds: null },
  mpReach: {
    afi: 2,
    safi: 1,
    nextHops: ['fd00::1', 'fe80::1'],
    nlri: { afi: 2, safi: 1, prefixes: ['fd00:1::/64', 'fd00:2:0:8000::/65', '2001:db8::/32'], pathIds: null },
  },
};

const NOTIFY: NotificationMessage = { type: 'NOTIFICATION', code: 6, subcode: 2, data: shutdownData('going to lunch'), message: 'going to lunch' };

t.test('tshark decodes our OPEN, UPDATE (IPv4 and IPv6 MP_REACH), NOTIFICATION and ROUTE-REFRESH', async (t) => {
  if (!requires(t as never, { commands: ['tshark'] })) return;
  const msgs: Message[] = [OPEN_FULL, UPDATE_V4, UPDATE_V6, NOTIFY, { type: 'ROUTE-REFRESH', afi: 2, safi: 1, subtype: 1 }, { type: 'KEEPALIVE' }];
  const layers = dissect(
    msgs.map((m) => encodeMessage(m)),
    [
      'bgp.type',
      'bgp.length',
      'bgp.open.version',
      'bgp.open.myas',
      'bgp.open.holdtime',
      'bgp.open.identifier',
      'bgp.cap.type',
      'bgp.cap.mp.afi',
      'bgp.cap.mp.safi',
      'bgp.cap.4as',
      'bgp.cap.gr.timers.restart_time',
      'bgp.cap.gr.timers.restart_flag',
      'bgp.cap.gr.timers.notification_flag',
      'bgp.cap.ap.sendreceive',
      'bgp.cap.enh.nhafi',
      'bgp.cap.orf.fqdn.hostname',
      'bgp.cap.orf.fqdn.domain_name',
      'bgp.withdrawn_prefix',
      'bgp.prefix_length',
      'bgp.nlri_prefix',
      'bgp.update.path_attribute.origin',
      'bgp.update.path_attribute.as_path_segment.as4',
      'bgp.update.path_attribute.next_hop',
      'bgp.update.path_attribute.multi_exit_disc',
      'bgp.update.path_attribute.local_pref',
      'bgp.update.path_attribute.community_as',
      'bgp.update.path_attribute.community_value',
      'bgp.large_communities.ga',
      'bgp.large_communities.ldp1',
      'bgp.large_communities.ldp2',
      'bgp.update.path_attribute.mp_reach_nlri.afi',
      'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6',
      'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local',
      'bgp.mp_reach_nlri_ipv6_prefix',
      'bgp.notify.major_error',
      'bgp.notify.minor_error_cease',
      'bgp.notify.communication',
      'bgp.route_refresh.afi',
      'bgp.route_refresh.subtype',
      'bgp.route_refresh.safi',
    ],
  );
  t.equal(layers.length, msgs.length, 'one packet per message');
  const [open, u4, u6, notify, rr, ka] = layers as [Layers, Layers, Layers, Layers, Layers, Layers];

  t.same(open['bgp.type'], ['1']);
  t.same([open['bgp.open.version'], open['bgp.open.myas'], open['bgp.open.holdtime'], open['bgp.open.identifier']], [['4'], ['23456'], ['90'], ['192.0.2.1']]);
  t.same(open['bgp.cap.type']?.map(Number), OPEN_FULL.capabilities.map((c: Capability) => c.code as number), 'capability codes in order');
  t.same(open['bgp.cap.mp.afi'], ['1', '2']);
  t.same(open['bgp.cap.4as'], ['4200000000']);
  t.same(open['bgp.cap.gr.timers.restart_time'], ['120']);
  t.same([open['bgp.cap.gr.timers.restart_flag'], open['bgp.cap.gr.timers.notification_flag']].map((v) => v?.[0] === '1' || v?.[0] === 'True'), [true, true]);
  t.same(open['bgp.cap.enh.nhafi'], ['2']);
  t.same([open['bgp.cap.orf.fqdn.hostname'], open['bgp.cap.orf.fqdn.domain_name']], [['host-a'], ['lab.example']]);

  t.same(u4['bgp.type'], ['2']);
  t.same(u4['bgp.withdrawn_prefix'], ['10.9.0.0']);
  t.same(u4['bgp.nlri_prefix'], (UPDATE_V4.nlri.prefixes as number[]).map((p) => prefix4ToString(p).split('/')[0]));
  t.same(u4['bgp.prefix_length']?.map(Number), [16, 24, 25, 10], 'prefix lengths, withdrawn then NLRI');
  t.same(u4['bgp.update.path_attribute.origin'], ['0']);
  t.same(u4['bgp.update.path_attribute.as_path_segment.as4'], ['65001', '4200000000', '65002']);
  t.same(u4['bgp.update.path_attribute.next_hop'], ['192.0.2.1']);
  t.same([u4['bgp.update.path_attribute.multi_exit_disc'], u4['bgp.update.path_attribute.local_pref']], [['50'], ['200']]);
  t.same(u4['bgp.update.path_attribute.community_as'], ['65000', '65000']);
  t.same(u4['bgp.update.path_attribute.community_value'], ['100', '200']);
  t.same(
    [u4['bgp.large_communities.ga'], u4['bgp.large_communities.ldp1'], u4['bgp.large_communities.ldp2']],
    [['65000'], ['1'], ['2']],
  );

  t.same(u6['bgp.update.path_attribute.mp_reach_nlri.afi'], ['2']);
  t.same(u6['bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6'], ['fd00::1']);
  t.same(u6['bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local'], ['fe80::1']);
  t.same(
    u6['bgp.mp_reach_nlri_ipv6_prefix'],
    ['fd00:1::', 'fd00:2:0:8000::', '2001:db8::'],
  );
  t.same(u6['bgp.update.path_attribute.origin'], ['2']);

  t.same([notify['bgp.notify.major_error'], notify['bgp.notify.minor_error_cease']], [['6'], ['2']]);
  t.same(notify['bgp.notify.communication'], ['going to lunch']);
  t.same([rr['bgp.route_refresh.afi'], rr['bgp.route_refresh.subtype'], rr['bgp.route_refresh.safi']], [['2'], ['1'], ['1']]);
  t.same([ka['bgp.type'], ka['bgp.length']], [['4'], ['19']]);

  // ADD-PATH and a 2-octet-AS OPEN in a stream of their own (Wireshark applies ADD-PATH to the stream's UPDATEs).
  const [ap] = dissect(
    [encodeMessage({ ...OPEN_FULL, myAs: 65001, capabilities: [{ code: 69, name: 'add-path', families: [{ afi: 1, safi: 1, sendReceive: 3 }, { afi: 2, safi: 1, sendReceive: 1 }] }] })],
    ['bgp.open.myas', 'bgp.cap.ap.afi', 'bgp.cap.ap.safi', 'bgp.cap.ap.sendreceive'],
  ) as [Layers];
  t.same([ap['bgp.open.myas'], ap['bgp.cap.ap.afi'], ap['bgp.cap.ap.safi'], ap['bgp.cap.ap.sendreceive']], [['65001'], ['1', '2'], ['1', '1'], ['3', '1']]);
});

// ---------------------------------------------------------------- generated sets

const octet = fc.integer({ min: 0, max: 255 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const rec: typeof fc.record = ((m: never, c?: object) => fc.record(m, { ...c, noNullPrototype: true } as never)) as never;
// Lengths from 8: Wireshark guesses ADD-PATH from the NLRI bytes, and very short prefixes can fool its guess.
const prefix4Arb = fc.tuple(u32, fc.integer({ min: 8, max: 32 })).map(([a, l]) => prefix4(a, l));
// RFC 1997 §3: 0x0000xxxx and 0xffffxxxx are reserved/well-known; Wireshark shows those under other fields.
const communityArb = fc.tuple(fc.integer({ min: 1, max: 65534 }), fc.integer({ min: 0, max: 65535 })).map(([a, v]) => a * 65536 + v);

const updateArb: fc.Arbitrary<UpdateMessage> = rec({
  nlri: fc.uniqueArray(prefix4Arb, { minLength: 1, maxLength: 12 }),
  withdrawn: fc.uniqueArray(prefix4Arb, { maxLength: 4 }),
  origin: fc.constantFrom(0 as const, 1 as const, 2 as const),
  asns: fc.array(fc.integer({ min: 1, max: 0xffffffff }), { minLength: 1, maxLength: 6 }),
  nextHop: fc.tuple(octet, octet, octet, octet).map((o) => o.join('.')),
  med: u32,
  localPref: u32,
  communities: fc.array(communityArb, { minLength: 1, maxLength: 5 }),
}).map((g) => ({
  type: 'UPDATE' as const,
  withdrawn: { afi: 1 as const, safi: 1, prefixes: g.withdrawn, pathIds: null },
  attributes: {
    origin: g.origin,
    asPath: [{ type: 2 as const, asns: g.asns }],
    nextHop: g.nextHop,
    med: g.med,
    localPref: g.localPref,
    communities: g.communities,
  },
  nlri: { afi: 1 as const, safi: 1, prefixes: g.nlri, pathIds: null },
}));

const openArb: fc.Arbitrary<OpenMessage> = rec({
  myAs: fc.integer({ min: 1, max: 0xffff }),
  holdTime: fc.constantFrom(0, 3, 90, 180, 65535),
  bgpId: fc.integer({ min: 1, max: 0xffffffff }),
  families: fc.uniqueArray(rec({ afi: fc.constantFrom(1, 2), safi: fc.constantFrom(1, 2, 4, 128) }), {
    maxLength: 6,
    selector: (f) => `${f.afi}/${f.safi}`,
  }),
  asn: u32,
  restartTime: fc.integer({ min: 0, max: 4095 }),
}).map((g) => ({
  type: 'OPEN' as const,
  version: 4,
  myAs: g.myAs,
  holdTime: g.holdTime,
  bgpId: g.bgpId,
  capabilities: [
    ...g.families.map((f) => ({ code: 1 as const, name: 'multiprotocol' as const, ...f })),
    { code: 65 as const, name: '4-octet-as' as const, asn: g.asn },
    { code: 64 as const, name: 'graceful-restart' as const, restarting: false, notification: false, restartTime: g.restartTime, families: [] },
  ],
}));

// IPv6 UPDATEs: MP_REACH_NLRI with a global (and sometimes a link-local) next hop (RFC 2545 §3)
const update6Arb: fc.Arbitrary<UpdateMessage> = rec({
  nlri: fc.uniqueArray(
    fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 16, max: 128 })).map(([b, l]) => prefix6FromBytes(b, l)),
    { minLength: 1, maxLength: 8 },
  ),
  nh: fc.integer({ min: 1, max: 0xffff }),
  linkLocal: fc.boolean(),
  asns: fc.array(fc.integer({ min: 1, max: 0xffffffff }), { minLength: 1, maxLength: 4 }),
}).map((g) => ({
  type: 'UPDATE' as const,
  withdrawn: { afi: 1 as const, safi: 1, prefixes: [], pathIds: null },
  attributes: { origin: 0 as const, asPath: [{ type: 2 as const, asns: g.asns }] },
  nlri: { afi: 1 as const, safi: 1, prefixes: [], pathIds: null },
  mpReach: {
    afi: 2,
    safi: 1,
    nextHops: g.linkLocal ? [`fd00::${g.nh.toString(16)}`, `fe80::${g.nh.toString(16)}`] : [`fd00::${g.nh.toString(16)}`],
    nlri: { afi: 2 as const, safi: 1, prefixes: g.nlri, pathIds: null },
  },
}));

t.test('tshark agrees on generated IPv6 UPDATEs (MP_REACH_NLRI)', async (t) => {
  if (!requires(t as never, { commands: ['tshark'] })) return;
  const updates = fc.sample(update6Arb, { numRuns: 40, seed: 4760 });
  const layers = dissect(
    updates.map((m) => encodeMessage(m)),
    [
      'bgp.update.path_attribute.mp_reach_nlri.afi',
      'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6',
      'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local',
      'bgp.mp_reach_nlri_ipv6_prefix',
      'bgp.prefix_length',
      'bgp.update.path_attribute.as_path_segment.as4',
    ],
  );
  t.equal(layers.length, updates.length);
  updates.forEach((u, k) => {
    const l = layers[k] as Layers;
    const r = u.mpReach as NonNullable<UpdateMessage['mpReach']>;
    const prefixes = r.nlri.prefixes as string[];
    t.same(
      {
        afi: l['bgp.update.path_attribute.mp_reach_nlri.afi'],
        nextHop: l['bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6'],
        linkLocal: l['bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local'],
        prefixes: l['bgp.mp_reach_nlri_ipv6_prefix'],
        lengths: (l['bgp.prefix_length'] ?? []).map(Number),
        asns: (l['bgp.update.path_attribute.as_path_segment.as4'] ?? []).map(Number),
      },
      {
        afi: ['2'],
        nextHop: [r.nextHops[0]],
        linkLocal: r.nextHops[1] === undefined ? undefined : [r.nextHops[1]],
        prefixes: prefixes.map((p) => p.split('/')[0]),
        lengths: prefixes.map((p) => Number(p.split('/')[1])),
        asns: u.attributes.asPath?.[0]?.asns,
      },
      `IPv6 UPDATE ${k}`,
    );
  });
});

// NOTIFICATIONs for the codes Wireshark names, with arbitrary data (RFC 4271 §4.5); Cease 2/4 carry RFC 9003 text.
const MINOR_FIELD: Readonly<Record<number, string>> = {
  1: 'bgp.notify.minor_error',
  2: 'bgp.notify.minor_error_open',
  3: 'bgp.notify.minor_error_update',
  4: 'bgp.notify.minor_error_expired',
  5: 'bgp.notify.minor_error_state',
  6: 'bgp.notify.minor_error_cease',
};
const notificationArb: fc.Arbitrary<NotificationMessage> = fc.oneof(
  rec({
    code: fc.integer({ min: 1, max: 6 }),
    subcode: fc.integer({ min: 0, max: 8 }),
    data: fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => Buffer.from(a)),
  })
    // Cease 2/4 are generated below with text; OPEN / Unsupported Capability data Wireshark parses as capabilities
    .filter((n) => !(n.code === 6 && (n.subcode === 2 || n.subcode === 4)) && !(n.code === 2 && n.subcode === 7))
    .map((n) => ({ type: 'NOTIFICATION' as const, ...n })),
  rec({ subcode: fc.constantFrom(2, 4), text: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 60 }) }).map((g) => ({
    type: 'NOTIFICATION' as const,
    code: 6,
    subcode: g.subcode,
    data: shutdownData(g.text),
    message: g.text,
  })),
);

t.test('tshark agrees on generated NOTIFICATIONs', async (t) => {
  if (!requires(t as never, { commands: ['tshark'] })) return;
  const ns = fc.sample(notificationArb, { numRuns: 60, seed: 9003 });
  const layers = dissect(
    ns.map((m) => encodeMessage(m)),
    ['bgp.notify.major_error', ...Object.values(MINOR_FIELD), 'bgp.notify.minor_data', 'bgp.notify.communication'],
  );
  ns.forEach((n, k) => {
    const l = layers[k] as Layers;
    const theirs = {
      code: l['bgp.notify.major_error'],
      subcode: l[MINOR_FIELD[n.code] as string],
      data: n.message === undefined ? l['bgp.notify.minor_data']?.[0]?.replace(/:/g, '') : undefined,
      message: l['bgp.notify.communication'],
    };
    const ours = {
      code: [String(n.code)],
      subcode: [String(n.subcode)],
      data: n.message === undefined ? n.data.toString('hex') : undefined,
      message: n.message === undefined ? undefined : [n.message],
    };
    t.same(theirs, ours, `NOTIFICATION ${k}: ${n.code}/${n.subcode}`);
  });
});

t.test('tshark agrees on a generated set of OPENs and UPDATEs', async (t) => {
  if (!requires(t as never, { commands: ['tshark'] })) return;
  const opens = fc.sample(openArb, { numRuns: 40, seed: 4271 });
  const updates = fc.sample(updateArb, { numRuns: 60, seed: 7606 });
  const layers = dissect(
    [...opens, ...updates].map((m) => encodeMessage(m)),
    [
      'bgp.open.myas',
      'bgp.open.holdtime',
      'bgp.open.identifier',
      'bgp.cap.mp.afi',
      'bgp.cap.mp.safi',
      'bgp.cap.4as',
      'bgp.cap.gr.timers.restart_time',
      'bgp.withdrawn_prefix',
      'bgp.nlri_prefix',
      'bgp.prefix_length',
      'bgp.update.path_attribute.origin',
      'bgp.update.path_attribute.as_path_segment.as4',
      'bgp.update.path_attribute.next_hop',
      'bgp.update.path_attribute.multi_exit_disc',
      'bgp.update.path_attribute.local_pref',
      'bgp.update.path_attribute.community_as',
      'bgp.update.path_attribute.community_value',
    ],
  );
  t.equal(layers.length, opens.length + updates.length);
  let agreed = 0;
  opens.forEach((o, i) => {
    const l = layers[i] as Layers;
    const mp = o.capabilities.filter((c) => c.name === 'multiprotocol') as { afi: number; safi: number }[];
    const as4 = o.capabilities.find((c) => c.name === '4-octet-as') as { asn: number };
    const gr = o.capabilities.find((c) => c.name === 'graceful-restart') as { restartTime: number };
    const ours = [o.myAs, o.holdTime, ipv4ToString(o.bgpId), mp.map((m) => m.afi), mp.map((m) => m.safi), as4.asn, gr.restartTime];
    const theirs = [
      num(l['bgp.open.myas']?.[0]),
      num(l['bgp.open.holdtime']?.[0]),
      l['bgp.open.identifier']?.[0],
      (l['bgp.cap.mp.afi'] ?? []).map(Number),
      (l['bgp.cap.mp.safi'] ?? []).map(Number),
      num(l['bgp.cap.4as']?.[0]),
      num(l['bgp.cap.gr.timers.restart_time']?.[0]),
    ];
    t.same(theirs, ours, `OPEN ${i}`);
    agreed++;
  });
  updates.forEach((u, k) => {
    const l = layers[opens.length + k] as Layers;
    const a = u.attributes;
    const ours = {
      withdrawn: (u.withdrawn.prefixes as number[]).map((p) => prefix4ToString(p).split('/')[0]),
      nlri: (u.nlri.prefixes as number[]).map((p) => prefix4ToString(p).split('/')[0]),
      lengths: [...(u.withdrawn.prefixes as number[]), ...(u.nlri.prefixes as number[])].map((p) => p % 64),
      origin: a.origin,
      asns: a.asPath?.[0]?.asns,
      nextHop: a.nextHop,
      med: a.med,
      localPref: a.localPref,
      communityAs: a.communities?.map((c) => Math.floor(c / 65536)),
      communityValue: a.communities?.map((c) => c % 65536),
    };
    const theirs = {
      withdrawn: l['bgp.withdrawn_prefix'] ?? [],
      nlri: l['bgp.nlri_prefix'] ?? [],
      lengths: (l['bgp.prefix_length'] ?? []).map(Number),
      origin: num(l['bgp.update.path_attribute.origin']?.[0]),
      asns: (l['bgp.update.path_attribute.as_path_segment.as4'] ?? []).map(Number),
      nextHop: l['bgp.update.path_attribute.next_hop']?.[0],
      med: num(l['bgp.update.path_attribute.multi_exit_disc']?.[0]),
      localPref: num(l['bgp.update.path_attribute.local_pref']?.[0]),
      communityAs: (l['bgp.update.path_attribute.community_as'] ?? []).map(Number),
      communityValue: (l['bgp.update.path_attribute.community_value'] ?? []).map(Number),
    };
    t.same(theirs, ours, `UPDATE ${k}`);
    agreed++;
  });
  t.equal(agreed, opens.length + updates.length);
});
