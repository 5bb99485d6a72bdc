// The node controller: from Calico's resources (config's Model) to what this
// node should run — BGP peerings, announcements, blackholes and workload device
// routes — as plain data, and the minimal difference from the last state so
// the daemon touches only what changed (a session is reset only for a change
// that concerns it; a route is replaced only when it differs).
//
// Derivation is pure and recomputes from the whole Model (cheap: see
// bench/controller.ts); the wrapper only diffs. Results are sorted, so the
// same Model always yields the same state and the same diff. The two changes a
// host sees most, its own pods coming and going and the kernel routes it learns
// (fib.learn), re-derive only the prefixes they touch: OriginDerivation keeps
// the Model's part between them, and each rule concerns one prefix at a time.
import { Model, type ChangeEvent, type WorkloadEndpoint } from '../../config/index.js';
import { comparePeers, derivePeersIn, PeerContext, type DesiredPeer } from './peers.js';
import { byPrefix, deriveOriginations, OriginDerivation, type Blackhole, type DeviceRoute, type KernelOrigin, type Origination } from './originate.js';
import { blackholeEquality, deviceRouteEquality, originationEquality, peerEquality, type ShapeEquality } from './equal.js';
import { DEFAULT_CONVERGENCE_MS, MigrationTracker, endpointId, migrationRoles, type MigrationState } from './migration.js';

export {
  derivePeers, derivePeersIn, PeerContext, protocolName, comparePeers, DEFAULT_AS,
  type DesiredPeer, type PeerType, type PeerSource, type Reflection,
} from './peers.js';
export { kernelPolicy, type KernelPolicy, type KernelDecision } from './kernel.js';
export {
  migrationRoles, MigrationTracker, BIRD_INT_MAX, BIRD_DEFAULT_LOCAL_PREF, kernelMetricOf, DEFAULT_ELEVATED_ROUTE_PRIORITY, DEFAULT_NORMAL_ROUTE_PRIORITY,
  DEFAULT_CONVERGENCE_MS, type MigrationRole, type MigrationState,
} from './migration.js';
export {
  deriveOriginations, OriginDerivation, type Origination, type OriginKind, type Blackhole, type DeviceRoute, type Originations, type KernelOrigin,
} from './originate.js';

export interface ControllerState {
  /** ClusterInformation's datastoreReady gate (Model.datastoreReady): until true the daemon announces and programs nothing */
  ready: boolean;
  peers: DesiredPeer[];
  announce: Origination[];
  blackholes: Blackhole[];
  deviceRoutes: DeviceRoute[];
}

export interface Change<T> {
  key: string;
  before: T;
  after: T;
  /** the fields whose values differ, sorted */
  fields: string[];
}

export interface SetDiff<T> {
  added: T[];
  changed: Change<T>[];
  removed: T[];
}

export interface ControllerDiff {
  /** set when the readiness gate flipped */
  ready?: boolean;
  peers: SetDiff<DesiredPeer>;
  announce: SetDiff<Origination>;
  blackholes: SetDiff<Blackhole>;
  deviceRoutes: SetDiff<DeviceRoute>;
}

/**
 * Peer fields that only describe a peering (for `skeinctl status`); a change
 * limited to these needs no session reset. Every other field is part of the
 * session's configuration.
 */
export const DESCRIPTIVE_PEER_FIELDS: readonly string[] = ['name', 'type', 'sources', 'peerNode', 'reflection'];

/**
 * Derive the whole state of one node from a Model (and the live-migration states of its endpoints, and the routes
 * learned from the kernel).
 */
export function deriveState(model: Model, nodeName: string, migration?: ReadonlyMap<string, MigrationState>,
  learned?: readonly KernelOrigin[]): ControllerState {
  const o = deriveOriginations(model, nodeName, migration, learned);
  return {
    ready: model.datastoreReady(),
    peers: derivePeersIn(new PeerContext(model), nodeName),
    announce: o.announce,
    blackholes: o.blackholes,
    deviceRoutes: o.deviceRoutes,
  };
}

function diffSet<T extends { key: string }>(before: T[], after: T[], eq: ShapeEquality<T>): SetDiff<T> {
  const old = new Map(before.map((x) => [x.key, x]));
  const now = new Map(after.map((x) => [x.key, x]));
  const out: SetDiff<T> = { added: [], changed: [], removed: [] };
  // Both lists are sorted; walking them in order keeps the diff sorted too.
  for (const x of before) if (!now.has(x.key)) out.removed.push(x);
  for (const x of after) {
    const b = old.get(x.key);
    if (b === undefined) { out.added.push(x); continue; }
    // the shape's own field-by-field equality (src/controller/equal.ts), not a generic deep one
    if (eq.equal(b, x)) continue;
    out.changed.push({ key: x.key, before: b, after: x, fields: eq.differing(b, x) });
  }
  return out;
}

/** The difference between two states: apply `removed`, then `changed`, then `added`. */
export function diffStates(before: ControllerState, after: ControllerState): ControllerDiff {
  const d: ControllerDiff = {
    peers: diffSet(before.peers, after.peers, peerEquality),
    announce: diffSet(before.announce, after.announce, originationEquality),
    blackholes: diffSet(before.blackholes, after.blackholes, blackholeEquality),
    deviceRoutes: diffSet(before.deviceRoutes, after.deviceRoutes, deviceRouteEquality),
  };
  if (before.ready !== after.ready) d.ready = after.ready;
  return d;
}

export function isEmptyDiff(d: ControllerDiff): boolean {
  return d.ready === undefined && [d.peers, d.announce, d.blackholes, d.deviceRoutes]
    .every((s) => s.added.length === 0 && s.changed.length === 0 && s.removed.length === 0);
}

/**
 * Apply a diff to a state (what a consumer mirroring the state does); returns a
 * new state in the derivation's order. applyDiff(a, diffStates(a, b)) equals b.
 */
export function applyDiff(state: ControllerState, d: ControllerDiff): ControllerState {
  const apply = <T extends { key: string }>(list: T[], s: SetDiff<T>, cmp: (a: T, b: T) => number): T[] => {
    const m = new Map(list.map((x) => [x.key, x]));
    for (const x of s.removed) m.delete(x.key);
    for (const c of s.changed) m.set(c.key, c.after);
    for (const x of s.added) m.set(x.key, x);
    return [...m.values()].sort(cmp);
  };
  return {
    ready: d.ready ?? state.ready,
    peers: apply(state.peers, d.peers, comparePeers),
    announce: apply(state.announce, d.announce, byPrefix),
    blackholes: apply(state.blackholes, d.blackholes, byPrefix),
    deviceRoutes: apply(state.deviceRoutes, d.deviceRoutes, byPrefix),
  };
}

const none = <T>(): SetDiff<T> => ({ added: [], changed: [], removed: [] });
const emptyDiff = (): ControllerDiff => ({ peers: none(), announce: none(), blackholes: none(), deviceRoutes: none() });

/** Kinds whose changes can alter what `node` derives, given one change event. */
function concerns(ev: ChangeEvent, node: string): boolean {
  switch (ev.kind) {
    case 'IPAMBlock': return false; // affinities, not blocks, decide what we own
    case 'BGPFilter': return false; // peers name filters; their rules are the engine's business
    case 'WorkloadEndpoint': {
      const r = (ev.resource ?? ev.previous) as { spec: { node: string } } | undefined;
      const p = ev.previous as { spec: { node: string } } | undefined;
      return r?.spec.node === node || p?.spec.node === node;
    }
    case 'BlockAffinity': {
      const r = (ev.resource ?? ev.previous) as { spec: { node: string } } | undefined;
      return r?.spec.node === node;
    }
    default: return true;
  }
}

/**
 * Holds the last derived state of one node. Feed it whole Models (`update`) or
 * the datastore's change events (`applyChanges`, which keeps its own copy of the
 * Model); each call returns what changed since the previous one.
 */
export class NodeController {
  private current: ControllerState = { ready: true, peers: [], announce: [], blackholes: [], deviceRoutes: [] };
  private model: Model = new Model();
  /** Felix's live-migration state machine for this node's endpoints (src/controller/migration.ts) */
  readonly migration: MigrationTracker;
  /** routes other programs wrote in the kernel (fib.learn), one per prefix, by prefix */
  private learned = new Map<string, KernelOrigin>();
  /** the current Model's and migration states' part of the announcements; learned routes are laid over it */
  private derivation: OriginDerivation | undefined;

  constructor(readonly nodeName: string, now: () => number = Date.now) {
    this.migration = new MigrationTracker(DEFAULT_CONVERGENCE_MS, now);
  }

  /** The VM of a live-migration target endpoint announced itself (GARP/RARP) on this host. */
  migrationAnnounced(endpointId: string): ControllerDiff {
    return this.migration.announced(endpointId) ? this.recompute(false) : emptyDiff();
  }

  /** Ends live-migration TimeWaits that are due; see migration.nextDeadline() for when to call it. */
  migrationTick(): ControllerDiff {
    return this.migration.tick() ? this.recompute(false) : emptyDiff();
  }

  /** The interfaces to watch for a migrated VM's announcement: endpoint id → interface name. */
  migrationWatches(): Map<string, string> {
    // only endpoints in Target are watched: none without a state (each call would map every endpoint of the node)
    if (this.migration.idle) return new Map();
    const ifs = new Map(this.model.workloadEndpoints(this.nodeName).map((w) => [endpointId(w), w.spec.interfaceName]));
    return this.migration.watching(ifs);
  }

  /** The routes learned from the kernel changed (fib.learn; src/daemon/kernel-learn.ts): the whole set, one per prefix. */
  setLearned(routes: readonly KernelOrigin[]): ControllerDiff {
    this.learned = new Map(routes.map((r) => [r.prefix, r]));
    // the kernel's routes decide announcements only: the peerings (selectors over every Node and BGPPeer) stay
    return this.recompute(false, false, false);
  }

  /**
   * Some learned routes changed (fib.learn): prefix → its route now (one per prefix), undefined where none is left.
   * Only these prefixes' announcements are derived again; the diff has announcements only.
   */
  changeLearned(changes: ReadonlyMap<string, KernelOrigin | undefined>): ControllerDiff {
    for (const [prefix, r] of changes) {
      if (r === undefined) this.learned.delete(prefix);
      else this.learned.set(prefix, r);
    }
    if (this.derivation === undefined) return this.recompute(false, false, false);
    return this.redo(changes.keys());
  }

  /**
   * The announcements and device routes of these prefixes derived again from the current derivation (which already
   * holds what changed): the state's lists updated in place of a whole derivation, and the diff of those prefixes.
   */
  private redo(prefixes: Iterable<string>): ControllerDiff {
    const d = this.derivation!;
    const diff = emptyDiff();
    // new lists: a state handed out earlier stays as it was
    const announce = this.current.announce.slice();
    const devices = this.current.deviceRoutes.slice();
    for (const prefix of prefixes) {
      redoOne(announce, prefix, d.originationOf(prefix, this.learned.get(prefix)), diff.announce, originationEquality);
      redoOne(devices, prefix, d.deviceRoute(prefix), diff.deviceRoutes, deviceRouteEquality);
    }
    // in the order a whole diff has (sorted), whatever order the prefixes came in
    for (const s of [diff.announce, diff.deviceRoutes] as SetDiff<{ prefix: string; key: string }>[]) {
      s.added.sort(byPrefix);
      s.removed.sort(byPrefix);
      s.changed.sort((a, b) => byPrefix(a.after, b.after));
    }
    this.current = { ...this.current, announce, deviceRoutes: devices };
    return diff;
  }

  get state(): ControllerState {
    return this.current;
  }

  /** Replace the whole Model (a snapshot, a reload). */
  update(model: Model): ControllerDiff {
    this.model = model.clone();
    return this.recompute();
  }

  /** Apply datastore change events in order, then diff once. */
  applyChanges(events: readonly ChangeEvent[]): ControllerDiff {
    let relevant = false;
    let workloadsOnly = true;
    /** this node's WorkloadEndpoints that changed: as they were and are (undefined: not this node's, or absent) */
    const own: [WorkloadEndpoint | undefined, WorkloadEndpoint | undefined][] = [];
    const node = this.nodeName;
    for (const ev of events) {
      const was = ev.kind === 'WorkloadEndpoint' ? this.model.get('WorkloadEndpoint', ev.id) : undefined;
      if (ev.type === 'deleted') this.model.delete(ev.kind, ev.id);
      else if (ev.resource !== undefined) this.model.set(ev.resource);
      relevant ||= concerns(ev, node);
      if (ev.kind !== 'WorkloadEndpoint') workloadsOnly = false;
      else {
        const now = this.model.get('WorkloadEndpoint', ev.id);
        const before = was?.spec.node === node ? was : undefined;
        const after = now?.spec.node === node ? now : undefined;
        if (before !== undefined || after !== undefined) own.push([before, after]);
      }
    }
    if (!relevant) return emptyDiff();
    // This node's pods coming and going (the bulk of its own churn) change their own prefixes only, as long as no
    // live migration is under way or defined (roles are read from every endpoint then): derive those prefixes again
    // rather than the whole node (bench/convergence, a host with a few hundred pods).
    if (workloadsOnly && this.derivation !== undefined && this.migration.idle && this.model.liveMigrations().length === 0) {
      const prefixes = new Set<string>();
      for (const [before, after] of own) for (const p of this.derivation.workloadChanged(before, after)) prefixes.add(p);
      return this.redo(prefixes);
    }
    return this.recompute();
  }

  /** modelMayChange false: the Model and the migration states are as at the last call (only learned routes changed). */
  private recompute(rolesMayChange = true, peersMayChange = true, modelMayChange = true): ControllerDiff {
    if (rolesMayChange) {
      const m = this.model;
      this.migration.convergenceMs = m.felixConfiguration(this.nodeName).liveMigrationRouteConvergenceTime ?? DEFAULT_CONVERGENCE_MS;
      this.migration.setRoles(migrationRoles(m, this.nodeName), new Set(m.workloadEndpoints(this.nodeName).map(endpointId)));
    }
    if (modelMayChange || this.derivation === undefined) this.derivation = new OriginDerivation(this.model, this.nodeName, this.migration.states);
    const o = this.derivation.originations(this.learned.values());
    const next: ControllerState = {
      ready: peersMayChange ? this.model.datastoreReady() : this.current.ready,
      peers: peersMayChange ? derivePeersIn(new PeerContext(this.model), this.nodeName) : this.current.peers,
      announce: o.announce,
      blackholes: o.blackholes,
      deviceRoutes: o.deviceRoutes,
    };
    const d = diffStates(this.current, next);
    this.current = next;
    return d;
  }
}

/** One prefix of a sorted list set to what it is now (undefined: none), the difference recorded in `out`. */
function redoOne<T extends { prefix: string; key: string }>(list: T[], prefix: string, after: T | undefined, out: SetDiff<T>, eq: ShapeEquality<T>): void {
  const { at, found } = findPrefix(list, prefix);
  const before = found ? list[at]! : undefined;
  if (before === undefined) {
    if (after === undefined) return;
    list.splice(at, 0, after);
    out.added.push(after);
  } else if (after === undefined) {
    list.splice(at, 1);
    out.removed.push(before);
  } else if (!eq.equal(before, after)) {
    list[at] = after;
    out.changed.push({ key: prefix, before, after, fields: eq.differing(before, after) });
  }
}

/** Where a prefix is (found) or would go in a list in the derivation's order (binary search). */
function findPrefix(list: readonly { prefix: string }[], prefix: string): { at: number; found: boolean } {
  const probe = { prefix };
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = byPrefix(list[mid]!, probe);
    if (c === 0) return { at: mid, found: true };
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return { at: lo, found: false };
}
