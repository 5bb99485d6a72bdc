// Applying the controller's diffs (src/controller/) to the running parts: peers to the speaker, announcements to
// the speaker, blackholes and workload device routes to the route table, and the per-peer metric labels. Diffs are
// applied one after another, in the order they came: a peer's options need its password, which is read from a
// file (async), and a later diff must not overtake an earlier one.
import type { PeerOptions, Speaker } from '../../bgp/index.js';
import { resolvePassword, type DaemonConfig } from '../../config/index.js';
import { DESCRIPTIVE_PEER_FIELDS, type ControllerDiff, type DesiredPeer, type NodeController, type Origination } from '../controller/index.js';
import type { ReadinessGate } from '../http.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { originationAttributes, peerOptionsFor, type SpeakerIdentity } from './mapping.js';
import type { PolicyWiring } from './policy.js';
import type { RouteTable } from './routes.js';

/** Does this diff change nothing here (another node's workload, say)? */
export function diffIsEmpty(d: ControllerDiff): boolean {
  const empty = (x: { added: unknown[]; changed: unknown[]; removed: unknown[] }): boolean => x.added.length === 0 && x.changed.length === 0 && x.removed.length === 0;
  return d.ready === undefined && empty(d.peers) && empty(d.announce) && empty(d.blackholes) && empty(d.deviceRoutes);
}

export interface ApplyHost {
  cfg: () => DaemonConfig;
  log: Logger;
  metrics: Metrics;
  readiness: ReadinessGate;
  controller: NodeController;
  policy: PolicyWiring;
  routes: RouteTable;
  speaker: () => Speaker | undefined;
  /** the AS the speaker would use if none runs yet */
  identityAsn: () => number | undefined;
  stopping: () => boolean;
  /** replace the speaker (its identity changed); it re-adds every peer and announcement itself */
  restartSpeaker: (id: SpeakerIdentity) => Promise<void>;
  /** a peer was removed: the start-up sweep stops waiting for it */
  peerRemoved: (address: string) => void;
  /** a diff was applied with the ClusterInformation gate open */
  opened: () => void;
  /** a diff was applied: re-arm the live-migration watches */
  migrationSync: () => void;
}

export class DiffApplier {
  readonly #h: ApplyHost;
  /** peer operations (password reads are async) run one after another, in the order the diffs came */
  #queue: Promise<void> = Promise.resolve();

  constructor(h: ApplyHost) {
    this.#h = h;
  }

  /** Apply a diff after every earlier one; `initial` for the first snapshot's, `restart` to replace the speaker first. */
  apply(diff: ControllerDiff, initial: boolean, restart?: SpeakerIdentity): Promise<void> {
    return this.#enqueue(() => this.#apply(diff, initial, restart));
  }

  /** Give every peer whose rule lists changed its new ones (the speaker re-evaluates exports and refreshes imports). */
  reapplyRules(): void {
    void this.#enqueue(async () => {
      const h = this.#h;
      const speaker = h.speaker();
      if (!speaker) return;
      for (const p of h.controller.state.peers) {
        const rules = h.policy.rulesFor(p.address, p.filters);
        if (!h.policy.changed(p.address, rules) || speaker.peerInfo(p.address) === null) continue;
        const opts = await this.peerOptions(p);
        if (!opts) continue;
        h.log.info('routing policy changed for peer: applied without a reset', { peer: p.address, filters: p.filters });
        try {
          speaker.updatePeer(opts);
        } catch (e) {
          h.log.warn('changing peer policy failed', { peer: p.address, err: e });
        }
      }
    });
  }

  /** Re-read the password of every peer that has one (the speaker resets a peer only when its key really changed). */
  async refreshPasswords(): Promise<void> {
    const withPassword = this.#h.controller.state.peers.filter((p) => p.password !== undefined);
    if (withPassword.length === 0) return;
    const none = { added: [], changed: [], removed: [] };
    await this.apply({
      peers: { added: [], removed: [], changed: withPassword.map((p) => ({ key: p.key, before: p, after: p, fields: ['password'] })) },
      announce: none,
      blackholes: none,
      deviceRoutes: none,
    }, false);
  }

  /** The speaker's options for a peer; the MD5 password is read from its secret (and never logged). */
  async peerOptions(p: DesiredPeer): Promise<PeerOptions | undefined> {
    const h = this.#h;
    const cfg = h.cfg();
    let md5Key: Buffer | undefined;
    if (p.password !== undefined) {
      try {
        const secret = await resolvePassword(p.password, cfg.secretsDir);
        md5Key = Buffer.from(secret.reveal(), 'utf8');
      } catch (e) {
        // Without its key the session cannot come up (the peer drops unsigned segments): say why, skip it.
        h.log.error('BGP password unavailable; peer not configured', { peer: p.address, reason: (e as Error).message });
        return undefined;
      }
    }
    const llgr = cfg.bgp.longLivedGracefulRestart;
    const llst = llgr ? (llgr.peers[p.address] ?? llgr.staleTime) : 0;
    const rules = h.policy.rulesFor(p.address, p.filters);
    h.policy.changed(p.address, rules);
    return peerOptionsFor(p, {
      ...(rules !== undefined ? { rules } : {}),
      localAsn: h.speaker()?.localAsn ?? h.identityAsn() ?? 0,
      addPaths: cfg.bgp.addPaths,
      ...(cfg.bgp.maxPrefixes ? { maxPrefixes: cfg.bgp.maxPrefixes } : {}),
      ...(md5Key ? { md5Key } : {}),
      ...(llst > 0 ? { longLivedStaleTime: llst } : {}),
    });
  }

  /** The up gauge's labels: the peer's name (BGPPeer, or Calico's Mesh_<address>), AS and type. */
  peerLabels(p: DesiredPeer): void {
    const h = this.#h;
    h.metrics.peerLabels(p.address, { name: p.name, asn: p.peerAS, type: p.type });
    const mp = h.cfg().bgp.maxPrefixes;
    if (mp) {
      // config/daemon.ts: peers[address] is that peer's limit for each family, else ipv4/ipv6, else limit.
      const own = mp.peers[p.address];
      h.metrics.prefixLimit(p.address, 'ipv4-unicast', own ?? mp.ipv4 ?? mp.limit);
      h.metrics.prefixLimit(p.address, 'ipv6-unicast', own ?? mp.ipv6 ?? mp.limit);
    }
  }

  originate(o: Origination, quiet: boolean): void {
    const log = this.#h.log;
    try {
      this.#h.speaker()?.originate(o.prefix, originationAttributes(o));
      if (!quiet) log.info('announcing', { prefix: o.prefix, kind: o.kind });
      else log.debug('announcing', { prefix: o.prefix, kind: o.kind });
    } catch (e) {
      log.warn('cannot announce', { prefix: o.prefix, err: e });
    }
  }

  #enqueue(run: () => Promise<void>): Promise<void> {
    const p = this.#queue.then(run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  async #apply(diff: ControllerDiff, initial: boolean, restart?: SpeakerIdentity): Promise<void> {
    const h = this.#h;
    if (!h.speaker() || h.stopping()) return;
    let d = diff;
    if (restart) {
      // The new speaker gets every peer and announcement of the current state; the rest of the diff still applies.
      await h.restartSpeaker(restart);
      const none = { added: [], changed: [], removed: [] };
      d = { ...diff, peers: none, announce: none };
    }
    const speaker = h.speaker()!;
    const log = h.log;
    const ready = h.controller.state.ready;
    if (d.ready !== undefined || initial) {
      if (!ready) log.warn('ClusterInformation datastoreReady is false: nothing is announced or programmed until it is true');
      else if (d.ready === true) log.info('ClusterInformation datastoreReady is true: announcing and programming');
      h.readiness.setBlocker('cluster', ready ? undefined : 'cluster datastore not ready (ClusterInformation datastoreReady false)');
    }
    await this.#applyPeers(speaker, d.peers, initial);
    this.#applyAnnouncements(speaker, d, initial, ready);
    this.#applyKernelRoutes(d, initial);
    h.routes.setOpen(ready);
    if (ready) h.opened();
    h.migrationSync();
  }

  /** Peers: removals, then changes, then additions (the controller's order). */
  async #applyPeers(speaker: Speaker, peers: ControllerDiff['peers'], initial: boolean): Promise<void> {
    const h = this.#h;
    const log = h.log;
    for (const p of peers.removed) {
      log.info('peer removed', { peer: p.address, type: p.type, name: p.name });
      try {
        speaker.removePeer(p.address);
      } catch (e) {
        log.warn('removing peer failed', { peer: p.address, err: e });
      }
      h.metrics.removePeer(p.address);
      h.peerRemoved(p.address);
      h.policy.forget(p.address);
    }
    for (const c of peers.changed) {
      const descriptive = c.fields.every((f) => DESCRIPTIVE_PEER_FIELDS.includes(f));
      const opts = await this.peerOptions(c.after);
      if (!opts) continue;
      log.info(descriptive ? 'peer description changed' : 'peer changed', { peer: c.key, fields: c.fields });
      try {
        // The speaker resets the session only when a session parameter changed (bgp/speaker sessionKey). A
        // peer skipped before (its password could not be read) is added now.
        if (speaker.peerInfo(opts.address) === null) speaker.addPeer(opts);
        else speaker.updatePeer(opts);
      } catch (e) {
        log.warn('changing peer failed', { peer: c.key, err: e });
      }
    }
    for (const p of [...peers.changed.map((c) => c.after), ...peers.added]) this.peerLabels(p);
    for (const p of peers.added) {
      const opts = await this.peerOptions(p);
      if (!opts) continue;
      log.info('peer added', { peer: p.address, asn: p.peerAS, type: p.type, name: p.name, passive: p.passive });
      try {
        speaker.addPeer(opts);
      } catch (e) {
        log.warn('adding peer failed', { peer: p.address, err: e });
      }
    }
    if (!initial) h.readiness.setPeers(h.controller.state.peers.map((p) => p.address));
  }

  /** Announcements: only while the gate is open. */
  #applyAnnouncements(speaker: Speaker, d: ControllerDiff, initial: boolean, ready: boolean): void {
    const h = this.#h;
    const state = h.controller.state;
    if (d.ready === false) for (const o of state.announce) speaker.withdraw(o.prefix);
    if (ready) {
      const full = initial || d.ready === true;
      const announce = full ? state.announce : [...d.announce.changed.map((c) => c.after), ...d.announce.added];
      for (const o of d.announce.removed) {
        h.log.info('withdrawing', { prefix: o.prefix, kind: o.kind });
        speaker.withdraw(o.prefix);
      }
      for (const o of announce) this.originate(o, full);
    }
    const n = { block: 0, borrowed: 0, kernel: 0, service: 0 };
    if (state.ready) for (const o of state.announce) n[o.kind]++;
    for (const k of ['block', 'borrowed', 'kernel', 'service'] as const) h.metrics.originations(k, n[k]);
  }

  /** Kernel routes: the table holds them whatever the gate; it writes only while open. */
  #applyKernelRoutes(d: ControllerDiff, initial: boolean): void {
    const h = this.#h;
    const routes = h.routes;
    const wr = h.cfg().fib.workloadRoutes;
    for (const b of d.blackholes.removed) routes.setBlackhole(b.prefix, false);
    for (const b of [...d.blackholes.changed.map((c) => c.after), ...d.blackholes.added]) routes.setBlackhole(b.prefix, true);
    for (const r of d.deviceRoutes.removed) {
      if (wr) routes.setDevice(r.prefix, null);
      h.log.info('workload route removed', { prefix: r.prefix, dev: r.interface, workload: r.workload });
    }
    for (const r of [...d.deviceRoutes.changed.map((c) => c.after), ...d.deviceRoutes.added]) {
      if (wr) routes.setDevice(r.prefix, r.interface);
      if (!initial) h.log.info('workload route', { prefix: r.prefix, dev: r.interface, workload: r.workload });
    }
  }
}
