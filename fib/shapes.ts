// What fib/ remembers of a kernel route it observed (dump or event): the wanted Spec itself when they agree, else
// an interned Shape, so a million adopted routes over a few next hops share a few objects.
import type { Entry, Shape } from './entries.js';
import { specMatches, type Spec } from './targets.js';
import type { KernelHop, KernelRoute } from './types.js';

const sameHop = (a: KernelHop, b: KernelHop): boolean => {
  if (a.ifindex !== b.ifindex || a.onlink !== b.onlink || a.weight !== b.weight || a.dead !== b.dead) return false;
  const x = a.gateway, y = b.gateway;
  if (x === undefined || y === undefined) return x === y;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
};
const sameShape = (s: Shape, k: KernelRoute): boolean =>
  s.type === k.type && s.scope === k.scope && s.hops.length === k.hops.length && s.hops.every((h, i) => sameHop(h, k.hops[i]!));

export class Shapes {
  /** a small most-recently-used list is enough to share shapes: routes come in runs of the same next hops */
  readonly #recent: Shape[] = [];

  observed(e: Entry, k: KernelRoute, byName: ReadonlyMap<string, number>): Spec | Shape {
    if (e.want && specMatches(e.want, k, byName)) return e.want;
    const recent = this.#recent;
    for (let i = 0; i < recent.length; i++) {
      const sh = recent[i]!;
      if (sameShape(sh, k)) {
        if (i > 0) {
          recent.splice(i, 1);
          recent.unshift(sh);
        }
        return sh;
      }
    }
    const sh: Shape = { type: k.type, scope: k.scope, hops: k.hops };
    recent.unshift(sh);
    if (recent.length > 32) recent.pop();
    return sh;
  }
}
