// The datastore soak (issue #14): a real etcd under continuous churn of WorkloadEndpoints, IPAM blocks and BGPPeers,
// with compactions and etcd restarts (SIGKILL, same data dir) every so often, and (leaderKillEveryMs: a 3-member
// cluster) its leader killed and restarted, read by two datastores (one scoped to a
// node as skeind reads it, one reading everything). Every checkEveryMs the churn pauses and each datastore's model must
// equal what etcd holds, decoded independently (scoped: filtered to the node), within settleMs. RSS and open fds of
// this process are sampled at every check. Used by `npm run soak` (bench/soak.ts) and test/datastore-soak.test.ts.
// With `hosts` (root): that many of the nodes run the real skeind, each in a network namespace on one bridge (a BGP
// mesh between them), reaching etcd through a forwarder (a Unix socket: etcd stays on this namespace's loopback). At
// the end, once the churn has stopped, each host's kernel routes (proto 171) and Loc-RIB (`skeinctl routes`) must
// equal what the datastore says: its own device routes and block blackholes, and every host's originations, as
// src/controller derives them from the records in etcd.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { EtcdDatastore, Model, decodeEtcd, keyConcernsNode, type Datastore } from '../../config/index.js';
import { NodeController } from '../../src/controller/index.js';
import { startEtcd, startEtcdCluster } from './etcd.js';
import { affinityKey, affinityValue, blockKey, fullBlock, nodeKey, nodeValue, wepKey, wepValue } from './calico-gen.js';
import { Lab, nsExec, nsSpawn } from './netns.js';

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
  rss: number[];
  fds: number[];
  /** per check: how many etcd restarts had happened by then */
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
  stop(): Promise<void>;
}

async function soakEtcd(o: SoakOptions): Promise<SoakEtcd> {
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  if (o.leaderKillEveryMs === undefined) {
    const e = await startEtcd(o.clientPort, o.peerPort);
    return { endpoints: [e.endpoint], clientPorts: [o.clientPort], client: e.client, stop: () => e.stop(), async restart() { await e.kill(); await pause(1000); await e.start(); } };
  }
  const c = await startEtcdCluster(o.clientPort, o.peerPort);
  return {
    endpoints: c.endpoints, clientPorts: c.clientPorts, client: c.client, stop: () => c.stop(),
    async restart() { for (let i = 0; i < 3; i++) await c.kill(i); await pause(1000); await c.startAll(); },
    async killLeader() {
      const l = await c.leader();
      if (l === undefined) return false;
      await c.kill(l);
      await pause(2000);
      await c.start(l);
      return true;
    },
  };
}
/** a host's workloads use cali0, a veth pair inside its namespace, so skeind can route them */
const hostWep = (node: string, ns: string, pod: string, ip: string): string => wepValue(node, ns, pod, ip).replace(/"interfaceName":"[^"]*"/, '"interfaceName":"cali0"');

interface SoakHost { node: string; ns: string; sock: string; child: ChildProcess; tail: string }
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
  const res: SoakResult = { ops: 0, checks: 0, mismatches: [], restarts: 0, compactions: 0, leaderKills: 0, rss: [], fds: [], restartsBy: [], hostMismatches: [], hostRoutes: [] };
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
        for (let i = 0; i < etcd.clientPorts.length; i++) nsSpawn(ns, process.execPath, ['-e', FORWARD, join(dir, `etcd-${i}.sock`), String(2379 + i)], { stdio: 'ignore' });
        const cfg = join(dir, `${node}.yaml`);
        const sock = join(dir, `${node}.sock`);
        writeFileSync(cfg, `nodeName: ${node}\ndatastore: { type: etcd, etcd: { endpoints: [${hostEndpoints}], backoff: { min: 50ms, max: 1s } } }\ncontrol: { socket: ${sock} }\nmetrics: { listen: false }\nlog: { level: warn }\n`);
        const child = nsSpawn(ns, process.execPath, [SKEIND, '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
        const h: SoakHost = { node, ns, sock, child, tail: '' };
        child.stderr?.on('data', (d: Buffer) => { h.tail = (h.tail + d.toString()).slice(-2000); });
        hosts.push(h);
      }
    }
    const scoped = new EtcdDatastore({ endpoints: etcd.endpoints, nodeName: ME, backoffMinMs: 50, backoffMaxMs: 1000, staleMs: 5000, progressMs: 1000 });
    const full = new EtcdDatastore({ endpoints: etcd.endpoints, backoffMinMs: 50, backoffMaxMs: 1000, staleMs: 5000, progressMs: 1000 });
    stores.push({ ds: scoped, node: ME }, { ds: full });
    for (const s of stores) (s.ds as EtcdDatastore).start();
    await Promise.all(stores.map((s) => s.ds.synced()));
    const t0 = Date.now();
    const end = t0 + o.seconds * 1000;
    let nextCheck = t0 + (o.checkEveryMs ?? 10_000);
    let nextCompact = t0 + (o.compactEveryMs ?? 25_000);
    let nextRestart = t0 + (o.restartEveryMs ?? 45_000);
    let nextLeaderKill = t0 + (o.leaderKillEveryMs ?? 0);
    let seq = 0;
    const op = async (): Promise<void> => {
      const r = Math.random();
      const k = Math.random() < 0.2 ? 0 : Math.floor(Math.random() * NODES);
      const node = `soak-node-${k}`;
      seq++;
      if (r < 0.6) {
        const pod = `pod-${Math.floor(Math.random() * 40)}`;
        const key = wepKey(node, `ns-${k % 3}`, pod);
        if (pods.has(key) && Math.random() < 0.4) { await c.delete().key(key); pods.delete(key); } else {
          const v = (k < nHosts ? hostWep : wepValue)(node, `ns-${k % 3}`, pod, `10.${64 + k}.0.${(seq % 250) + 1}`);
          await c.put(key).value(v);
          pods.set(key, v);
        }
      } else if (r < 0.85) {
        await c.put(blockKey(k)).value(fullBlock(k, node, seq));
      } else {
        const i = Math.floor(Math.random() * 5);
        if (Math.random() < 0.3) await c.delete().key(`/calico/resources/v3/projectcalico.org/bgppeers/soak-peer-${i}`);
        else await c.put(`/calico/resources/v3/projectcalico.org/bgppeers/soak-peer-${i}`).value(peerValue(i));
      }
    };
    for (let loop = 0; loop < 10_000_000 && Date.now() < end; loop++) {
      const now = Date.now();
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
    await check(c, stores, res, log);
    if (hosts.length > 0) await checkHosts(c, hosts, res, log);
    return res;
  } finally {
    for (const s of stores) await s.ds.close();
    for (const h of hosts) h.child.kill('SIGTERM');
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

async function checkHosts(c: Etcd3, hosts: SoakHost[], res: SoakResult, log: (l: string) => void): Promise<void> {
  const diff = (want: Set<string>, have: Set<string>): string => {
    const lack = [...want].filter((p) => !have.has(p));
    const extra = [...have].filter((p) => !want.has(p));
    if (lack.length === 0 && extra.length === 0) return '';
    return `lacks ${lack.length} (${lack.slice(0, 4).join(' ')}), has ${extra.length} too many (${extra.slice(0, 4).join(' ')})`;
  };
  let last: string[] = [];
  // settle: every host's kernel and Loc-RIB reach the datastore's state within 30 s of the churn's end
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
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
  res.hostMismatches = last;
  log(`soak: hosts at the end: ${res.hostRoutes.map((x) => `${x.node} kernel ${x.kernel} / Loc-RIB ${x.locRib} prefixes`).join(', ')}; ${last.length === 0 ? 'all equal the datastore' : last.join('; ')}`);
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
  res.restartsBy.push(res.restarts);
  log(`soak: check ${res.checks}: ${res.ops} changes so far, ${res.mismatches.length} mismatches, RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB, ${fds()} fds`);
}
