// A best-path change as the speaker's 'best' listeners get it (the daemon's route table, the FIB).
import type { EventEmitter } from 'node:events';
import type { BestBatch } from '../rib/change-queue.js';
import type { PrefixKey, RibCore } from '../rib/core.js';
import type { PathAttributes } from '../wire/types.js';
import { prefixText } from './text.js';
import type { BestEvent } from './types.js';

/**
 * The prefix stays the RIB's key (a number for IPv4): its text is made only when someone reads `prefix`, so a
 * million changes into the FIB build no million strings.
 */
class Best implements BestEvent {
  readonly key: PrefixKey;
  readonly afi: 1 | 2;
  readonly attributes: PathAttributes | null;
  readonly nextHops: readonly string[];
  readonly local: boolean;
  readonly from: string | null;
  constructor(b: BestBatch, i: number) {
    this.key = b.key(i);
    this.afi = b.afi(i);
    this.attributes = b.attributes(i);
    this.nextHops = b.nextHops(i);
    this.local = b.local(i);
    this.from = b.from(i);
  }
  get prefix(): string {
    return prefixText(this.key);
  }
}

/**
 * Hand a drained batch to the listeners: 'bestBatch' and 'bestLive' get it as it is; 'best' gets one object per
 * change, made only when someone listens there.
 */
export function emitBest(s: EventEmitter, b: BestBatch): void {
  if (s.listenerCount('bestBatch') > 0) s.emit('bestBatch', b);
  if (s.listenerCount('bestLive') > 0) s.emit('bestLive', b);
  if (s.listenerCount('best') === 0) return;
  const evs: BestEvent[] = [];
  for (let i = 0; i < b.length; i++) evs.push(new Best(b, i));
  s.emit('best', evs);
}

/**
 * Record best-path changes only while someone listens for them, in any form (RibCore.setBestTracking). A 'best' or
 * 'bestBatch' listener is a consumer of the whole table: the first one gets every Loc-RIB prefix as changed. A
 * 'bestLive' listener gets the changes from when it joined only (skeind with fib.enabled false listens so only while
 * `skeinctl watch` runs: nothing else of it needs the stream).
 */
export function trackBestListeners(s: EventEmitter, rib: RibCore): void {
  const whole = (): number => s.listenerCount('best') + s.listenerCount('bestBatch');
  rib.setBestTracking(false);
  s.on('newListener', (ev: string | symbol) => {
    // (called before the listener is added: the counts are those without it)
    if (ev === 'best' || ev === 'bestBatch') {
      if (whole() > 0) return;
      if (rib.trackBest) rib.replayBest(); // live listeners had it on: the newcomer still gets the whole table
      else rib.setBestTracking(true);
    } else if (ev === 'bestLive') rib.setBestTracking(true, false);
  });
  s.on('removeListener', (ev: string | symbol) => {
    if ((ev === 'best' || ev === 'bestBatch' || ev === 'bestLive') && whole() + s.listenerCount('bestLive') === 0) rib.setBestTracking(false);
  });
}
