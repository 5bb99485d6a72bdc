// The etcd datastore: Calico's etcd v3 layout (libcalico-go
// lib/backend/etcdv3), read the way Calico's own syncer reads it
// (lib/backend/watchersyncer: one list per resource type, then a watch from
// the listed revision + 1; on a compacted revision, list again and resync).
//
// Exactly once and in order, from the last applied revision: for each key
// range we keep the revision of the last event *applied*; every new watch
// stream (after a break, a stale stream, a lost leader) resumes each range
// from there + 1. Only a compacted start revision forces a re-list, which is
// then reconciled against the model (differences emitted as changes).
import { readFileSync } from 'node:fs';
import type { EtcdConfig } from './daemon.js';
import { EtcdClient, Status, type EtcdClientOptions } from './etcdclient.js';
import { DatastoreError } from './errors.js';
import { IPAM_PREFIX, PLURALS, RESOURCES_PREFIX, decodeEtcd, etcdKey, parseKey, keyId, keyFilter } from './keys.js';
import { Model } from './model.js';
import type { Kind } from './resources.js';
import { Base, type DatastoreScope } from './dsbase.js';
import { WatchStream, type WatchEnd } from './etcdwatch.js';
import type { RangeRequestLite, RangeResponseLite, WatchEvent, WatchKeyValue as KV } from './etcdwire.js';

export interface EtcdDatastoreOptions extends Partial<Pick<EtcdConfig, 'tls' | 'username' | 'password' | 'passwordFile'>>, DatastoreScope {
  endpoints: string[];
  dialTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** deadline for one unary request (a page of the initial list) (ms) */
  requestTimeoutMs?: number;
  /** keys in the first page of each range; later pages are sized from the bytes per key seen (pageBytes) */
  pageSize?: number;
  /** aim for list pages of about this many bytes */
  pageBytes?: number;
  /** the watch stream: progress request interval and how long a silent stream may stay (ms) */
  progressMs?: number;
  staleMs?: number;
  /** gRPC keepalive ping interval and timeout (ms) */
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  /**
   * Read only what concerns this node (what skeind passes): other nodes' WorkloadEndpoints and block affinities and
   * all IPAM blocks are dropped by their key, before their value is decoded (keyConcernsNode), and the
   * WorkloadEndpoints are listed by key only, with just this node's values fetched. Without it, everything is read.
   * `workloadEndpoints: false` (DatastoreScope) lists and watches no WorkloadEndpoint key at all (etcdRanges, watchSpan).
   */
  nodeName?: string | undefined;
}

// The largest gRPC message we accept. gRPC's default, 4 MiB, is what broke both the initial list (a 500-key page of
// full /26 IPAM blocks is ~7 MiB) and a large watch catch-up (issue #14). Pages are sized by bytes (PAGE_BYTES, far
// under this) and watches ask etcd to fragment, so this is a margin for one oversized record (etcd's own
// --max-request-bytes default is 1.5 MiB, so no single value is larger), not the normal case.
const MAX_RECEIVE_BYTES = 16 * 1024 * 1024;
const PAGE_BYTES = 2 * 1024 * 1024;

/** One key range to list; `keysOnly`: list the keys, then fetch the values of those that concern the node. */
export interface ListRange { key: Buffer; end: Buffer; keysOnly?: boolean }

const WEP_PREFIX = `${RESOURCES_PREFIX}${PLURALS.WorkloadEndpoint}/`;

/** The range of every key under `prefix` (which ends in '/'). */
function prefixRange(prefix: string): { key: Buffer; end: Buffer } {
  const key = Buffer.from(prefix);
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] as number) + 1; // '/' + 1 = '0': just past every key under the prefix
  return { key, end };
}

/**
 * The key ranges skein reads: the v3 kinds it knows, block affinities and blocks. Not IPAM handles (100k of them in a
 * large cluster, never needed), Felix status, profiles or policy. For one node (`node`): that node's affinities only,
 * no blocks, and the WorkloadEndpoints by key only (their namespace comes before the name in the key, so no range
 * holds just one node's; the keys of 100k endpoints are ~11 MB where their values are ~100 MB). With
 * `scope.workloadEndpoints` false, no WorkloadEndpoints at all. In key order.
 */
export function etcdRanges(node?: string, scope: DatastoreScope = {}): ListRange[] {
  const weps = scope.workloadEndpoints !== false;
  const prefixes = [
    ...Object.values(PLURALS).map((p) => `${RESOURCES_PREFIX}${p}/`).filter((p) => weps || p !== WEP_PREFIX),
    ...(node === undefined ? [`${IPAM_PREFIX}assignment/`, `${IPAM_PREFIX}host/`] : [`${IPAM_PREFIX}host/${node}/`]),
  ];
  return prefixes.sort().map((p) => (node !== undefined && p === WEP_PREFIX ? { ...prefixRange(p), keysOnly: true } : prefixRange(p)));
}

/**
 * The one key range the watch covers: from the lowest start of `ranges` to the highest end (see EtcdDatastore
 * watchRanges for why one). With `scope.workloadEndpoints` false it must hold no WorkloadEndpoint key, or etcd would
 * still send every endpoint event in the cluster to be dropped here. That holds because `workloadendpoints/` sorts
 * after every other prefix of etcdRanges (the IPAM ones are under `/calico/ipam/`, before `/calico/resources/`, and
 * every other plural of PLURALS sorts before it), so the span ends with the last kind before it. Rather than trust
 * that order, this checks it: a kind added to PLURALS that sorts after `workloadendpoints` throws here (at
 * construction, and in test/config/datastore-noweps) instead of quietly widening the watch over every endpoint.
 */
export function watchSpan(ranges: readonly ListRange[], scope: DatastoreScope = {}): { key: Buffer; end: Buffer } {
  const first = ranges[0];
  if (first === undefined) throw new Error('no key range to watch');
  let { key, end } = first;
  for (const r of ranges) {
    if (Buffer.compare(r.key, key) < 0) key = r.key;
    if (Buffer.compare(r.end, end) > 0) end = r.end;
  }
  if (scope.workloadEndpoints === false) {
    const wep = prefixRange(WEP_PREFIX);
    if (Buffer.compare(key, wep.end) < 0 && Buffer.compare(wep.key, end) < 0) {
      throw new Error(`the watch span ${key.toString()}..${end.toString()} covers ${WEP_PREFIX}, which this reader must not be sent`);
    }
  }
  return { key, end };
}

export class EtcdDatastore extends Base {
  private client: EtcdClient;
  private stream: WatchStream | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  private running?: Promise<void>;
  private readonly pageSize: number;
  private readonly ranges: ListRange[];
  /** the key filter (keyConcernsNode, on the key's bytes: nodeKeyFilter) when reading for one node or without endpoints */
  private readonly wanted: ((key: Uint8Array) => boolean) | undefined;
  // One watch over the span of those ranges, not one per range: etcd orders events globally only within one watch,
  // and one revision then says exactly what has been applied. The span also holds keys skein skips (IPAM handles,
  // other v3 kinds); they cost bandwidth in proportion to churn, not to the datastore's size, and are dropped by
  // decodeEtcd. The list, whose cost grows with the size, reads only the ranges themselves.
  // For one node the span starts at its own affinities (after IPAM blocks and handles), so neither is ever sent.
  // Without WorkloadEndpoints it ends before them (watchSpan), so etcd sends none of their events.
  private readonly watchRanges: { key: Buffer; end: Buffer }[];
  /** per watch range: the revision of the last event applied (or the list's revision) */
  private applied: bigint[] = [];
  /** bumped whenever the current stream or list is abandoned: stale callbacks check it */
  private generation = 0;

  constructor(private readonly opts: EtcdDatastoreOptions) {
    super();
    const node = opts.nodeName;
    const scope: DatastoreScope = { workloadEndpoints: opts.workloadEndpoints };
    this.ranges = etcdRanges(node, scope);
    // Without WorkloadEndpoints no endpoint key is listed or watched; the filter still drops one that comes anyway
    // (a watch span made wider one day), so it is never decoded.
    this.wanted = keyFilter(node, scope);
    this.watchRanges = [watchSpan(this.ranges, scope)];
    this.backoff = opts.backoffMinMs ?? 200;
    this.pageSize = opts.pageSize ?? 200;
    const o: EtcdClientOptions = {
      endpoints: opts.endpoints,
      dialTimeoutMs: opts.dialTimeoutMs ?? 5000,
      // a deadline on unary calls only: the watch stream lives as long as it can
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      maxReceiveBytes: MAX_RECEIVE_BYTES,
      // Keepalive pings as Calico's etcd clients set them (libcalico-go lib/backend/etcdv3/etcdv3.go: 30 s interval,
      // 10 s timeout): a connection whose peer vanished without a FIN (host died, NAT/LB dropped the flow) is
      // closed instead of staying open forever. The watch's progress requests (etcdwatch.ts) notice sooner.
      keepaliveMs: opts.keepaliveMs ?? 30_000,
      keepaliveTimeoutMs: opts.keepaliveTimeoutMs ?? 10_000,
    };
    const read = (file: string, what: string): Buffer => {
      try {
        return readFileSync(file);
      } catch (e) {
        throw new DatastoreError('DATASTORE_CREDENTIALS', `cannot read the etcd ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
      }
    };
    if (opts.tls !== undefined && (opts.tls.ca !== undefined || opts.tls.cert !== undefined)) {
      // Without a CA file, the system's trusted roots are used.
      o.tls = {
        ca: opts.tls.ca !== undefined ? read(opts.tls.ca, 'CA file') : undefined,
        key: opts.tls.key !== undefined ? read(opts.tls.key, 'key file') : undefined,
        cert: opts.tls.cert !== undefined ? read(opts.tls.cert, 'certificate file') : undefined,
      };
    }
    if (opts.username !== undefined) {
      const password = opts.password ?? (opts.passwordFile !== undefined ? read(opts.passwordFile, 'password file').toString('utf8').replace(/\r?\n$/, '') : '');
      o.auth = { username: opts.username, password };
    }
    this.client = new EtcdClient(o);
  }

  start(): this {
    this.running = this.sync();
    return this;
  }

  /** A full resync now (list, diff, re-watch), e.g. on SIGHUP. */
  async reload(): Promise<void> {
    if (this.closed) return;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined; }
    await this.running?.catch(() => undefined);
    this.stopStream();
    this.running = this.sync();
    await this.running;
  }

  private keyOf = (kind: Kind, id: string): string => {
    const r = this.model.get(kind, id);
    return r !== undefined ? etcdKey(r) : `${kind}/${id}`;
  };

  private stopStream(): void {
    this.generation++;
    const s = this.stream;
    this.stream = undefined;
    s?.close();
  }

  private retry(what: () => Promise<void>): void {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const delay = this.backoff * (0.8 + Math.random() * 0.4);
    this.backoff = Math.min(this.backoff * 2, this.opts.backoffMaxMs ?? 30_000);
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.running = what(); }, delay);
  }

  /** List everything, reconcile it with the model, and watch from the next revision. */
  private async sync(): Promise<void> {
    if (this.closed) return;
    this.stopStream();
    const gen = this.generation;
    if (this.snapshotTaken) this.setStatus('resyncing');
    const next = new Model();
    let revision: bigint;
    try {
      revision = await this.list(next);
    } catch (e) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while the list was awaited
      if (gen !== this.generation || this.closed) return;
      this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: `listing the Calico datastore: ${(e as Error).message}` });
      this.retry(() => this.sync());
      return;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while the list was awaited
    if (this.closed || gen !== this.generation) return;
    this.install(next, this.keyOf);
    this.applied = this.watchRanges.map(() => revision);
    // synced as of the list; a watch that then fails says so (disconnected) within staleMs
    this.setStatus('synced', { revision: revision.toString() });
    this.watch();
  }

  /**
   * Each range in pages, every page read at the revision of the first one, so the result is one consistent snapshot.
   * Pages are sized by bytes: the first page of a range has pageSize keys, later ones as many keys as fit in about
   * PAGE_BYTES at the bytes per key seen so far (a full /26 IPAMBlock is ~14 KB, a Node under 1 KB). Returns the
   * snapshot's revision.
   */
  private async list(into: Model): Promise<bigint> {
    let revision: string | undefined;
    const target = this.opts.pageBytes ?? PAGE_BYTES;
    const page = async (start: Buffer, end: Buffer, limit: number, keysOnly: boolean): Promise<{ res: RangeResponseLite; limit: number }> => {
      for (;;) {
        const req: RangeRequestLite = { key: start, rangeEnd: end, limit, keysOnly };
        if (revision !== undefined) req.revision = BigInt(revision);
        try {
          return { res: await this.client.range(req), limit };
        } catch (e) {
          // A page over the receive limit (records far larger than those seen so far): fewer keys, same position.
          if ((e as { code?: number }).code === Status.RESOURCE_EXHAUSTED && limit > 1) { limit = Math.max(1, Math.floor(limit / 4)); continue; }
          throw e;
        }
      }
    };
    for (const r of this.ranges) {
      const keysOnly = r.keysOnly === true;
      /** keysOnly: the keys whose values are fetched after the range */
      const fetch: Buffer[] = [];
      let pending = page(r.key, r.end, keysOnly ? 2000 : this.pageSize, keysOnly);
      for (;;) {
        const { res, limit } = await pending;
        revision ??= res.revision;
        const last = res.kvs[res.kvs.length - 1];
        let next: typeof pending | undefined;
        if (res.more && last !== undefined && !this.closed) {
          // Ask for the next page before decoding this one: etcd serves it while we decode (at 100k
          // WorkloadEndpoints the two take about as long as each other).
          let bytes = 0;
          for (const kv of res.kvs) bytes += kv.key.length + kv.value.length;
          const nextLimit = Math.max(1, Math.min(keysOnly ? 20_000 : 10_000, Math.floor(target / Math.max(1, bytes / res.kvs.length)), limit * 8));
          next = page(Buffer.concat([last.key, Buffer.from([0])]), r.end, nextLimit, keysOnly);
          next.catch(() => undefined); // awaited below; this only keeps a failure from being reported as unhandled meanwhile
        }
        if (keysOnly) {
          for (const kv of res.kvs) if (this.wanted?.(kv.key) !== false) fetch.push(kv.key);
        } else {
          for (const kv of res.kvs) this.decodeInto(into, kv);
        }
        if (next === undefined) break;
        pending = next;
      }
      if (fetch.length > 0) await this.fetchValues(into, fetch, revision);
    }
    if (revision === undefined) throw new Error('etcd returned no revision');
    return BigInt(revision);
  }

  /**
   * The values of `keys` at `revision` (the list's snapshot), in transactions of range reads: one round trip per
   * TXN_OPS keys, under etcd's --max-txn-ops (default 128). A key deleted since the keys were listed cannot be: the
   * reads are at the same revision.
   */
  private async fetchValues(into: Model, keys: Buffer[], revision: string): Promise<void> {
    const TXN_OPS = 100;
    const batches: Buffer[][] = [];
    for (let i = 0; i < keys.length; i += TXN_OPS) batches.push(keys.slice(i, i + TXN_OPS));
    // a few transactions in flight at once; decoded in key order
    const inFlight = 4;
    const results: Promise<RangeResponseLite[]>[] = [];
    const rev = BigInt(revision);
    const issue = (i: number): void => {
      const b = batches[i];
      if (b === undefined) return;
      const p = this.client.txnRanges(b.map((key) => ({ key, revision: rev })));
      p.catch(() => undefined); // awaited below
      results[i] = p;
    };
    for (let i = 0; i < Math.min(inFlight, batches.length); i++) issue(i);
    for (let i = 0; i < batches.length; i++) {
      const res = await (results[i] as Promise<RangeResponseLite[]>);
      issue(i + inFlight);
      for (const op of res) for (const kv of op.kvs) this.decodeInto(into, kv);
    }
  }

  private decodeInto(m: Model, kv: KV): void {
    if (this.wanted?.(kv.key) === false) return; // another node's: neither its key nor its value is ever a string
    const key = kv.key.toString();
    const d = decodeEtcd(key, kv.value.toString());
    if (d === undefined) return;
    for (const i of d.issues) this.report(i);
    if (d.resource !== undefined) m.set(d.resource, key);
    else if (d.kind !== undefined && d.id !== undefined) {
      // invalid: keep the last good version, if there is one
      const old = this.model.get(d.kind, d.id);
      if (old !== undefined) m.set(old, key);
    }
  }

  /** Open a watch stream, each range from its last applied revision + 1. */
  private watch(): void {
    if (this.closed) return;
    this.stopStream();
    const gen = this.generation;
    const ranges = this.watchRanges.map((r, i) => ({ ...r, startRevision: (this.applied[i] as bigint) + 1n }));
    const s = new WatchStream(this.client, ranges, {
      created: () => {
        if (gen !== this.generation) return;
        this.backoff = this.opts.backoffMinMs ?? 200;
        this.setStatus('synced', { revision: this.revision() });
      },
      events: (range, events) => { if (gen === this.generation) this.apply(range, events); },
      end: (end) => { if (gen === this.generation) this.onEnd(end); },
    }, { progressMs: this.opts.progressMs, staleMs: this.opts.staleMs });
    this.stream = s;
    void s.start();
  }

  private revision(): string {
    let max = 0n;
    for (const r of this.applied) if (r > max) max = r;
    return max.toString();
  }

  private onEnd(end: WatchEnd): void {
    this.stream = undefined;
    switch (end.reason) {
      case 'closed': return;
      case 'compacted':
      case 'cancelled': {
        // The history the range needs is gone (compaction), or etcd refused the watch: only a full list can bring the
        // model back in line; it is reconciled with what we have, so nothing is lost or emitted twice.
        const why = end.reason === 'compacted'
          ? `watch from revision ${((this.applied[end.range] ?? 0n) + 1n).toString()} compacted (etcd keeps from ${end.compactRevision}), resyncing`
          : `watch cancelled by etcd, resyncing: ${end.message}`;
        this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: why });
        this.retry(() => this.sync());
        return;
      }
      case 'broken':
      case 'stale':
        this.setStatus(this.snapshotTaken ? 'disconnected' : 'connecting', { lastError: `watch ${end.reason === 'stale' ? 'stale' : 'broken'}, resuming from revision ${this.revision()}: ${end.message}` });
        this.retry(async () => { this.watch(); });
    }
  }

  /** One whole watch response for one range: apply every event, then record the revision as applied. */
  private apply(range: number, events: WatchEvent[]): void {
    if (this.closed) return;
    let rev = this.applied[range] as bigint;
    for (const e of events) {
      const r = BigInt(e.kv.mod_revision);
      // a resumed watch starts after the last applied revision; never apply one twice
      if (r <= (this.applied[range] as bigint)) continue;
      if (e.type === 'Delete') this.onDelete(e.kv);
      else this.onPut(e.kv);
      if (r > rev) rev = r;
    }
    this.applied[range] = rev;
    // in place, not a new status object per watch response (an event of another node's costs no allocation here):
    // the status objects emitted are copies, and readers read it field by field
    this.status.revision = this.revision();
  }

  private onPut(kv: KV): void {
    if (this.wanted?.(kv.key) === false) return; // another node's: neither its key nor its value is ever a string
    const key = kv.key.toString();
    const d = decodeEtcd(key, kv.value.toString());
    if (d === undefined) return;
    for (const i of d.issues) this.report(i);
    if (d.resource === undefined) return; // invalid: keep what we had
    const ev = this.model.set(d.resource, key);
    if (ev) ev.revision = String(kv.mod_revision);
    this.emitChange(ev);
  }

  private onDelete(kv: KV): void {
    if (this.wanted?.(kv.key) === false) return;
    const key = kv.key.toString();
    let info;
    try {
      info = parseKey(key);
    } catch {
      return;
    }
    if (info === undefined) return;
    const { kind, id } = keyId(info);
    const ev = this.model.delete(kind, id, key);
    if (ev) ev.revision = String(kv.mod_revision);
    this.emitChange(ev);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopStream();
    await this.running?.catch(() => undefined);
    this.client.close();
  }
}
