// Best-path output, the RIB's stream to the FIB: the prefixes whose best path or multipath next hops changed
// (marked by core.ts changed(), kept coalesced in change-queue.ts) drained as a BestBatch, within a time budget so a
// million changes go out over several turns of the event loop; and turning that record off for a driver without a
// FIB and on again for a consumer that starts late (then it receives the whole table).
import type { RibCore } from './core.js';
import { Path } from './decision.js';
import { BestBatch } from './change-queue.js';
import { usableBest, type LocEntry } from './peer.js';
import type { PrefixMap } from './prefix-map.js';
import type { BestChange, PrefixKey } from './types.js';

/**
 * Best-path changes since the last call, one per prefix (coalesced), for the FIB: the compact form
 * (change-queue.ts), one entry per prefix in parallel arrays. With budgetMs, about that long is spent (the clock
 * is read every 256 changes) and the rest stays for the next call (pendingBestChanges): a million changes are
 * handed out over several turns of the event loop, not in one.
 */
export function drainBest(rib: RibCore, budgetMs = Infinity): BestBatch {
  if (rib.recursive.pending) rib.flushRecursive();
  const batch = new BestBatch();
  const until = budgetMs === Infinity ? Infinity : rib.walker.now() + budgetMs;
  const loc = rib.loc;
  rib.bestDirty.drain(batch, (prefix, b) => readBest(loc, prefix, b), () => until !== Infinity && rib.walker.now() >= until);
  return batch;
}

/** drainBest as one object per change (tests, benchmarks of the core alone). */
export function drainBestChanges(rib: RibCore, budgetMs = Infinity): BestChange[] {
  const b = drainBest(rib, budgetMs);
  const out: BestChange[] = [];
  for (let i = 0; i < b.length; i++) out.push(b.change(i));
  return out;
}

/** A prefix's current best and the next hops of its multipath set, appended to a drained batch. */
function readBest(loc: PrefixMap<LocEntry>, prefix: PrefixKey, batch: BestBatch): void {
  const e = loc.get(prefix);
  const best = e === undefined ? null : usableBest(e);
  if (e === undefined || best === null) {
    batch.push(prefix, null, []);
    return;
  }
  if (e instanceof Path && e.attrs.nextHops.length <= 1) {
    batch.push(prefix, best, e.attrs.nextHops); // the shared frozen array: no allocation for the common case
    return;
  }
  const hops: string[] = [];
  for (const m of e instanceof Path ? [e] : e.sel.multipath) {
    const nh = m.attrs.nextHops[0];
    if (nh !== undefined) hops.push(nh);
  }
  batch.push(prefix, best, hops);
}

/**
 * Whether best-path changes are recorded for drainBestChanges (default on).
 * A driver with no FIB consumer turns it off: recording costs a table entry
 * per changed prefix and an object per change when drained. Turning it on
 * again marks every Loc-RIB prefix changed, so a consumer that starts late
 * receives the whole table; with replay false it does not (a consumer that
 * wants the changes from now on only, such as a live watch: replaying a
 * million prefixes to it would be a million changes that are none).
 */
export function setBestTracking(rib: RibCore, on: boolean, replay = true): void {
  if (on === rib.trackBest) return;
  rib.trackBest = on;
  rib.bestDirty.clear();
  ++rib.trackTurns;
  if (on && replay) replayBest(rib);
}

/**
 * Mark every Loc-RIB prefix changed while tracking is on (a consumer that wants the whole table joins one that took
 * the changes from now on). Nothing already marked is lost: the walk only adds.
 */
export function replayBest(rib: RibCore): void {
  if (!rib.trackBest) return;
  const turn = rib.trackTurns;
  // Every prefix in a walk (walker.ts); one that changes meanwhile is marked by the ordinary path (changed()), one
  // removed meanwhile is skipped (the late consumer never had it). Turning tracking off again stops the walk.
  const loc = rib.loc;
  rib.walker.start(loc.keySnapshot(), (prefix) => {
    if (loc.has(prefix)) rib.bestDirty.add(prefix);
  }, undefined, () => rib.trackTurns !== turn);
}
