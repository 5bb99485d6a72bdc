// Which learned route wins over a local workload route, and at what kernel metric each learned route is written:
// the route priorities of Calico's BGPConfiguration, as confd renders them for BIRD.
//   - A live migration's target announces the VM's route above the normal priority: it beats the local route and
//     is written at 2^31-1 minus its LOCAL_PREF (confd's SetMetricForBGPRoutes).
//   - Every learned route goes into the kernel at the metric Calico's BIRD gives it: 2^31-1 minus LOCAL_PREF (1024
//     for an ordinary mesh route; confd's SetMetricForBGPRoutes, with Calico's BIRD leaving the kernel protocol's
//     own metric at 0).
import type { Model } from '../../config/index.js';
import { BIRD_INT_MAX, DEFAULT_NORMAL_ROUTE_PRIORITY, kernelMetricOf } from '../controller/index.js';
import type { BestInput } from './best-queue.js';
import type { RouteTable } from './routes.js';

export class RoutePriority {
  /** a learned path with LOCAL_PREF above this (per family) overrides a local workload route: an elevated one */
  #overrideAbove = { 4: BIRD_INT_MAX - DEFAULT_NORMAL_ROUTE_PRIORITY, 6: BIRD_INT_MAX - DEFAULT_NORMAL_ROUTE_PRIORITY };

  /** Sets the route table's hooks (RouteTable.elevation, RouteTable.learnedMetric) to these rules. */
  attach(routes: RouteTable): void {
    routes.elevation = (ev) => this.elevation(ev);
    routes.learnedMetric = (ev) => kernelMetricOf(ev.attributes?.localPref);
  }

  /** The kernel metric of an elevated best path, or undefined when it is not elevated. */
  elevation(ev: BestInput): number | undefined {
    const lp = ev.attributes?.localPref;
    return lp !== undefined && lp > this.#overrideAbove[ev.afi === 2 ? 6 : 4] ? BIRD_INT_MAX - lp : undefined;
  }

  /**
   * confd's import filter (bgp_processor.go buildImportFilter): a path whose LOCAL_PREF is above 2^31-1 minus the
   * normal route priority came from a node routing a just-migrated VM at the elevated priority; it gets BIRD's
   * override preference and beats this node's own route to the same address (the migration's source host).
   */
  update(model: Model): void {
    const cfg = model.bgpConfiguration('default')?.spec;
    this.#overrideAbove = {
      4: BIRD_INT_MAX - (cfg?.ipv4NormalRoutePriority ?? DEFAULT_NORMAL_ROUTE_PRIORITY),
      6: BIRD_INT_MAX - (cfg?.ipv6NormalRoutePriority ?? DEFAULT_NORMAL_ROUTE_PRIORITY),
    };
  }
}
