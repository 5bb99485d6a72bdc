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
 * Hand a drained batch to the listeners: 'bestBatch' gets it as it is; 'best' gets one object per change, made only
 * when someone listens there.
 */
export function emitBest(s: EventEmitter, b: BestBatch): void {
  if (s.listenerCount('bestBatch') > 0) s.emit('bestBatch', b);
  if (s.listenerCount('best') === 0) return;
  const evs: BestEvent[] = [];
  for (let i = 0; i < b.length; i++) evs.push(new Best(b, i));
  s.emit('best', evs);
}

/** Record best-path changes only while someone listens for them, in either form (RibCore.setBestTracking). */
export function trackBestListeners(s: EventEmitter, rib: RibCore): void {
  const isBest = (ev: string | symbol): boolean => ev === 'best' || ev === 'bestBatch';
  rib.setBestTracking(false);
  s.on('newListener', (ev: string | symbol) => {
    if (isBest(ev)) rib.setBestTracking(true);
  });
  s.on('removeListener', (ev: string | symbol) => {
    if (isBest(ev) && s.listenerCount('best') + s.listenerCount('bestBatch') === 0) rib.setBestTracking(false);
  });
}
