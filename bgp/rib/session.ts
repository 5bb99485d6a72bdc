// A peer's session as the RIB sees it: Established (peerUp) and back (peerDown), and the update group it joins and
// leaves on the way (update-group.ts). peerUp queues the whole Loc-RIB for the peer, or, for a late joiner of a
// group, the group's Adj-RIB-Out; peerDown forgets what was advertised and turns the peer's paths stale, keeping
// them only under graceful restart (RFC 4724 §4.2). Both run whole-table work in slices (walker.ts).
import { IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import { AddPathOut, type AddPathSend } from './add-path.js';
import type { RibCore } from './core.js';
import { exportEntry, shareGroup } from './export.js';
import { clearRefused } from './import.js';
import type { AttrSet } from './intern.js';
import type { Peer } from './peer.js';
import { PrefixMap } from './prefix-map.js';
import { markPeerStale, sweepPaths } from './stale.js';
import type { SessionTerms } from './types.js';
import { UpdateGroup, copyGroup, groupKey } from './update-group.js';

/**
 * The session reached Established: remember what it negotiated and queue
 * the whole Loc-RIB for it, followed by End-of-RIB per family.
 */
export function peerUp(rib: RibCore, id: number, terms: SessionTerms): void {
  const p = rib.peer(id);
  if (p.established) peerDown(rib, id);
  p.established = true;
  rib.up = [...rib.peers.values()].filter((x) => x.established);
  p.epoch++;
  p.routerId = terms.peerId >>> 0;
  p.ibgp = terms.ibgp;
  p.families = new Set(terms.families.filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST));
  p.addPathRx = terms.addPathRx;
  p.addPathTx = terms.addPathTx;
  p.enhancedRouteRefresh = terms.enhancedRouteRefresh;
  p.llgrFamilies = terms.llgrFamilies ?? new Set();
  p.terms = terms;
  const apFams = p.cfg.addPathSend === undefined ? [] : [...p.families].filter((f) => terms.addPathTx.has(f));
  if (apFams.length > 0) {
    p.ap = new AddPathOut(new Set(apFams), p.cfg.addPathSend as AddPathSend);
    rib.apUp = rib.up.filter((x) => x.ap !== null);
  }
  const session = ++p.sessions;
  const gone = (): boolean => !p.established || p.sessions !== session;
  const key = rib.config.updateGroups === true ? groupKey(p, terms) : `own:${p.id}`;
  const g = rib.groups.find((x) => x.key === key);
  if (g !== undefined) {
    // A late joiner (update-group.ts): the group's Adj-RIB-Out as personal entries, in slices; End-of-RIB after.
    // A group that was one peer's gets the shared kind of tables first (export.ts shareGroup); until they are, no
    // group message reaches the joiner (waiting) and its catch-up waits.
    g.members.push(p);
    p.group = g;
    p.catchingUp = true;
    g.waiting.add(p);
    shareGroup(rib, g, () => {
      g.waiting.delete(p);
      if (gone() || p.group !== g) return;
      rib.walker.start(g.adjOut.keySnapshot(), (prefix) => p.personal.add(prefix), () => {
        p.catchingUp = false;
        for (const f of p.families) if (g.eorSent.has(f)) p.personal.tail.push({ kind: 'end-of-rib', family: f });
      }, gone);
    });
    return;
  }
  startGroup(rib, p, key);
}

/** A group of p alone, filled from the whole Loc-RIB in slices, End-of-RIB after. */
function startGroup(rib: RibCore, p: Peer, key: string): UpdateGroup {
  const ng = new UpdateGroup(rib.nextGroupId++, key);
  ng.members.push(p);
  p.group = ng;
  rib.groups.push(ng);
  // The whole Loc-RIB in slices (walker.ts): a prefix that changes meanwhile goes to the group by the ordinary
  // export (it is Established now), one removed meanwhile is skipped. End-of-RIB follows the last one.
  const loc = rib.loc;
  rib.walker.start(loc.keySnapshot(), (prefix) => {
    const e = loc.get(prefix);
    if (e !== undefined) exportEntry(rib, ng, prefix, e);
  }, () => {
    ng.initialDone = true;
    for (const f of ng.rep.families) ng.queue(f).tail.push('end-of-rib');
  }, () => ng.members.length === 0);
  return ng;
}

/** Take a member out of its group (it keeps nothing of it), dropping the group when it was the last. */
function leaveGroup(rib: RibCore, p: Peer): void {
  const g = p.group;
  p.group = null;
  p.catchingUp = false;
  p.personal.clear();
  if (g === null) return;
  g.waiting.delete(p);
  const i = g.members.indexOf(p);
  if (i >= 0) g.members.splice(i, 1);
  if (g.members.length > 0) return;
  rib.groups = rib.groups.filter((x) => x !== g);
  for (const q of g.queues.values()) q.clear();
  // The old Adj-RIB-Out is released in a walk (walker.ts): the attribute-set references it held go a slice at a
  // time (a million prefixes held the loop ~0.1 s in one go).
  const out = g.adjOut;
  if (out.size > 0) {
    g.adjOut = new PrefixMap<AttrSet>();
    rib.walker.start(out.keySnapshot(), (prefix) => {
      const set = out.take(prefix);
      if (set !== undefined) rib.attrs.release(set);
    });
  }
}

/**
 * A member leaves its shared group for one of its own with a copy of the group's state (update-group.ts: a slow
 * member, or one whose settings change). Returns the new group's id; the same one when it was alone.
 */
export function splitFromGroup(rib: RibCore, id: number): number {
  const p = rib.peer(id);
  const g = p.group;
  if (g === null) throw new Error(`peer ${id} is not Established`);
  if (g.members.length === 1) return g.id;
  g.members.splice(g.members.indexOf(p), 1);
  if (g.waiting.delete(p)) {
    // it has had nothing from the group yet (shareGroup's pass still runs, and the group's tables are not whole):
    // a group of its own from the Loc-RIB, as a new session gets
    p.personal.clear();
    p.catchingUp = false;
    return startGroup(rib, p, `own:${p.id}:${rib.nextGroupId}`).id;
  }
  const c = copyGroup(g, rib.nextGroupId++, `own:${p.id}:${rib.nextGroupId}`, (set) => rib.attrs.retain(set));
  c.members.push(p);
  p.group = c;
  rib.groups.push(c);
  return c.id;
}

/**
 * The session left Established: its Adj-RIB-Out is forgotten and its routes
 * leave the Loc-RIB — unless retainStale (RFC 4724 §4.2, we are the
 * receiving speaker of a peer that restarts gracefully): then its routes
 * stay, marked stale, until sweepStale() (End-of-RIB received, or the
 * restart or stale timer ran out).
 */
export function peerDown(rib: RibCore, id: number, opts: { retainStale?: boolean } = {}): void {
  const p = rib.peer(id);
  if (p.reimports > 0) rib.walker.finish(); // what the session sent meets the rules before it becomes stale
  p.established = false;
  p.sessions++;
  rib.up = rib.up.filter((x) => x !== p);
  leaveGroup(rib, p);
  clearRefused(rib, p);
  p.rawIn?.forEach((e) => rib.attrs.release(e.set));
  p.rawIn = null;
  if (p.ap !== null) {
    p.ap.clear((set) => rib.attrs.release(set));
    p.ap = null;
    rib.apUp = rib.apUp.filter((x) => x !== p);
  }
  // Every path of the peer becomes stale; without retainStale they all go now, in a walk (walker.ts) that removes
  // what was announced before this moment: paths of a session that comes up meanwhile stay.
  for (const f of [IPV4_UNICAST, IPV6_UNICAST]) markPeerStale(p, f);
  if (!opts.retainStale) sweepPaths(rib, p, null);
}
