// The datastore soak (issue #14): a real etcd under continuous churn of WorkloadEndpoints, IPAM blocks and BGPPeers,
// with compactions and etcd restarts (SIGKILL, same data dir) every so often, and (leaderKillEveryMs: a 3-member
// cluster) its leader killed and restarted, read by two datastores (one scoped to a
// node as skeind reads it, one reading everything). Every checkEveryMs the churn pauses and each datastore's model must
// equal what etcd holds, decoded independently (scoped: filtered to the node), within settleMs. RSS and open fds of
// this process are sampled at every check. Used by `npm run soak` (bench/soak.ts) and test/config/datastore-soak.test.ts.
// With `hosts` (root): that many of the nodes run the real skeind, each in a network namespace on one bridge (a BGP
// mesh between them), reaching etcd through a forwarder (a Unix socket: etcd stays on this namespace's loopback). At
// the end, once the churn has stopped, each host's kernel routes (proto 171) and Loc-RIB (`skeinctl routes`) must
// equal what the datastore says: its own device routes and block blackholes, and every host's originations, as
// src/controller derives them from the records in etcd. Throughout, each host's kernel is followed by a RouteMonitor
// (test/helpers/soak-routes.ts, started before its skeind) and every change the soak makes is logged with its time;
// at the end the log is replayed through src/controller into each host's wanted routes over time, and judgeRoutes
// reports any moment a wanted route was missing from a kernel that the datastore did not ask for (routeGaps).
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { EtcdDatastore, Model, decodeEtcd, keyConcernsNode, type ChangeEvent, type Datastore } from '../../config/index.js';
import { NodeController } from '../../src/controller/index.js';
import { startEtcd, startEtcdCluster } from './etcd.js';
import { affinityKey, affinityValue, block26, blockKey, fullBlock, nodeKey, nodeValue, wepKey, wepValue } from './calico-gen.js';
import { Lab, nsExec, nsSpawn } from './netns.js';
import { judgeRoutes, RouteMonitor, type Gap, type RouteIntent } from './soak-routes.js';

export interface SoakOptions {
  seconds: number;
  clientPort: number;
  peerPort: number;
  /** changes per second (default 50) */
  rate?: number;
  checkEveryMs?: number;
  compactEveryMs?: number;
  restartEveryMs?: number;
  /**
   * a 3-member etcd cluster (ports clientPort/peerPort + 0, 4, 8) whose leader is killed (SIGKILL) this often and
   * restarted 2 s later; "etcd restarts" then kill and restart every member. Without it: one member.
   */
  leaderKillEveryMs?: number;
  /** cluster only: kill one member that is not the leader (in turn) this often, and restart it 1 s later */
  memberRestartEveryMs?: number;
  /** the first etcd restart (every member), leader kill and member restart are due this long after the churn begins (default: one period) */
  firstRestartMs?: number;
  firstLeaderKillMs?: number;
  firstMemberRestartMs?: number;
  /**
   * with hosts: this long after the churn begins, delete the first host's route to the second host's block from its
   * kernel by hand (`ip route del`), a loss skeind did not make: the judge must find it (SoakResult.injected)
   */
  injectLossAtMs?: number;
  /** with hosts: how long a kernel may take to follow a change of the datastore before a missing route counts (default 10 s) */
  settleMs?: number;
  /** this many nodes (soak-node-0, -1, ...) run skeind in namespaces; their kernels and Loc-RIBs are checked at the end */
  hosts?: number;
  log?: (line: string) => void;
}

export interface SoakResult {
  ops: number;
  checks: number;
  /** checks at which a datastore did not equal etcd within settleMs: what differed */
  mismatches: string[];
  restarts: number;
  compactions: number;
  /** leaders killed (with leaderKillEveryMs) */
  leaderKills: number;
  /** followers killed and restarted (with memberRestartEveryMs) */
  memberRestarts: number;
  /** changes whose outcome was unknown (etcd failed the request) and was read back from etcd */
  unsure: number;
  /** with hosts: every interval in which a host's kernel lacked a route the datastore wanted there (judgeRoutes) */
  routeGaps: Gap[];
  /** with injectLossAtMs: the route deleted by hand, and when (just before the command ran) */
  injected?: { host: string; prefix: string; t: number };
  /** with hosts: routes that stayed in a kernel more than settleMs after the datastore asked for their removal */
  routeLingering: Gap[];
  /** with hosts: host/prefix pairs whose timelines were judged, kernel changes seen, and intents derived */
  routeTimeline: { prefixes: number; kernelChanges: number; intents: number; judgedMs: number; monitorsAlive: boolean };
  rss: number[];
  fds: number[];
  /** per check: how many etcd disruptions (restarts of every member, leader kills, follower restarts) had happened by then */
  restartsBy: number[];
  /** with hosts: per host, what its kernel and Loc-RIB lacked or had too many of at the end (empty: equal) */
  hostMismatches: string[];
  /** with hosts: per host, the prefixes compared (kernel, Loc-RIB) */
  hostRoutes: { node: string; kernel: number; locRib: number }[];
}

const NODES = 20;
const ME = 'soak-node-0';
// run from source (tap) or from dist/ (npm run soak): the daemons are always the built ones
const ROOT = join(import.meta.dirname, ...(import.meta.dirname.split('/').includes('dist') ? ['..', '..', '..'] : ['..', '..']));
const SKEIND = join(ROOT, 'dist', 'src', 'skeind.js');
const SKEINCTL = join(ROOT, 'dist', 'src', 'skeinctl.js');
/** inside a host's namespace: 127.0.0.1:<argv[2]> forwarded to the Unix socket argv[1] (an etcd member, outside) */
const FORWARD = "const n=require('net');n.createServer((s)=>{const e=n.connect(process.argv[1]);s.pipe(e);e.pipe(s);const d=()=>{s.destroy();e.destroy();};s.on('error',d).on('close',d);e.on('error',d).on('close',d);}).listen(Number(process.argv[2]),'127.0.0.1');";

/** The soak's etcd: one member, or a 3-member cluster whose leader can be killed. */
interface SoakEtcd {
  endpoints: string[];
  clientPorts: number[];
  client: Etcd3;
  /** SIGKILL every member, wait 1 s, start them again on their data dirs */
  restart(): Promise<void>;
  /** cluster only: SIGKILL the leader, restart it 2 s later; false when there is no leader to kill */
  killLeader?(): Promise<boolean>;
  /** cluster only: SIGKILL the n-th member (mod 3) that is not the leader, restart it 1 s later; false without a leader */
  restartFollower?(n: number): Promise<boolean>;
  stop(): Promise<void>;
}

async function soakEtcd(o: SoakOptions): Promise<SoakEtcd> {
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  if (o.leaderKillEveryMs === undefined) {
    const e = await startEtcd(o.clientPort, o.peerPort);
    return { endpoints: [e.endpoint], clientPorts: [o.clientPort], client: e.client, stop: () => e.stop(), async restart() { await e.kill(); await pause(1000); await e.start(); } };
  }
  const c = await startEtcdCluster(o.clientPort, o.peerPort);
  // on a loaded machine one round of status probes can time out: ask again for up to 10 s
  const leader = async (): Promise<number | undefined> => {
    for (let i = 0; i < 20; i++) {
      const l = await c.leader();
      if (l !== undefined) return l;
      await pause(500);
    }
    return undefined;
  };
  return {
    endpoints: c.endpoints, clientPorts: c.clientPorts, client: c.client, stop: () => c.stop(),
    async restart() { for (let i = 0; i < 3; i++) await c.kill(i); await pause(1000); await c.startAll(); },
    async killLeader() {
      const l = await leader();
      if (l === undefined) return false;
      await c.kill(l);
      await pause(2000);
      await c.start(l);
      return true;
    },
    async restartFollower(n: number) {
      const l = await leader();
      if (l === undefined) return false;
      const followers = [0, 1, 2].filter((i) => i !== l);
      const f = followers[n % followers.length] as number;
      await c.kill(f);
      await pause(1000);
      await c.start(f);
      return true;
    },
  };
}
/** a host's workloads use cali0, a veth pair inside its namespace, so skeind can route them */
const hostWep = (node: string, ns: string, pod: string, ip: string): string => wepValue(node, ns, pod, ip).replace(/"interfaceName":"[^"]*"/, '"interfaceName":"cali0"');

interface SoakHost { node: string; ns: string; sock: string; child: ChildProcess; tail: string; monitor: RouteMonitor }
/** one change the soak made: at t, key set to value (null: deleted); unsure: etcd failed the request, the outcome (value) was read back at tKnown */
interface LoggedOp { t: number; key: string; value: string | null; unsure?: { tKnown: number; tried: string | null } }
const fds = (): number => readdirSync('/proc/self/fd').length;

/** What etcd holds under /calico/, decoded independently of the datastores (pages of 200 keys). */
async function truth(client: Etcd3, node?: string): Promise<Model> {
  const m = new Model();
  let start = Buffer.from('/calico/');
  for (let i = 0; i < 100_000; i++) {
    const res = await client.getAll().inRange({ start, end: Buffer.from('/calico0') }).limit(200).exec();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      if (node !== undefined && !keyConcernsNode(key, node)) continue;
      const d = decodeEtcd(key, kv.value.toString());
      if (d?.resource) m.set(d.resource);
    }
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) break;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return m;
}

function peerValue(i: number): string {
  return JSON.stringify({ kind: 'BGPPeer', apiVersion: 'projectcalico.org/v3', metadata: { name: `soak-peer-${i}` }, spec: { peerIP: `192.0.2.${100 + i}`, asNumber: 64600 + i } });
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const log = o.log ?? ((): void => undefined);
  const rate = o.rate ?? 50;
  const etcd = await soakEtcd(o);
  const res: SoakResult = {
    ops: 0, checks: 0, mismatches: [], restarts: 0, compactions: 0, leaderKills: 0, memberRestarts: 0, unsure: 0, rss: [], fds: [], restartsBy: [], hostMismatches: [], hostRoutes: [],
    routeGaps: [], routeLingering: [], routeTimeline: { prefixes: 0, kernelChanges: 0, intents: 0, judgedMs: 0, monitorsAlive: true },
  };
  const opLog: LoggedOp[] = [];
  const nHosts = o.hosts ?? 0;
  const lab = nHosts > 0 ? new Lab() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'skein-soak-'));
  const hosts: SoakHost[] = [];
  const bridges: Server[] = [];
  const stores: { ds: Datastore & { close(): Promise<void> }; node?: string }[] = [];
  try {
    const c = etcd.client;
    const pods = new Map<string, string>(); // key -> value
    // a pool over every workload address, routed plainly (no IPIP/VXLAN): the hosts announce blocks and borrowed /32s
    await c.put('/calico/resources/v3/projectcalico.org/ippools/soak-pool').value(JSON.stringify({ kind: 'IPPool', apiVersion: 'projectcalico.org/v3', metadata: { name: 'soak-pool' }, spec: { cidr: '10.64.0.0/10', blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', nodeSelector: 'all()' } }));
    for (let k = 0; k < NODES; k++) {
      const node = `soak-node-${k}`;
      // the hosts on the lab's bridge; the other nodes on addresses no namespace routes (their mesh sessions fail fast)
      await c.put(nodeKey(node)).value(nodeValue(node, k < nHosts ? `10.77.0.${k + 1}` : `192.0.2.${k + 1}`));
      await c.put(blockKey(k)).value(fullBlock(k, node));
      await c.put(affinityKey(node, k)).value(affinityValue());
    }
    if (lab !== undefined) {
      // per etcd member: a Unix socket here, forwarded from 127.0.0.1:2379+i in each host's namespace
      for (const [i, port] of etcd.clientPorts.entries()) {
        const b = createServer((s) => {
          const e = connect(port, '127.0.0.1');
          s.pipe(e);
          e.pipe(s);
          const drop = (): void => { s.destroy(); e.destroy(); };
          s.on('error', drop).on('close', drop);
          e.on('error', drop).on('close', drop);
        });
        bridges.push(b);
        await new Promise<void>((r) => b.listen(join(dir, `etcd-${i}.sock`), r));
      }
      const hostEndpoints = etcd.clientPorts.map((_, i) => `http://127.0.0.1:${2379 + i}`).join(', ');
      const names = lab.bridgedHosts(Array.from({ length: nHosts }, (_, k) => ({ name: `soak-node-${k}`, ip: `10.77.0.${k + 1}` })));
      for (const [node, ns] of names) {
        nsExec(ns, 'ip', ['link', 'add', 'cali0', 'type', 'veth', 'peer', 'name', 'cali0p']);
        nsExec(ns, 'ip', ['link', 'set', 'cali0', 'up']);
        nsExec(ns, 'ip', ['link', 'set', 'cali0p', 'up']);
        // the kernel's timeline from an empty table on: the monitor listens before skeind writes anything
        const monitor = new RouteMonitor(ns, node);
        await monitor.started();
        for (let i = 0; i < etcd.clientPorts.length; i++) nsSpawn(ns, process.execPath, ['-e', FORWARD, join(dir, `etcd-${i}.sock`), String(2379 + i)], { stdio: 'ignore' });
        const cfg = join(dir, `${node}.yaml`);
        const sock = join(dir, `${node}.sock`);
        writeFileSync(cfg, `nodeName: ${node}\ndatastore: { type: etcd, etcd: { endpoints: [${hostEndpoints}], backoff: { min: 50ms, max: 1s } } }\ncontrol: { socket: ${sock} }\nmetrics: { listen: false }\nlog: { level: warn }\n`);
        const child = nsSpawn(ns, process.execPath, [SKEIND, '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
        const h: SoakHost = { node, ns, sock, child, tail: '', monitor };
        child.stderr?.on('data', (d: Buffer) => { h.tail = (h.tail + d.toString()).slice(-2000); });
        hosts.push(h);
      }
    }
    const scoped = new EtcdDatastore({ endpoints: etcd.endpoints, nodeName: ME, backoffMinMs: 50, backoffMaxMs: 1000, staleMs: 5000, progressMs: 1000 });
    const full = new EtcdDatastore({ endpoints: etcd.endpoints, backoffMinMs: 50, backoffMaxMs: 1000, staleMs: 5000, progressMs: 1000 });
    stores.push({ ds: scoped, node: ME }, { ds: full });
    for (const s of stores) (s.ds as EtcdDatastore).start();
    await Promise.all(stores.map((s) => s.ds.synced()));
    // the hosts start from what the datastore says (bounded: 60 s), so that the judged window begins settled
    if (hosts.length > 0) {
      const before = await checkHosts(c, hosts, res, log, 60_000);
      if (before.length > 0) throw new Error(`the soak's hosts did not reach the datastore's state before the churn: ${before.join('; ')}`);
    }
    // what etcd holds when the churn begins: the replay of the op log starts from it
    const initial = hosts.length > 0 ? await truthRecords(c) : new Map<string, string>();
    const t0 = Date.now();
    const end = t0 + o.seconds * 1000;
    let nextCheck = t0 + (o.checkEveryMs ?? 10_000);
    let nextCompact = t0 + (o.compactEveryMs ?? 25_000);
    let nextRestart = t0 + (o.firstRestartMs ?? o.restartEveryMs ?? 45_000);
    let nextLeaderKill = t0 + (o.firstLeaderKillMs ?? o.leaderKillEveryMs ?? 0);
    let nextMemberRestart = t0 + (o.firstMemberRestartMs ?? o.memberRestartEveryMs ?? 0);
    let injectAt = o.injectLossAtMs !== undefined && hosts.length >= 2 ? t0 + o.injectLossAtMs : Infinity;
    let seq = 0;
    // one change; when etcd fails the request its outcome is unknown (it may have been committed), so it is read back
    // once etcd answers (bounded: 60 s) and logged as unsure from the moment it was sent to the moment it was known
    const write = async (key: string, value: string | null): Promise<void> => {
      const t = Date.now();
      try {
        if (value === null) await c.delete().key(key);
        else await c.put(key).value(value);
        opLog.push({ t, key, value });
        return;
      } catch (e) {
        for (let i = 0; i < 600; i++) {
          try {
            const now = await c.get(key).string();
            const tKnown = Date.now();
            opLog.push({ t, key, value: now, unsure: { tKnown, tried: value } });
            res.unsure++;
            break;
          } catch {
            if (Date.now() - t > 60_000) throw new Error(`etcd did not answer for 60 s after a failed change of ${key}`, { cause: e });
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        throw e;
      }
    };
    const op = async (): Promise<void> => {
      const r = Math.random();
      const k = Math.random() < 0.2 ? 0 : Math.floor(Math.random() * NODES);
      const node = `soak-node-${k}`;
      seq++;
      if (r < 0.6) {
        const pod = `pod-${Math.floor(Math.random() * 40)}`;
        const key = wepKey(node, `ns-${k % 3}`, pod);
        if (pods.has(key) && Math.random() < 0.4) { await write(key, null); pods.delete(key); } else {
          const v = (k < nHosts ? hostWep : wepValue)(node, `ns-${k % 3}`, pod, `10.${64 + k}.0.${(seq % 250) + 1}`);
          await write(key, v);
          pods.set(key, v);
        }
      } else if (r < 0.85) {
        await write(blockKey(k), fullBlock(k, node, seq));
      } else {
        const i = Math.floor(Math.random() * 5);
        await write(`/calico/resources/v3/projectcalico.org/bgppeers/soak-peer-${i}`, Math.random() < 0.3 ? null : peerValue(i));
      }
    };
    for (let loop = 0; loop < 10_000_000 && Date.now() < end; loop++) {
      const now = Date.now();
      if (o.memberRestartEveryMs !== undefined && etcd.restartFollower !== undefined && now >= nextMemberRestart) {
        nextMemberRestart = now + o.memberRestartEveryMs;
        if (await etcd.restartFollower(res.memberRestarts)) {
          res.memberRestarts++;
          log('soak: an etcd follower killed, restarted 1 s later');
        } else log('soak: no etcd leader: no follower restarted');
      }
      if (now >= injectAt) {
        injectAt = Infinity;
        const h = hosts[0] as SoakHost;
        // the second host's first block: announced by it from the start, changed by nothing in the churn
        const prefix = block26(1).cidr;
        const t = Date.now();
        try {
          nsExec(h.ns, 'ip', ['route', 'del', prefix, 'proto', '171']);
          res.injected = { host: h.node, prefix, t };
          log(`soak: ${prefix} deleted by hand from ${h.node}'s kernel`);
        } catch (e) { log(`soak: could not delete ${prefix} by hand: ${(e as Error).message}`); }
      }
      if (now >= nextRestart) {
        nextRestart = now + (o.restartEveryMs ?? 45_000);
        log('soak: etcd killed and restarted');
        await etcd.restart();
        res.restarts++;
      }
      if (o.leaderKillEveryMs !== undefined && etcd.killLeader !== undefined && now >= nextLeaderKill) {
        nextLeaderKill = now + o.leaderKillEveryMs;
        if (await etcd.killLeader()) {
          res.leaderKills++;
          log('soak: the etcd leader killed, restarted 2 s later');
        } else log('soak: no etcd leader to kill');
      }
      if (now >= nextCompact) {
        nextCompact = now + (o.compactEveryMs ?? 25_000);
        try {
          const rev = (await c.get('x').exec()).header.revision;
          await c.kv.compact({ revision: rev, physical: true });
          res.compactions++;
        } catch (e) { log(`soak: compaction failed: ${(e as Error).message}`); }
      }
      if (now >= nextCheck) {
        nextCheck = now + (o.checkEveryMs ?? 10_000);
        await check(c, stores, res, log);
      }
      try {
        await op();
        res.ops++;
      } catch {
        // etcd down or restarting: the change is not made; the truth is whatever etcd holds
      }
      const due = t0 + (res.ops * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const tEnd = Date.now();
    await check(c, stores, res, log);
    if (hosts.length > 0) {
      res.hostMismatches = await checkHosts(c, hosts, res, log, 30_000);
      judge(hosts, initial, opLog, t0, tEnd, o.settleMs ?? 10_000, res, log);
    }
    return res;
  } finally {
    for (const s of stores) await s.ds.close();
    for (const h of hosts) { h.child.kill('SIGTERM'); h.monitor.stop(); }
    lab?.destroy();
    for (const b of bridges) b.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const norm = (p: string): string => (p.includes('/') ? p : `${p}${p.includes(':') ? '/128' : '/32'}`);

/** What one host has: IPv4 routes of proto 171 in its main table, and the prefixes of its Loc-RIB with a best path. */
function hostHas(h: SoakHost): { kernel: Set<string>; locRib: Set<string> } {
  const k = JSON.parse(nsExec(h.ns, 'ip', ['-j', '-4', 'route', 'show', 'proto', '171'])) as { dst: string; type?: string }[];
  const out = execFileSync(process.execPath, [SKEINCTL, '--socket', h.sock, 'routes', '--json'], { encoding: 'utf8', timeout: 15_000 });
  const r = JSON.parse(out) as { routes: { prefix: string; best: unknown }[] };
  return { kernel: new Set(k.map((x) => norm(x.dst))), locRib: new Set(r.routes.filter((x) => x.best !== null && x.prefix.includes('.')).map((x) => x.prefix)) };
}

/**
 * What the datastore says each host must have, from etcd's records by src/controller (as skeind derives them): in
 * the Loc-RIB, every host's IPv4 originations (its own, and the others' over the mesh); in the kernel, its own device
 * routes and block blackholes and the other hosts' originations.
 */
async function hostWants(c: Etcd3, hosts: SoakHost[]): Promise<Map<string, { kernel: Set<string>; locRib: Set<string> }>> {
  const st = new Map<string, { announce: string[]; local: string[] }>();
  for (const h of hosts) {
    const ctl = new NodeController(h.node);
    ctl.update(await truth(c, h.node));
    const s = ctl.state;
    st.set(h.node, { announce: s.announce.filter((a) => a.family === 4).map((a) => a.prefix), local: [...s.deviceRoutes, ...s.blackholes].filter((a) => a.family === 4).map((a) => a.prefix) });
  }
  const out = new Map<string, { kernel: Set<string>; locRib: Set<string> }>();
  for (const h of hosts) {
    const others = hosts.filter((x) => x !== h).flatMap((x) => st.get(x.node)!.announce);
    out.set(h.node, { kernel: new Set([...st.get(h.node)!.local, ...others]), locRib: new Set([...st.get(h.node)!.announce, ...others]) });
  }
  return out;
}

/** every key and value under /calico/ (pages of 200 keys) */
async function truthRecords(client: Etcd3): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let start = Buffer.from('/calico/');
  for (let i = 0; i < 100_000; i++) {
    const res = await client.getAll().inRange({ start, end: Buffer.from('/calico0') }).limit(200).exec();
    for (const kv of res.kvs) out.set(kv.key.toString(), kv.value.toString());
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) break;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return out;
}

/**
 * Replays the op log from the records etcd held when the churn began through src/controller, one controller per host,
 * into each host's wanted kernel routes over time (as hostWants derives them), and judges the hosts' kernel timelines
 * against them. An unsure change wants, from when it was sent until its outcome was known, only what both outcomes
 * want; then what the outcome wants.
 */
function judge(hosts: SoakHost[], initial: Map<string, string>, ops: readonly LoggedOp[], t0: number, tEnd: number, settleMs: number, res: SoakResult, log: (l: string) => void): void {
  const started = Date.now();
  const model = new Model();
  const raw = new Map<string, string>();
  const ctls = hosts.map((h) => new NodeController(h.node));
  const apply = (key: string, value: string | null): void => {
    let ev: ChangeEvent | undefined;
    if (value === null) {
      raw.delete(key);
      // the key alone says what it held (decoding an empty value names the kind and id, with an issue ignored here)
      const d = decodeEtcd(key, '');
      if (d?.kind !== undefined && d.id !== undefined) ev = model.delete(d.kind, d.id, key);
    } else {
      raw.set(key, value);
      const d = decodeEtcd(key, value);
      if (d?.resource !== undefined) ev = model.set(d.resource, key);
    }
    if (ev !== undefined) for (const ctl of ctls) ctl.applyChanges([ev]);
  };
  const wants = (): Map<string, Set<string>> => {
    const st = ctls.map((ctl) => ctl.state);
    const announce = st.map((s) => s.announce.filter((a) => a.family === 4).map((a) => a.prefix));
    const out = new Map<string, Set<string>>();
    for (const [i, h] of hosts.entries()) {
      const s = st[i] as (typeof st)[number];
      const local = [...s.deviceRoutes, ...s.blackholes].filter((a) => a.family === 4).map((a) => a.prefix);
      out.set(h.node, new Set([...local, ...announce.flatMap((a, j) => (j === i ? [] : a))]));
    }
    return out;
  };
  const intents: RouteIntent[] = [];
  let cur = new Map<string, Set<string>>();
  const emit = (t: number, next: Map<string, Set<string>>): void => {
    for (const [host, want] of next) {
      const had = cur.get(host) ?? new Set<string>();
      for (const p of want) if (!had.has(p)) intents.push({ t, host, prefix: p, want: true });
      for (const p of had) if (!want.has(p)) intents.push({ t, host, prefix: p, want: false });
    }
    cur = next;
  };
  for (const [k, v] of initial) apply(k, v);
  emit(0, wants());
  for (const op of ops) {
    if (op.unsure === undefined) { apply(op.key, op.value); emit(op.t, wants()); continue; }
    const before = raw.get(op.key) ?? null;
    const b = cur;
    apply(op.key, op.unsure.tried);
    const a = wants();
    emit(op.t, new Map([...b].map(([h, w]) => [h, new Set([...w].filter((p) => a.get(h)?.has(p) === true))])));
    apply(op.key, before);
    apply(op.key, op.value);
    emit(op.unsure.tKnown, wants());
  }
  const kernel = hosts.flatMap((h) => [...h.monitor.changes]);
  const v = judgeRoutes({ intents, kernel, from: t0, to: tEnd, settleMs });
  // SOAK_DUMP=file: both timelines and the op log, for looking into a verdict afterwards
  if (process.env.SOAK_DUMP) writeFileSync(process.env.SOAK_DUMP, JSON.stringify({ t0, tEnd, settleMs, intents, kernel, ops, gaps: v.gaps, lingering: v.lingering }));
  res.routeGaps = v.gaps;
  res.routeLingering = v.lingering;
  res.routeTimeline = { prefixes: v.compared, kernelChanges: kernel.length, intents: intents.length, judgedMs: tEnd - t0, monitorsAlive: hosts.every((h) => h.monitor.alive) };
  const show = (g: Gap): string => `${g.host} ${g.prefix} ${g.kind} ${new Date(g.from).toISOString()} for ${(g.to - g.from).toFixed(2)} ms`;
  log(`soak: routes over ${((tEnd - t0) / 1000).toFixed(0)} s judged (settle ${settleMs} ms, ${Date.now() - started} ms to judge): ${v.compared} host prefixes, ${intents.length} intents, ${kernel.length} kernel changes; ${v.gaps.length} gaps${v.gaps.length > 0 ? `: ${v.gaps.slice(0, 6).map(show).join('; ')}` : ''}; ${v.lingering.length} lingering${v.lingering.length > 0 ? `: ${v.lingering.slice(0, 3).map(show).join('; ')}` : ''}`);
}

/** Waits (up to timeoutMs) until every host's kernel and Loc-RIB equal what the datastore says; returns what still differs. */
async function checkHosts(c: Etcd3, hosts: SoakHost[], res: SoakResult, log: (l: string) => void, timeoutMs: number): Promise<string[]> {
  const diff = (want: Set<string>, have: Set<string>): string => {
    const lack = [...want].filter((p) => !have.has(p));
    const extra = [...have].filter((p) => !want.has(p));
    if (lack.length === 0 && extra.length === 0) return '';
    return `lacks ${lack.length} (${lack.slice(0, 4).join(' ')}), has ${extra.length} too many (${extra.slice(0, 4).join(' ')})`;
  };
  let last: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < timeoutMs / 100 && Date.now() < deadline; i++) {
    last = [];
    res.hostRoutes = [];
    try {
      const want = await hostWants(c, hosts);
      for (const h of hosts) {
        if (h.child.exitCode !== null) { last.push(`${h.node}: skeind exited ${h.child.exitCode}: ${h.tail}`); continue; }
        const have = hostHas(h);
        const w = want.get(h.node)!;
        res.hostRoutes.push({ node: h.node, kernel: w.kernel.size, locRib: w.locRib.size });
        const k = diff(w.kernel, have.kernel);
        const r = diff(w.locRib, have.locRib);
        if (k !== '') last.push(`${h.node} kernel: ${k}`);
        if (r !== '') last.push(`${h.node} Loc-RIB: ${r}`);
      }
    } catch (e) {
      last = [`reading the hosts: ${(e as Error).message}`];
    }
    if (last.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  log(`soak: hosts: ${res.hostRoutes.map((x) => `${x.node} kernel ${x.kernel} / Loc-RIB ${x.locRib} prefixes`).join(', ')}; ${last.length === 0 ? 'all equal the datastore' : last.join('; ')}`);
  return last;
}

async function check(c: Etcd3, stores: { ds: Datastore; node?: string }[], res: SoakResult, log: (l: string) => void): Promise<void> {
  res.checks++;
  for (const s of stores) {
    let want: Model | undefined;
    let same = false;
    // settle: each datastore catches up with etcd within 20 s
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < 400 && !same && Date.now() < deadline; i++) {
      try {
        want = await truth(c, s.node);
        same = s.ds.model.equals(want);
      } catch { /* etcd restarting */ }
      if (!same) await new Promise((r) => setTimeout(r, 50));
    }
    if (!same) {
      const have = s.ds.model.toJSON();
      const w = want?.toJSON() ?? {};
      const diffs: string[] = [];
      for (const kind of Object.keys(w)) {
        for (const id of new Set([...Object.keys(w[kind] ?? {}), ...Object.keys(have[kind] ?? {})])) {
          if (JSON.stringify(w[kind]?.[id]) !== JSON.stringify(have[kind]?.[id])) diffs.push(`${kind}/${id}`);
        }
      }
      res.mismatches.push(`check ${res.checks} (${s.node ?? 'all nodes'}, ${s.ds.status.state}): ${diffs.slice(0, 5).join(', ')}${diffs.length > 5 ? ` and ${diffs.length - 5} more` : ''}`);
    }
  }
  (globalThis as { gc?: () => void }).gc?.();
  res.rss.push(process.memoryUsage().rss);
  res.fds.push(fds());
  // every disruption of etcd so far (each brings new gRPC connections): restarts of every member, leader kills, follower restarts
  res.restartsBy.push(res.restarts + res.leaderKills + res.memberRestarts);
  log(`soak: check ${res.checks}: ${res.ops} changes so far, ${res.mismatches.length} mismatches, RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB, ${fds()} fds`);
}
