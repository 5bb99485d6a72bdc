// One etcd watch stream of ours, over our own gRPC client (etcdclient.ts). Why not
// etcd3's Watcher (which skeind used before): when its stream breaks (e.g. a
// catch-up batch over gRPC's message limit: RESOURCE_EXHAUSTED), it resumes
// from the revision of the last response *header* it saw, which is the store's
// current revision, not the last event handed over: every revision in between
// was silently skipped (issue #14: 72 of 100 new VMs missing while status said
// "synced"). Here the caller owns the resume point, the revision it last
// *applied* for each range, and every stream attempt starts from that + 1.
//
// One WatchStream is one attempt: it opens a gRPC Watch stream, creates one
// watch per key range (each from its own next revision), delivers whole
// responses (fragments joined), and ends exactly once with a reason. The
// caller (EtcdDatastore) decides whether to retry (broken, stale, no leader)
// or re-list (compacted).
//
// What etcd's own clients do, and Calico with them (libcalico-go
// lib/backend/etcdv3/watcher.go over clientv3):
//   - `hasleader=true` metadata on the stream (clientv3.WithRequireLeader): a
//     member cut off from the raft majority then ends the stream with "no
//     leader" instead of serving a silent, stale watch;
//   - fragment=true, so a revision's events larger than the server's request
//     limit come in several responses instead of one message over the limit;
//   - progress requests: any response, progress or event, proves the stream is
//     alive; none within staleMs means the path is dead (a half-open TCP
//     connection) and the attempt ends as 'stale' well before gRPC keepalive
//     (30 s + 10 s) would notice.
//   - the two messages are encoded and decoded by etcdwire.ts, not etcd3's protobufjs definitions: a host decodes
//     every WorkloadEndpoint change of the cluster and keeps few (issue #16).
//   - a stale stream also gives up its connection (EtcdClient.reset): on a half-open connection a new stream would
//     be as silent as the old one until the keepalive ping's timeout (40 s) closed it.
import type { ClientStream, EtcdClient } from './etcdclient.js';
import { WATCH_PROGRESS_REQUEST, decodeWatchResponse, encodeWatchCreate, type WatchEvent, type WatchResponseLite } from './etcdwire.js';

export interface WatchRange {
  /** first key of the range */
  key: Buffer;
  /** end of the range (exclusive) */
  end: Buffer;
  /** the revision to start at: the last applied revision for this range + 1 */
  startRevision: bigint;
}

export type WatchEnd =
  | { reason: 'compacted'; range: number; compactRevision: string }
  | { reason: 'cancelled'; range: number; message: string }
  | { reason: 'broken'; message: string }
  | { reason: 'stale'; message: string }
  | { reason: 'closed' };

export interface WatchHandlers {
  /** every watch was created: the stream is serving */
  created(): void;
  /** one whole response for one range (fragments joined), in order; apply before returning */
  events(range: number, events: WatchEvent[]): void;
  /** anything was received (a progress response included) */
  alive?(): void;
  /** the attempt is over (called once) */
  end(end: WatchEnd): void;
}

export interface WatchStreamOptions {
  /** send a progress request this often (ms) */
  progressMs?: number | undefined;
  /** no response at all for this long (ms) ends the attempt as stale */
  staleMs?: number | undefined;
}

const WATCH_METHOD = '/etcdserverpb.Watch/Watch';

export class WatchStream {
  private stream: ClientStream | undefined;
  private ended = false;
  private readonly pending = new Map<number, WatchEvent[]>();
  private createdCount = 0;
  private lastReceived = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly client: EtcdClient, private readonly ranges: readonly WatchRange[], private readonly h: WatchHandlers, private readonly opts: WatchStreamOptions = {}) {}

  async start(): Promise<void> {
    try {
      this.stream = await this.client.stream(WATCH_METHOD, { hasleader: 'true' }, {
        message: (msg) => { this.onData(decodeWatchResponse(msg)); },
        end: (e) => { this.finish({ reason: 'broken', message: e?.message ?? 'etcd ended the watch stream' }); },
      });
    } catch (e) {
      this.finish({ reason: 'broken', message: (e as Error).message });
      return;
    }
    if (this.ended) { this.stream.cancel(); return; }
    const s = this.stream;
    this.ranges.forEach((r, i) => {
      // watch_id chosen by us (etcd >= 3.4): responses name the range directly. Ids start at 1 (0 means "assign one").
      s.write(encodeWatchCreate({ key: r.key, rangeEnd: r.end, startRevision: r.startRevision, watchId: i + 1, fragment: true, progressNotify: true }));
    });
    const progressMs = this.opts.progressMs ?? 3000;
    const staleMs = this.opts.staleMs ?? 10_000;
    this.lastReceived = Date.now();
    this.timer = setInterval(() => {
      if (this.ended) return;
      const quiet = Date.now() - this.lastReceived;
      if (quiet > staleMs) {
        const message = `no response from etcd on the watch stream for ${Math.round(quiet / 1000)} s (progress requests unanswered)`;
        this.finish({ reason: 'stale', message });
        this.client.reset(message);
        return;
      }
      s.write(WATCH_PROGRESS_REQUEST);
    }, progressMs);
    this.timer.unref();
  }

  private onData(res: WatchResponseLite): void {
    if (this.ended) return;
    this.lastReceived = Date.now();
    this.h.alive?.();
    const range = res.watchId - 1;
    if (res.compactRevision !== '0') {
      this.finish({ reason: 'compacted', range, compactRevision: res.compactRevision });
      return;
    }
    if (res.canceled) {
      this.finish({ reason: 'cancelled', range, message: res.cancelReason || 'watch cancelled by etcd' });
      return;
    }
    if (res.created) {
      if (range >= 0 && range < this.ranges.length && ++this.createdCount === this.ranges.length) this.h.created();
    }
    if (range < 0 || range >= this.ranges.length) return; // a progress response for the whole stream (watch_id -1)
    if (res.events.length === 0 && !res.fragment) return;
    let batch = res.events;
    const held = this.pending.get(range);
    if (held !== undefined) { held.push(...res.events); batch = held; }
    if (res.fragment) {
      // more of this response follows: nothing is applied until it is whole
      if (held === undefined) this.pending.set(range, [...res.events]);
      return;
    }
    this.pending.delete(range);
    if (batch.length > 0) this.h.events(range, batch);
  }

  private finish(end: WatchEnd): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    this.stream?.cancel();
    this.h.end(end);
  }

  /** End this attempt (no reconnect is the caller's business). */
  close(): void {
    this.finish({ reason: 'closed' });
  }
}
