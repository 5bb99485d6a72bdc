// A best-path change as the speaker's 'best' listeners get it (the daemon's route table, the FIB).
import type { BestChange, PrefixKey } from '../rib/core.js';
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
  constructor(b: BestChange) {
    this.key = b.prefix;
    this.afi = b.afi;
    this.attributes = b.best?.attrs ?? null;
    this.nextHops = b.nextHops;
    this.local = b.local;
    this.from = b.from;
  }
  get prefix(): string {
    return prefixText(this.key);
  }
}

export function bestEvent(b: BestChange): BestEvent {
  return new Best(b);
}
