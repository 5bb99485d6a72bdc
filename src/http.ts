// The HTTP endpoint for operators and orchestrators (docs/contract.md, "Watching it run"): GET /metrics (Prometheus text),
// /livez (200 while the event loop runs and is not stalling) and /readyz (200 once the datastore is synced, the
// FIB reconciled and, during a start-up window, the configured peers are up). Plain node:http; loopback by
// default, because the metrics name peers and prefixes.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import type { Logger } from './log.js';

export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9180';

/** What the server needs from the metrics module. */
export interface MetricsSource {
  scrape(): Promise<{ contentType: string; body: string }>;
}

export interface ReadinessReport {
  ready: boolean;
  /** why not, one line each, e.g. "datastore not synced", "waiting for peers: 192.0.2.11" */
  missing: string[];
  /**
   * true when only soft conditions are missing (see ReadinessGate.setBlocker): enough to tell systemd the start is
   * done (READY=1), though /readyz still answers 503. Absent means the same as `ready`.
   */
  started?: boolean;
}

export interface LivenessReport {
  live: boolean;
  detail: string;
}

export interface HttpServerOptions {
  /** "host:port", "[v6]:port" or ":port" (all addresses); default 127.0.0.1:9180 */
  listen?: string;
  metrics: MetricsSource;
  readiness: () => ReadinessReport;
  liveness?: () => LivenessReport;
  log?: Logger;
}

export interface HttpEndpoint {
  readonly server: Server;
  address(): AddressInfo;
  close(): Promise<void>;
}

/** Parses "127.0.0.1:9180", "[::1]:9180", ":9180". Throws a plain message for an operator on anything else. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  const host = m ? (m[1] ?? m[2] ?? '') : '';
  if (!m || port > 65535) throw new Error(`metrics.listen: expected "address:port" (e.g. "127.0.0.1:9180" or "[::1]:9180"), got "${listen}"`);
  if (host !== '' && isIP(host) === 0 && host !== 'localhost') {
    throw new Error(`metrics.listen: "${host}" is not an IP address`);
  }
  return { host: host === '' ? '::' : host, port };
}

/** Starts the server; resolves once it listens (rejects with the listen error, e.g. EADDRINUSE). */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpEndpoint> {
  const { host, port } = parseListen(options.listen ?? DEFAULT_METRICS_LISTEN);
  const server = createServer((req, res) => {
    handle(req, res, options).catch((e: unknown) => {
      options.log?.error('http request failed', { path: req.url, err: e });
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  // Scrapers keep connections alive; don't let an idle one hold the process at shutdown (see close()).
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => options.log?.error('http server error', { err: e }));
  return {
    server,
    address: () => server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, o: HttpServerOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const known = path === '/metrics' || path === '/livez' || path === '/readyz';
  if (!known) return send(res, 404, 'not found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'method not allowed\n');
  }
  if (path === '/metrics') {
    const { contentType, body } = await o.metrics.scrape();
    return send(res, 200, body, contentType, req.method === 'HEAD');
  }
  if (path === '/livez') {
    const l = o.liveness?.() ?? { live: true, detail: 'event loop running' };
    return send(res, l.live ? 200 : 503, `${l.live ? 'ok' : 'not live'}: ${l.detail}\n`, undefined, req.method === 'HEAD');
  }
  const r = o.readiness();
  const body = r.ready ? 'ok\n' : `not ready: ${r.missing.join('; ')}\n`;
  return send(res, r.ready ? 200 : 503, body, undefined, req.method === 'HEAD');
}

function send(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8', headOnly = false): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(headOnly ? undefined : body);
}

// ---------------------------------------------------------------------------------------------------------------
// Liveness: a timer that measures how late it fires. An answered /livez already shows that the loop turns; this
// adds "but it is stalling": a loop that was blocked for longer than `maxBlockedMs` within the last `windowMs`
// is reported not live, so a supervisor restarts a daemon that is wedged in long synchronous work.

export interface LoopMonitorOptions {
  intervalMs?: number;
  maxBlockedMs?: number;
  windowMs?: number;
  now?: () => number;
}

export class LoopMonitor {
  readonly #intervalMs: number;
  readonly #maxBlockedMs: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #expected = 0;
  #worstMs = 0;
  #worstAt = 0;

  constructor(o: LoopMonitorOptions = {}) {
    this.#intervalMs = o.intervalMs ?? 500;
    this.#maxBlockedMs = o.maxBlockedMs ?? 10_000;
    this.#windowMs = o.windowMs ?? 30_000;
    this.#now = o.now ?? (() => performance.now());
  }

  start(): this {
    if (this.#timer) return this;
    this.#expected = this.#now() + this.#intervalMs;
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#timer.unref();
    return this;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = this.#now();
    const late = Math.max(0, now - this.#expected);
    if (late >= this.#worstMs || now - this.#worstAt > this.#windowMs) {
      this.#worstMs = late;
      this.#worstAt = now;
    }
    this.#expected = now + this.#intervalMs;
  }

  /** Also counts a block still in progress up to now (a timer that is overdue right now). */
  check(): LivenessReport {
    const now = this.#now();
    const overdue = this.#timer ? Math.max(0, now - this.#expected) : 0;
    const recent = now - this.#worstAt <= this.#windowMs ? this.#worstMs : 0;
    const worst = Math.max(recent, overdue);
    const live = worst <= this.#maxBlockedMs;
    return { live, detail: live ? 'event loop running' : `event loop blocked for ${Math.round(worst)} ms (limit ${this.#maxBlockedMs} ms)` };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Readiness. Ready when (1) the datastore is synced, (2) the FIB is reconciled (or disabled), and (3) during a
// start-up window, every configured peer is Established; after the window the peers have had their chance and
// no longer hold readiness back — unless `requirePeerAfterStartup`, which (like calico-node -bird-ready) then
// asks for at least one Established peer when there are peers at all. A node with no peers is ready.

export interface ReadinessOptions {
  /** how long after start a configured peer that is not Established holds readiness back; default 60 s */
  startupWindowMs?: number;
  /** false when fib.enabled is false: nothing to reconcile */
  fibEnabled?: boolean;
  requirePeerAfterStartup?: boolean;
  now?: () => number;
}

export class ReadinessGate {
  readonly #deadline: number;
  readonly #fibEnabled: boolean;
  readonly #requirePeer: boolean;
  readonly #now: () => number;
  #datastoreSynced = false;
  #fibReconciled = false;
  readonly #peers = new Map<string, boolean>();
  /**
   * how many of #peers are not Established, kept as they change: each of a reflector's hundreds of sessions
   * calls setPeerEstablished as it comes up, and the count lets #changed decide without a pass over every peer
   */
  #down = 0;
  readonly #blockers = new Map<string, string>();
  readonly #soft = new Set<string>();
  #wasReady = false;
  #wasStarted = false;
  readonly #listeners: ((r: ReadinessReport) => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(o: ReadinessOptions = {}) {
    this.#now = o.now ?? Date.now;
    const window = o.startupWindowMs ?? 60_000;
    this.#deadline = this.#now() + window;
    this.#fibEnabled = o.fibEnabled ?? true;
    this.#requirePeer = o.requirePeerAfterStartup ?? false;
    // At the deadline, waiting peers stop counting: re-evaluate then so the change is announced (sd_notify).
    if (o.now === undefined) {
      this.#timer = setTimeout(() => this.#changed(), window + 1);
      this.#timer.unref();
    }
  }

  setDatastoreSynced(synced: boolean): void {
    this.#datastoreSynced = synced;
    this.#changed();
  }
  setFibReconciled(reconciled: boolean): void {
    this.#fibReconciled = reconciled;
    this.#changed();
  }
  /** The peers the node should have now; peers not listed are forgotten. */
  setPeers(addresses: readonly string[]): void {
    const keep = new Set(addresses);
    for (const [a, up] of [...this.#peers]) {
      if (keep.has(a)) continue;
      this.#peers.delete(a);
      if (!up) this.#down--;
    }
    for (const a of addresses) {
      if (this.#peers.has(a)) continue;
      this.#peers.set(a, false);
      this.#down++;
    }
    this.#changed();
  }
  /**
   * Any other condition that keeps the node unready, by name: `reason` is the text /readyz shows (e.g.
   * "graceful restart in progress", "cluster datastore not ready"); undefined clears it. A soft blocker makes
   * /readyz fail but does not hold back the start (`started`): a condition that may last (a route the kernel keeps
   * refusing) must not make a supervisor kill and restart the daemon in a loop.
   */
  setBlocker(name: string, reason: string | undefined, o: { soft?: boolean } = {}): void {
    if (reason === undefined) this.#blockers.delete(name);
    else this.#blockers.set(name, reason);
    if (reason !== undefined && o.soft) this.#soft.add(name);
    else this.#soft.delete(name);
    this.#changed();
  }
  setPeerEstablished(address: string, established: boolean): void {
    const was = this.#peers.get(address);
    if (was === undefined) return;
    if (was === established) return; // nothing changed: no flip to look for
    this.#peers.set(address, established);
    this.#down += established ? -1 : 1;
    this.#changed();
  }

  check(): ReadinessReport {
    const hard: string[] = [];
    const soft: string[] = [];
    if (!this.#datastoreSynced) hard.push('datastore not synced');
    if (this.#fibEnabled && !this.#fibReconciled) hard.push('fib not reconciled');
    for (const [name, reason] of this.#blockers) (this.#soft.has(name) ? soft : hard).push(reason);
    const down = [...this.#peers].filter(([, up]) => !up).map(([a]) => a);
    if (this.#now() < this.#deadline) {
      if (down.length > 0) hard.push(`waiting for peers: ${down.join(', ')}`);
    } else if (this.#requirePeer && this.#peers.size > 0 && down.length === this.#peers.size) {
      hard.push('no peer established');
    }
    const missing = [...hard, ...soft];
    return { ready: missing.length === 0, missing, started: hard.length === 0 };
  }

  /** Called with the new report whenever readiness or `started` flips (e.g. to send READY=1 to systemd once). */
  onChange(listener: (r: ReadinessReport) => void): void {
    this.#listeners.push(listener);
  }

  /** Re-evaluates now (for a clock that tests advance). */
  poll(): void {
    this.#changed();
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }

  /**
   * check()'s two answers without its texts (the peers' list among them): O(blockers), so a session coming up
   * among hundreds costs no walk of the others (issue 16: 500 reflector clients made start-up O(peers²)).
   */
  #flags(): { ready: boolean; started: boolean } {
    let hard = !this.#datastoreSynced || (this.#fibEnabled && !this.#fibReconciled);
    let soft = false;
    for (const name of this.#blockers.keys()) {
      if (this.#soft.has(name)) soft = true;
      else hard = true;
    }
    if (this.#now() < this.#deadline) hard ||= this.#down > 0;
    else if (this.#requirePeer && this.#peers.size > 0 && this.#down === this.#peers.size) hard = true;
    return { ready: !hard && !soft, started: !hard };
  }

  #changed(): void {
    const f = this.#flags();
    if (f.ready === this.#wasReady && f.started === this.#wasStarted) return;
    const r = this.check();
    this.#wasReady = r.ready;
    this.#wasStarted = r.started ?? r.ready;
    for (const l of this.#listeners) l(r);
  }
}
