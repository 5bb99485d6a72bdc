// How the FIB reaches a BGP next hop that is not on a link (recursive next hops, RFC 4271 §9.1.2.1): through the
// host's own covering route (bgp/rib/nexthop-resolve.ts: the kernel's routes of every origin but skein's), else
// through the Loc-RIB route it resolves through (bgp/rib/recursive.ts), whose own next hops are then resolved
// against the host's routes (one level, as the RIB resolves). routes.ts computes each next-hop set's kernel target
// with this and recomputes them when the kernel's routes change or the speaker reports that a recursive next hop
// moved (its covering route, or that route's best, changed): only the prefixes whose target changed are rewritten.
import { NextHopResolver, type ResolvingRoute, type Speaker, type ViaHop } from '../../bgp/index.js';
import type { RouteTable } from './routes.js';

export class FibResolver {
  #kernel = new NextHopResolver([]);
  /** the host's routes have been read at least once; before that (or with no FIB) every next hop is used directly */
  #read = false;
  #queued = false;

  constructor(
    private readonly routes: Pick<RouteTable, 'setResolver'>,
    private readonly speaker: () => Speaker | undefined,
  ) {}

  /** How the kernel reaches a next hop (see nexthop-resolve.ts), falling back to the Loc-RIB. */
  readonly resolve = (nh: string): readonly ViaHop[] | null => {
    const k = this.#kernel.resolve(nh);
    if (k !== null) return k;
    const r = this.speaker()?.rib.recursiveHops(nh) ?? null;
    if (r === null) return null;
    const out: ViaHop[] = [];
    for (const h of r.nextHops) {
      const v = this.#kernel.resolve(h);
      if (v === null) continue; // the RIB resolves one level only; this is the FIB's own guard
      if (v.length === 0) out.push({ gateway: h });
      else out.push(...v);
    }
    return out.length > 0 ? out : null;
  };

  /** The host's routes were read again; returns the prefixes rewritten. */
  kernel(routes: readonly ResolvingRoute[]): number {
    this.#kernel = new NextHopResolver(routes);
    this.#read = true;
    return this.routes.setResolver(this.resolve);
  }

  /** A few of the host's routes came or went since the last read (kernel() first); returns the prefixes rewritten. */
  kernelChanged(added: readonly ResolvingRoute[], removed: readonly ResolvingRoute[]): number {
    if (!this.#read) return 0;
    for (const r of removed) this.#kernel.remove(r);
    for (const r of added) this.#kernel.add(r);
    return this.routes.setResolver(this.resolve);
  }

  /** A recursive next hop may have moved (the speaker's 'nexthops' event): recompute once this turn is over. */
  moved(): void {
    if (this.#queued) return;
    this.#queued = true;
    setImmediate(() => {
      this.#queued = false;
      // Nothing known of the host's routes yet: resolving would find no route for any next hop and drop them all
      // (a stale route kept under LLGR vanished from the table that way); they stay direct, as before a read.
      this.routes.setResolver(this.#read ? this.resolve : undefined);
    });
  }
}
