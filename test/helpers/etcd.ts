// A real etcd for tests: Debian's etcd binary on loopback, its own ports and a
// data dir in a temp dir (removed on teardown). It can be killed and started
// again on the same data dir, and reached through a TCP proxy the test can cut
// (to make a client lose its connection while etcd itself stays up).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';

export interface TestEtcd {
  endpoint: string;
  /** a client for the test itself (direct, not through the proxy) */
  client: Etcd3;
  dataDir: string;
  /** SIGKILL etcd (the data dir stays) */
  kill(): Promise<void>;
  /** start etcd again on the same data dir and ports */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestTls {
  ca: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in dir. */
export function makeTls(dir: string): TestTls {
  const f = (n: string): string => join(dir, n);
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'ignore' }); };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=skein-test-ca');
  writeFileSync(f('san.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  for (const [name, cn] of [['server', '127.0.0.1'], ['client', 'skein']] as const) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}-key.pem`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '2', '-extfile', f('san.cnf'));
  }
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server-key.pem'), clientCert: f('client.pem'), clientKey: f('client-key.pem') };
}

export async function startEtcd(clientPort: number, peerPort: number, opts: { tls?: TestTls } = {}): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'skein-etcd-'));
  const dataDir = join(dir, 'data');
  const tls = opts.tls;
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let proc: ChildProcess | undefined;
  let stderr = '';
  const clientOptions = (): IOptions => {
    const o: IOptions = { hosts: endpoint, dialTimeout: 1000 };
    if (tls) o.credentials = { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.clientCert), privateKey: readFileSync(tls.clientKey) };
    return o;
  };
  const client = new Etcd3(clientOptions());

  const alive = (): boolean => proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  const kill = async (): Promise<void> => {
    if (!proc || !alive()) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };
  const start = async (): Promise<void> => {
    stderr = '';
    proc = spawn('etcd', [
      '--name', 't', '--data-dir', dataDir,
      '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `t=${peer}`, '--initial-cluster-state', 'new',
      '--heartbeat-interval', '10', '--election-timeout', '50', '--logger', 'zap', '--log-level', 'error',
      ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const deadline = Date.now() + 15_000;
    const probe = new Etcd3(clientOptions());
    try {
      for (;;) {
        try {
          await probe.maintenance.status();
          return;
        } catch (e) {
          if (!alive() || Date.now() > deadline) throw new Error(`etcd did not start: ${stderr || String(e)}`, { cause: e });
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    } finally {
      probe.close();
    }
  };
  const stop = async (): Promise<void> => {
    client.close();
    await kill();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', () => { if (alive()) proc?.kill('SIGKILL'); });
  try {
    await start();
  } catch (e) {
    await stop();
    throw e;
  }
  return { endpoint, client, dataDir, kill, start, stop };
}

/** A TCP forwarder in front of etcd whose connections the test can cut and refuse. */
export interface Proxy {
  endpoint: string;
  /** drop every connection and refuse new ones until resume() */
  cut(): void;
  resume(): void;
  /** stop forwarding (both ways) on every connection, as a SIGSTOPped client would, until unpause() */
  pause(): void;
  unpause(): void;
  /** once this many more bytes have gone from etcd to the client, drop every connection (new ones are accepted) */
  cutAfter(bytes: number): void;
  /** bytes forwarded from etcd to the client so far */
  readonly received: number;
  close(): Promise<void>;
}

export async function startProxy(listenPort: number, targetPort: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let open = true;
  let paused = false;
  let budget = Infinity;
  let received = 0;
  // Forwarded by hand (not pipe()) so that pause() really stops reading and backpressure reaches etcd.
  const forward = (from: Socket, to: Socket, counted: boolean): void => {
    from.on('data', (d: Buffer) => {
      if (counted) {
        received += d.length;
        budget -= d.length;
        if (budget <= 0) { budget = Infinity; proxy.cut(); open = true; return; }
      }
      if (!to.write(d)) { from.pause(); to.once('drain', () => { if (!paused) from.resume(); }); }
    });
  };
  const server: Server = createServer((inbound) => {
    if (!open) { inbound.destroy(); return; }
    const outbound = connect(targetPort, '127.0.0.1');
    sockets.add(inbound);
    sockets.add(outbound);
    const drop = (): void => { inbound.destroy(); outbound.destroy(); sockets.delete(inbound); sockets.delete(outbound); };
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
    forward(inbound, outbound, false);
    forward(outbound, inbound, true);
    if (paused) { inbound.pause(); outbound.pause(); }
  });
  server.listen(listenPort, '127.0.0.1');
  await once(server, 'listening');
  const proxy: Proxy = {
    endpoint: `http://127.0.0.1:${listenPort}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    resume() {
      open = true;
    },
    pause() {
      paused = true;
      for (const s of sockets) s.pause();
    },
    unpause() {
      paused = false;
      for (const s of sockets) s.resume();
    },
    cutAfter(bytes: number) {
      budget = bytes;
    },
    get received() {
      return received;
    },
    async close() {
      proxy.cut();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return proxy;
}

/** Wait until fn() is true (polling), bounded in time; throws with `what` on timeout. */
export async function until(fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A 3-member etcd cluster on loopback, for leader loss: members can be killed and restarted one by one. */
export interface TestEtcdCluster {
  /** every member's client URL */
  endpoints: string[];
  /** member i's client port */
  clientPorts: number[];
  /** a client for the test itself, over every member */
  client: Etcd3;
  /** the index of the member that is leader now (asks each live member); undefined when none answers */
  leader(): Promise<number | undefined>;
  /** SIGKILL member i (its data dir stays) */
  kill(i: number): Promise<void>;
  /** start member i again on its data dir (rejoins the cluster; the others must have quorum) */
  start(i: number): Promise<void>;
  /** start every member that is down, at once (after all were killed: none has quorum alone) */
  startAll(): Promise<void>;
  stop(): Promise<void>;
}

/** Members i = 0..2 use client port clientPort + 4i and peer port peerPort + 4i. */
export async function startEtcdCluster(clientPort: number, peerPort: number): Promise<TestEtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'skein-etcdc-'));
  const n = 3;
  const clientPorts = Array.from({ length: n }, (_, i) => clientPort + 4 * i);
  const endpoints = clientPorts.map((p) => `http://127.0.0.1:${p}`);
  const peers = Array.from({ length: n }, (_, i) => `http://127.0.0.1:${peerPort + 4 * i}`);
  const cluster = peers.map((p, i) => `m${i}=${p}`).join(',');
  const procs: (ChildProcess | undefined)[] = new Array<ChildProcess | undefined>(n).fill(undefined);
  const alive = (i: number): boolean => { const p = procs[i]; return p !== undefined && p.exitCode === null && p.signalCode === null; };
  const spawnMember = (i: number): void => {
    procs[i] = spawn('etcd', [
      '--name', `m${i}`, '--data-dir', join(dir, `m${i}`),
      '--listen-client-urls', endpoints[i] as string, '--advertise-client-urls', endpoints[i] as string,
      '--listen-peer-urls', peers[i] as string, '--initial-advertise-peer-urls', peers[i] as string,
      '--initial-cluster', cluster, '--initial-cluster-state', 'new',
      '--heartbeat-interval', '20', '--election-timeout', '200', '--logger', 'zap', '--log-level', 'error',
    ], { stdio: 'ignore' });
  };
  const healthy = async (i: number, timeoutMs: number): Promise<void> => {
    const probe = new Etcd3({ hosts: endpoints[i] as string, dialTimeout: 1000 });
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        try {
          // a linearizable read: answers only once the member is in a cluster with a leader
          await probe.get('/probe').exec();
          return;
        } catch (e) {
          if (!alive(i) || Date.now() > deadline) throw new Error(`etcd member ${i} did not come up`, { cause: e });
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      probe.close();
    }
  };
  const kill = async (i: number): Promise<void> => {
    const p = procs[i];
    if (p === undefined || !alive(i)) return;
    const exited = once(p, 'exit');
    p.kill('SIGKILL');
    await exited;
  };
  const client = new Etcd3({ hosts: endpoints, dialTimeout: 1000 });
  const stop = async (): Promise<void> => {
    client.close();
    for (let i = 0; i < n; i++) await kill(i);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', () => { for (let i = 0; i < n; i++) if (alive(i)) procs[i]?.kill('SIGKILL'); });
  try {
    for (let i = 0; i < n; i++) spawnMember(i);
    for (let i = 0; i < n; i++) await healthy(i, 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    endpoints, clientPorts, client, kill, stop,
    async startAll(): Promise<void> {
      for (let i = 0; i < n; i++) if (!alive(i)) spawnMember(i);
      for (let i = 0; i < n; i++) await healthy(i, 30_000);
    },
    async start(i: number): Promise<void> {
      if (alive(i)) return;
      spawnMember(i);
      await healthy(i, 30_000);
    },
    async leader(): Promise<number | undefined> {
      for (let i = 0; i < n; i++) {
        if (!alive(i)) continue;
        const probe = new Etcd3({ hosts: endpoints[i] as string, dialTimeout: 1000 });
        try {
          const s = await probe.maintenance.status();
          if (s.leader === s.header.member_id) return i;
        } catch { /* this member does not answer */ } finally {
          probe.close();
        }
      }
      return undefined;
    },
  };
}
