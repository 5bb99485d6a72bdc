#!/usr/bin/env node
// Re-create test/data/captures/<daemon>/*.hex: run BIRD 2, FRR bgpd and GoBGP
// each in a network namespace of its own, with the configuration written
// below (also saved beside the captures), and our scripted talker
// (dist/test/helpers/bgp-peer.js) in a second namespace. Every message the
// daemon sends is saved as one hex line per file. Needs root; touches only
// the namespaces it creates. Run: npm run build && node scripts/capture-peers.mjs [--out DIR] [bird|frr|gobgp ...]
// (--out writes DIR/<daemon>/ instead of test/data/captures/<daemon>/: the live test compares a fresh capture).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { Lab, nsExec, nsSpawn, until } = await import(join(root, 'dist/test/helpers/netns.js'));

const DUT = { v4: '10.0.0.2', v6: 'fd00::2', asn: 65002 };
const PEER = { v4: '10.0.0.1', v6: 'fd00::1', asn: 65001 };
const SHUTDOWN_TEXT = 'skein capture: maintenance';

// ------------------------------------------------------------ daemon configurations

const BIRD_CONF = `# BIRD 2 for skein's wire captures: eBGP AS ${DUT.asn} -> ${PEER.asn}, IPv4 + IPv6 on one session
router id ${DUT.v4};
log stderr all;
protocol device {}
protocol static s4 { ipv4; route 10.1.0.0/24 blackhole; route 10.2.0.0/16 blackhole; }
protocol static s6 { ipv6; route fd00:1::/64 blackhole; route fd00:2::/48 blackhole; }
filter out4 {
  bgp_path.prepend(4200000001);
  bgp_community.add((65002, 100));
  bgp_community.add((65002, 101));
  bgp_large_community.add((65002, 1, 2));
  bgp_med = 50;
  accept;
}
filter out6 {
  bgp_community.add((65002, 600));
  accept;
}
protocol bgp peer1 {
  local ${DUT.v4} as ${DUT.asn};
  neighbor ${PEER.v4} as ${PEER.asn};
  passive on;
  hold time 90;
  graceful restart on;
  graceful restart time 120;
  long lived graceful restart on;
  long lived stale time 3600;
  enable extended messages on;
  local role customer;
  ipv4 { import all; export filter out4; add paths on; extended next hop on; };
  ipv6 { import all; export filter out6; add paths tx; next hop address ${DUT.v6}; };
}
`;

const FRR_CONF = `! FRR bgpd for skein's wire captures: eBGP AS ${DUT.asn} -> ${PEER.asn}, IPv4 + IPv6 on one session
frr defaults traditional
hostname dut-frr
domainname lab.example
log stdout
!
route-map SET4 permit 10
 set as-path prepend 4200000001
 set community 65002:200 65002:201
 set large-community 65002:3:4
 set metric 70
exit
route-map SET6 permit 10
 set community 65002:700
exit
!
router bgp ${DUT.asn}
 bgp router-id ${DUT.v4}
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp graceful-restart notification
 bgp long-lived-graceful-restart stale-time 3600
 neighbor ${PEER.v4} remote-as ${PEER.asn}
 neighbor ${PEER.v4} passive
 neighbor ${PEER.v4} timers 30 90
 neighbor ${PEER.v4} local-role customer
 neighbor ${PEER.v4} capability extended-nexthop
 address-family ipv4 unicast
  network 10.3.0.0/24 route-map SET4
  network 10.3.128.0/17 route-map SET4
  neighbor ${PEER.v4} addpath-tx-all-paths
 exit-address-family
 address-family ipv6 unicast
  network fd00:3::/64 route-map SET6
  neighbor ${PEER.v4} activate
  neighbor ${PEER.v4} addpath-tx-all-paths
 exit-address-family
exit
`;

const GOBGP_CONF = `# GoBGP for skein's wire captures: eBGP AS ${DUT.asn} -> ${PEER.asn}, IPv4 + IPv6 on one session
[global.config]
  as = ${DUT.asn}
  router-id = "${DUT.v4}"
  local-address-list = ["${DUT.v4}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "${PEER.v4}"
    peer-as = ${PEER.asn}
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.timers.config]
    hold-time = 90
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
    notification-enabled = true
    long-lived-enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.long-lived-graceful-restart.config]
      enabled = true
      restart-time = 3600
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.long-lived-graceful-restart.config]
      enabled = true
      restart-time = 3600
`;

// Routes GoBGP announces, added over its API before our talker connects.
const GOBGP_ROUTES = [
  ['-a', 'ipv4', '10.4.0.0/24', 'aspath', '4200000001', 'community', '65002:300,65002:301', 'large-community', '65002:5:6', 'med', '90', 'origin', 'egp'],
  ['-a', 'ipv6', 'fd00:4::/64', 'nexthop', DUT.v6, 'community', '65002:800'],
];

const DAEMONS = {
  bird: {
    files: { 'bird.conf': BIRD_CONF },
    start: (ns, dir) => nsSpawn(ns, 'bird', ['-f', '-c', join(dir, 'bird.conf'), '-s', join(dir, 'bird.ctl')]),
    shutdown: (ns, dir) => nsExec(ns, 'birdc', ['-s', join(dir, 'bird.ctl'), 'disable', 'peer1', `"${SHUTDOWN_TEXT}"`]),
  },
  frr: {
    files: { 'bgpd.conf': FRR_CONF },
    start: (ns, dir) =>
      nsSpawn(ns, '/usr/lib/frr/bgpd', ['-f', join(dir, 'bgpd.conf'), '-Z', '-n', '-S', '--vty_socket', dir, '-i', join(dir, 'bgpd.pid'), '-l', DUT.v4, '-P', '0', '--log', 'stdout']),
    shutdown: (ns, dir) =>
      nsExec(ns, 'vtysh', ['--vty_socket', dir, '-d', 'bgpd', '-c', 'configure terminal', '-c', `router bgp ${DUT.asn}`, '-c', `neighbor ${PEER.v4} shutdown message ${SHUTDOWN_TEXT}`]),
  },
  gobgp: {
    files: { 'gobgpd.toml': GOBGP_CONF },
    start: (ns, dir) => nsSpawn(ns, 'gobgpd', ['-f', join(dir, 'gobgpd.toml'), '-t', 'toml', '--api-hosts', '127.0.0.1:50051', '-l', 'info']),
    ready: (ns) => {
      for (const r of GOBGP_ROUTES) nsExec(ns, 'gobgp', ['global', 'rib', 'add', ...r]);
    },
    shutdown: (ns) => nsExec(ns, 'gobgp', ['neighbor', PEER.v4, 'shutdown', '--reason', SHUTDOWN_TEXT]),
  },
};

/** Our side's OPEN: the codec's encoder, IPv4+IPv6 unicast, route refresh, 4-octet AS, GR helper, extended messages. */
const TALKER = {
  host: DUT.v4,
  localAddress: PEER.v4,
  asn: PEER.asn,
  routerId: PEER.v4,
  holdTime: 90,
  timeoutMs: 40_000,
  capabilities: [
    { code: 1, name: 'multiprotocol', afi: 1, safi: 1 },
    { code: 1, name: 'multiprotocol', afi: 2, safi: 1 },
    { code: 2, name: 'route-refresh' },
    { code: 6, name: 'extended-message' },
    { code: 65, name: '4-octet-as', asn: PEER.asn },
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
  ],
};

/**
 * Sessions to capture, each into its own directory: the default one, and one
 * where our OPEN offers ADD-PATH receive for both families and leaves out the
 * 4-octet AS capability, so the daemons send path identifiers (RFC 7911) and
 * 2-octet AS paths (RFC 6793 §4.2.2).
 */
const VARIANTS = {
  '.': TALKER,
  'add-path-as2': {
    ...TALKER,
    capabilities: [
      ...TALKER.capabilities.filter((c) => c.code !== 65),
      {
        code: 69,
        name: 'add-path',
        families: [
          { afi: 1, safi: 1, sendReceive: 1 },
          { afi: 2, safi: 1, sendReceive: 1 },
        ],
      },
    ],
  },
};

async function capture(name, talkerScript) {
  const d = DAEMONS[name];
  const lab = new Lab();
  const work = mkdtempSync(join(tmpdir(), `skein-capture-${name}-`));
  const log = [];
  let daemon;
  try {
    const dut = lab.ns('dut');
    const peer = lab.ns('peer');
    const [a, b] = lab.link(dut, peer);
    // No link-local address on the daemon's side: BIRD adds one as a second IPv6 next hop once the kernel's
    // duplicate address detection has let it go (a second or two after the link is up), so whether a capture held
    // it depended on timing, and its value on the veth's random MAC. The committed captures hold the global one only.
    nsExec(dut, 'sysctl', ['-qw', `net.ipv6.conf.${a}.addr_gen_mode=1`]);
    nsExec(dut, 'ip', ['-6', 'addr', 'flush', 'dev', a, 'scope', 'link']);
    lab.addr(dut, a, `${DUT.v4}/24`);
    lab.addr(dut, a, `${DUT.v6}/64`);
    lab.addr(peer, b, `${PEER.v4}/24`);
    lab.addr(peer, b, `${PEER.v6}/64`);
    for (const [f, text] of Object.entries(d.files)) writeFileSync(join(work, f), text);
    daemon = d.start(dut, work);
    daemon.stdout.on('data', (c) => log.push(String(c)));
    daemon.stderr.on('data', (c) => log.push(String(c)));
    await until(() => /:179\b/.test(nsExec(dut, 'ss', ['-ltnH'])), `${name} listening on port 179`, 15_000, 100);
    if (d.ready) await until(() => (d.ready(dut), true), `${name} routes added`, 10_000, 200);

    const talker = nsSpawn(peer, process.execPath, [join(root, 'dist/test/helpers/bgp-peer.js'), JSON.stringify(talkerScript)]);
    talker.stderr.on('data', (c) => log.push(`talker: ${String(c)}`));
    const messages = [];
    const eors = new Set();
    let established = false;
    let shutdownSent = false;
    let closed;
    const sendShutdown = () => {
      if (shutdownSent) return;
      shutdownSent = true;
      d.shutdown(dut, work);
    };
    let quiet;
    const lines = createInterface({ input: talker.stdout });
    const finished = new Promise((resolve) => {
      lines.on('line', (line) => {
        const e = JSON.parse(line);
        if (e.event === 'message') messages.push(e);
        if (e.event === 'established') established = true;
        if (e.event === 'end-of-rib') eors.add(`${e.afi}/${e.safi}`);
        if (e.event === 'decode-error') log.push(`talker could not decode a message: ${e.reason}\n`);
        if (e.event === 'closed') {
          closed = e.reason;
          resolve();
        }
        // Once both End-of-RIBs are in (or things went quiet for 4 s), ask the daemon to shut the session down.
        clearTimeout(quiet);
        if (established && eors.has('1/1') && eors.has('2/1')) setTimeout(sendShutdown, 1000);
        else if (established) quiet = setTimeout(sendShutdown, 4000);
      });
      talker.on('exit', () => resolve());
    });
    await finished;
    clearTimeout(quiet);
    if (!messages.some((m) => m.type === 'NOTIFICATION')) {
      throw new Error(`${name}: no NOTIFICATION captured (talker: ${closed}); daemon log:\n${log.join('')}`);
    }
    return { messages, eors: [...eors], log: log.join('') };
  } finally {
    daemon?.kill('SIGTERM');
    lab.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

function save(name, variant, { messages }, outRoot) {
  const dir = join(outRoot, name, variant);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.hex')) rmSync(join(dir, f));
  if (variant === '.') for (const [f, text] of Object.entries(DAEMONS[name].files)) writeFileSync(join(dir, f), text);
  let n = 0;
  let ka = 0;
  const names = [];
  for (const m of messages) {
    let file;
    const raw = Buffer.from(m.hex, 'hex');
    if (m.type === 'OPEN') file = 'open.hex';
    else if (m.type === 'KEEPALIVE') {
      if (ka++ > 0) continue; // one is enough: they are all the same 19 octets
      file = 'keepalive.hex';
    } else if (m.type === 'NOTIFICATION') file = 'notification.hex';
    else if (m.type === 'UPDATE') {
      // RFC 4724 §2 End-of-RIB: an empty UPDATE (IPv4) or one with only an empty MP_UNREACH_NLRI
      const withdrawnLen = raw.readUInt16BE(19);
      const attrLen = raw.readUInt16BE(21 + withdrawnLen);
      if (raw.length === 23) file = 'eor-ipv4-unicast.hex';
      else if (withdrawnLen === 0 && attrLen === 6 && raw.length === 29 && raw[24] === 15) file = `eor-afi${raw.readUInt16BE(26)}-safi${raw[28]}.hex`;
      else file = `update-${String(++n).padStart(2, '0')}.hex`;
    } else file = `other-${m.type}.hex`;
    writeFileSync(join(dir, file), `${m.hex}\n`);
    names.push(file);
  }
  return names;
}

if (process.getuid?.() !== 0) {
  console.error('capture-peers: needs root (network namespaces)');
  process.exit(2);
}
const args = process.argv.slice(2);
let outRoot = join(root, 'test/data/captures');
const o = args.indexOf('--out');
if (o >= 0) {
  if (!args[o + 1]) {
    console.error('capture-peers: --out needs a directory');
    process.exit(2);
  }
  outRoot = args[o + 1];
  args.splice(o, 2);
}
const wanted = args.length ? args : Object.keys(DAEMONS);
let failed = 0;
for (const name of wanted) {
  if (!DAEMONS[name]) {
    console.error(`capture-peers: unknown daemon ${name}`);
    process.exit(2);
  }
  for (const [variant, talkerScript] of Object.entries(VARIANTS)) {
    const label = variant === '.' ? name : `${name}/${variant}`;
    try {
      const res = await capture(name, talkerScript);
      const files = save(name, variant, res, outRoot);
      console.log(`${label}: ${res.messages.length} messages, End-of-RIB for ${res.eors.join(' ') || 'none'} -> ${files.join(' ')}`);
    } catch (e) {
      failed++;
      console.error(`${label}: ${e.message}`);
    }
  }
}
process.exit(failed ? 1 : 0);
