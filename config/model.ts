// The current set of resources, by kind and identity. Both backends build the
// same Model for the same data; changes are computed as differences between
// models (file) or applied one key at a time (etcd).
import { isDeepStrictEqual } from 'node:util';
import {
  KINDS, resourceId, type BGPConfiguration, type BGPFilter, type BGPPeer, type BlockAffinity, type CalicoNode,
  type ClusterInformation, type IPAMBlock, type IPPool, type Kind, type LiveMigration,
  type Resource, type ResourceOf, type WorkloadEndpoint,
} from './resources.js';
import type { FelixConfigurationSpec } from './resources-workload.js';

export type ChangeType = 'added' | 'updated' | 'deleted';

export interface ChangeEvent<K extends Kind = Kind> {
  type: ChangeType;
  kind: K;
  /** identity within the kind (see resourceId) */
  id: string;
  /** where it lives: the etcd key, or "<file>#<kind>/<id>" */
  key: string;
  /** the new resource (absent for deleted) */
  resource?: ResourceOf<K>;
  /** the resource before the change (absent for added) */
  previous?: ResourceOf<K>;
  /** etcd mod_revision of the change (etcd backend) */
  revision?: string;
}

export class Model {
  private readonly byKind = new Map<Kind, Map<string, Resource>>(KINDS.map((k) => [k, new Map()]));
  // list() results per kind, sorted once and reused until that kind changes:
  // the controller reads whole kinds on every change event, and re-sorting
  // thousands of WorkloadEndpoints per event is what a busy cluster would pay.
  private readonly sorted = new Map<Kind, readonly Resource[]>();
  // WorkloadEndpoints by node (spec.node), each node's list sorted once and reused until one of its endpoints
  // changes: a node asks only for its own, and a change on another node must not make it re-sort every id.
  private readonly wepByNode = new Map<string, Map<string, WorkloadEndpoint>>();
  private readonly wepSorted = new Map<string, readonly WorkloadEndpoint[]>();

  private map(kind: Kind): Map<string, Resource> {
    return this.byKind.get(kind) as Map<string, Resource>;
  }

  get<K extends Kind>(kind: K, id: string): ResourceOf<K> | undefined {
    return this.map(kind).get(id) as ResourceOf<K> | undefined;
  }

  /** All resources of a kind, sorted by id (stable order for consumers and tests). */
  list<K extends Kind>(kind: K): ResourceOf<K>[] {
    let s = this.sorted.get(kind);
    if (s === undefined) {
      s = [...this.map(kind).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
      this.sorted.set(kind, s);
    }
    // A copy: callers may sort or splice what they get without corrupting the cache.
    return s.slice() as ResourceOf<K>[];
  }

  ids(kind: Kind): string[] {
    return [...this.map(kind).keys()].sort();
  }

  /** Insert or replace; returns the change it made, or undefined when nothing changed. */
  set(r: Resource, key = ''): ChangeEvent | undefined {
    const id = resourceId(r);
    const m = this.map(r.kind);
    const prev = m.get(id);
    if (prev !== undefined && isDeepStrictEqual(prev, r)) return undefined;
    m.set(id, r);
    this.sorted.delete(r.kind);
    if (r.kind === 'WorkloadEndpoint') {
      if (prev !== undefined) this.unindexWep(id, prev as WorkloadEndpoint);
      this.indexWep(id, r);
    }
    const ev: ChangeEvent = { type: prev === undefined ? 'added' : 'updated', kind: r.kind, id, key, resource: r };
    if (prev !== undefined) ev.previous = prev;
    return ev;
  }

  delete(kind: Kind, id: string, key = ''): ChangeEvent | undefined {
    const m = this.map(kind);
    const prev = m.get(id);
    if (prev === undefined) return undefined;
    m.delete(id);
    this.sorted.delete(kind);
    if (kind === 'WorkloadEndpoint') this.unindexWep(id, prev as WorkloadEndpoint);
    return { type: 'deleted', kind, id, key, previous: prev };
  }

  get size(): number {
    let n = 0;
    for (const m of this.byKind.values()) n += m.size;
    return n;
  }

  clone(): Model {
    const c = new Model();
    for (const [k, m] of this.byKind) for (const [id, r] of m) c.map(k).set(id, r);
    for (const [k, s] of this.sorted) c.sorted.set(k, s);
    for (const [n, m] of this.wepByNode) c.wepByNode.set(n, new Map(m));
    for (const [n, s] of this.wepSorted) c.wepSorted.set(n, s);
    return c;
  }

  private indexWep(id: string, w: WorkloadEndpoint): void {
    const node = w.spec.node;
    let m = this.wepByNode.get(node);
    if (m === undefined) this.wepByNode.set(node, (m = new Map()));
    m.set(id, w);
    this.wepSorted.delete(node);
  }

  private unindexWep(id: string, w: WorkloadEndpoint): void {
    const node = w.spec.node;
    const m = this.wepByNode.get(node);
    if (m === undefined) return;
    m.delete(id);
    if (m.size === 0) this.wepByNode.delete(node);
    this.wepSorted.delete(node);
  }

  equals(other: Model): boolean {
    return isDeepStrictEqual(this.toJSON(), other.toJSON());
  }

  /**
   * The changes that turn `from` into `to`, deletions first (so a consumer
   * never sees two resources claim one thing), then additions and updates;
   * each group in kind order, ids sorted.
   */
  static diff(from: Model, to: Model, keyOf: (kind: Kind, id: string) => string): ChangeEvent[] {
    const dels: ChangeEvent[] = [];
    const rest: ChangeEvent[] = [];
    const byId = (a: ChangeEvent, b: ChangeEvent): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    // Only the changes are sorted, not every id: a large file with one edit costs one pass, not a sort of 100k ids.
    for (const kind of KINDS) {
      const f = from.map(kind);
      const t = to.map(kind);
      const d: ChangeEvent[] = [];
      const r: ChangeEvent[] = [];
      for (const [id, prev] of f) if (!t.has(id)) d.push({ type: 'deleted', kind, id, key: keyOf(kind, id), previous: prev });
      for (const [id, now] of t) {
        const before = f.get(id);
        if (before === undefined) r.push({ type: 'added', kind, id, key: keyOf(kind, id), resource: now });
        else if (before !== now && !isDeepStrictEqual(before, now)) r.push({ type: 'updated', kind, id, key: keyOf(kind, id), resource: now, previous: before });
      }
      dels.push(...d.sort(byId));
      rest.push(...r.sort(byId));
    }
    return [...dels, ...rest];
  }

  /** Plain data: { kind: { id: resource } }, kinds and ids sorted. */
  toJSON(): Record<string, Record<string, Resource>> {
    const out: Record<string, Record<string, Resource>> = {};
    for (const kind of KINDS) {
      const entries: Record<string, Resource> = {};
      for (const r of this.list(kind)) entries[resourceId(r)] = r;
      out[kind] = entries;
    }
    return out;
  }

  // Convenience readers for what the node controller asks most.

  bgpConfiguration(name = 'default'): BGPConfiguration | undefined { return this.get('BGPConfiguration', name); }
  node(name: string): CalicoNode | undefined { return this.get('Node', name); }
  nodes(): CalicoNode[] { return this.list('Node'); }
  bgpPeers(): BGPPeer[] { return this.list('BGPPeer'); }
  ipPools(): IPPool[] { return this.list('IPPool'); }
  bgpFilter(name: string): BGPFilter | undefined { return this.get('BGPFilter', name); }
  clusterInformation(): ClusterInformation | undefined { return this.get('ClusterInformation', 'default'); }
  /** Workload endpoints on one node (or all). */
  workloadEndpoints(node?: string): WorkloadEndpoint[] {
    if (node === undefined) return this.list('WorkloadEndpoint');
    let s = this.wepSorted.get(node);
    if (s === undefined) {
      s = [...(this.wepByNode.get(node) ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, w]) => w);
      this.wepSorted.set(node, s);
    }
    return s.slice();
  }
  /** Block affinities of one node (or all). */
  blockAffinities(node?: string): BlockAffinity[] {
    const all = this.list('BlockAffinity');
    return node === undefined ? all : all.filter((a) => a.spec.node === node);
  }
  ipamBlocks(): IPAMBlock[] { return this.list('IPAMBlock'); }
  liveMigrations(): LiveMigration[] { return this.list('LiveMigration'); }
  /**
   * Felix's live-migration settings for one node: FelixConfiguration node.<name> over "default", field by field
   * (Felix's own precedence, felix/config/config_params.go: per-host config beats the global one).
   */
  felixConfiguration(node: string): FelixConfigurationSpec {
    return { ...this.get('FelixConfiguration', 'default')?.spec, ...this.get('FelixConfiguration', `node.${node}`)?.spec };
  }

  /**
   * Calico's readiness gate: when ClusterInformation "default" exists, nothing
   * is announced or programmed until datastoreReady is true.
   */
  datastoreReady(): boolean {
    const ci = this.clusterInformation();
    return ci === undefined || ci.spec.datastoreReady === true;
  }
}
