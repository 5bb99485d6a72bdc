// The outbound path past export (export.ts): what a peer or an update group sends next (nextBatch, nextGroupBatch,
// nextPersonalBatch), and the whole-table work that queues it again — a changed export policy (refreshExports), a
// ROUTE-REFRESH from the peer (RFC 2918, RFC 7313), graceful shutdown (RFC 8326) — and what the driver could not
// encode (unsendable, RFC 8654). Whole-table work runs in slices (walker.ts).
import { familyKey } from '../wire/constants.js';
import type { RibCore } from './core.js';
import { exportAddPath, exportEntry, exportTo } from './export.js';
import { familyOf } from './peer.js';
import type { OutBatch, PrefixKey } from './types.js';
import { nextGroupBatch as groupBatch, nextPersonal, type UpdateGroup } from './update-group.js';

/** Recompute one peer's exports against the whole Loc-RIB (after an export policy change). */
export function refreshExports(rib: RibCore, id: number): void {
  const p = rib.peer(id);
  if (!p.established || p.group === null) return;
  // its rules changed: a group of its own first (updatePeer did that already when it was told the new rules)
  rib.splitFromGroup(id);
  refreshGroup(rib, p.group);
}

function refreshGroup(rib: RibCore, g: UpdateGroup): void {
  // Two walks in slices (walker.ts): the Loc-RIB under the new rules, then what the group advertises that is no
  // longer in it. A prefix that changes meanwhile is exported under the new rules by the ordinary path.
  const gone = (): boolean => g.members.length === 0;
  const loc = rib.loc;
  rib.walker.start(loc.keySnapshot(), (prefix) => {
    const e = loc.get(prefix);
    if (e !== undefined) exportEntry(rib, g, prefix, e);
  }, () => {
    rib.walker.start(g.adjOut.keySnapshot(), (prefix) => {
      if (!loc.has(prefix)) exportTo(rib, g, prefix, null);
    }, () => {
      for (const m of g.members) for (const prefix of m.ap?.prefixes() ?? []) if (!loc.has(prefix)) exportAddPath(rib, m, prefix, undefined);
    }, gone);
  }, gone);
}

/**
 * ROUTE-REFRESH received (RFC 2918 §4): queue everything we advertise in the
 * family again, bracketed by BoRR/EoRR when enhanced route refresh was
 * negotiated (RFC 7313 §4). For this peer alone: personal entries (update-group.ts).
 */
export function routeRefresh(rib: RibCore, id: number, afi: number, safi: number): void {
  const p = rib.peer(id);
  const fam = familyKey(afi, safi);
  const g = p.group;
  if (!p.established || g === null || !p.families.has(fam)) return;
  if (p.enhancedRouteRefresh) p.personal.head.push({ kind: 'begin-refresh', family: fam });
  // Adj-RIB-Out in slices (walker.ts); what changes meanwhile is queued by the ordinary export. EoRR after the last.
  const session = p.sessions;
  rib.walker.start(g.adjOut.keySnapshot(), (prefix) => {
    if (familyOf(prefix) === fam && g.desired(p, prefix) !== undefined) p.personal.add(prefix);
  }, () => {
    p.ap?.requeue(fam, familyOf); // every path, under its path id (RFC 7911)
    if (p.enhancedRouteRefresh) p.personal.tail.push({ kind: 'end-refresh', family: fam });
  }, () => !p.established || p.sessions !== session);
}

/** A group's batch cut down to the prefixes (and their path ids) one member gets instead (update-group.ts except). */
function narrowed(batch: OutBatch, rest: PrefixKey[]): OutBatch {
  const ids = batch.kind === 'announce' || batch.kind === 'withdraw' ? batch.pathIds : null;
  return { ...batch, prefixes: rest, pathIds: ids === null ? null : ids.slice(0, rest.length) } as OutBatch;
}

/**
 * The next piece of outbound work for a peer alone in its update group (without CoreConfig.updateGroups, every
 * peer): its personal work, then the group's (markers, withdrawals, then announcements one attribute set at a
 * time), at most maxPrefixes per batch; null when nothing waits.
 */
export function nextBatch(rib: RibCore, id: number, maxPrefixes: number): OutBatch | null {
  const p = rib.peer(id);
  const g = p.group;
  if (g === null) return null;
  if (g.members.length > 1) throw new Error(`peer ${id} shares an update group: take its work with nextGroupBatch`);
  const b = nextPersonal(g, p, maxPrefixes);
  if (b !== null) return b;
  for (;;) {
    const gb = groupBatch(g, maxPrefixes);
    if (gb === null) return null;
    if (!gb.except.has(p)) return gb.batch;
    const rest = gb.except.get(p);
    if (rest === null || rest === undefined) continue;
    return narrowed(gb.batch, rest);
  }
}

/**
 * The next batch of a group (update-group.ts), for every member but those in except: null there for none of
 * it, else the prefixes (and path ids) that member gets instead. Null when the group has nothing waiting.
 */
export function nextGroupBatch(rib: RibCore, groupId: number, maxPrefixes: number): { batch: OutBatch; except: Map<number, OutBatch | null> } | null {
  const g = rib.groups.find((x) => x.id === groupId);
  if (g === undefined || g.members.length === 0) return null;
  const gb = groupBatch(g, maxPrefixes);
  if (gb === null) return null;
  const except = new Map<number, OutBatch | null>();
  for (const [m, rest] of gb.except) except.set(m.id, rest === null ? null : narrowed(gb.batch, rest));
  return { batch: gb.batch, except };
}

/**
 * Whether a group or one of its members has anything to send: what nextGroupBatch and nextPersonalBatch would
 * find, asked without taking it. The sender asks before it builds a pump turn for hundreds of members.
 */
export function groupHasWork(rib: RibCore, groupId: number): boolean {
  const g = rib.groups.find((x) => x.id === groupId);
  if (g === undefined || g.members.length === 0) return false;
  if (!g.idle) return true;
  for (const m of g.members) {
    if (!m.personal.empty) return true;
    if (m.ap !== null) for (const f of m.ap.families) if (m.ap.hasWork(f)) return true;
  }
  return false;
}

/** A member's own next batch (update-group.ts Personal, ADD-PATH work); null when none waits. */
export function nextPersonalBatch(rib: RibCore, id: number, maxPrefixes: number): OutBatch | null {
  const p = rib.peer(id);
  if (p.group === null || (p.personal.empty && p.ap === null)) return null;
  return nextPersonal(p.group, p, maxPrefixes);
}

/**
 * The driver could not encode an announcement batch for the peer (RFC 8654 §4: too large for its messages): the
 * prefixes leave its Adj-RIB-Out and a withdrawal is queued for each (the peer may hold an older version; a
 * withdrawal of a route it does not have is harmless, RFC 4271 §9.1.3). Returns how many prefixes.
 */
export function unsendable(rib: RibCore, id: number, b: Extract<OutBatch, { kind: 'announce' }>): number {
  const p = rib.peer(id);
  const fam = familyKey(b.afi, b.safi);
  if (p.ap !== null && p.ap.families.has(fam)) {
    // ADD-PATH send (RFC 7911): the batch names each path by its id; only those paths leave (add-path.ts drop).
    const ids = b.pathIds ?? [];
    for (let i = 0; i < b.prefixes.length; i++) p.ap.drop(b.prefixes[i] as PrefixKey, fam, ids[i] ?? 0, rib.release);
    return b.prefixes.length;
  }
  // the group could not encode it for anyone: it leaves the group's Adj-RIB-Out (update-group.ts)
  const g = p.group;
  if (g === null) return 0;
  for (const prefix of b.prefixes) {
    const cur = g.adjOut.take(prefix);
    if (cur !== undefined) {
      if (g.shared) g.bump(g.srcOf.get(prefix), -1, prefix); // the own counts follow adjOut (update-group.ts)
      rib.attrs.release(cur);
    }
    g.queue(fam).withdraw(prefix);
  }
  return b.prefixes.length;
}

/**
 * Start (on) or end (off) RFC 8326 graceful shutdown: every Established peer's exports are recomputed, now with
 * (or again without) GRACEFUL_SHUTDOWN and, to iBGP, LOCAL_PREF 0. The driver waits for peers to move traffic,
 * then closes the sessions; this only changes what is advertised.
 */
export function setDraining(rib: RibCore, on: boolean): void {
  if (on === rib.draining) return;
  rib.draining = on;
  for (const p of rib.peers.values()) p.epoch++; // cached exports were made under the other mode
  for (const g of rib.groups) {
    g.epoch++;
    refreshGroup(rib, g);
  }
}
