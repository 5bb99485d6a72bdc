// Live migration of a workload (an OpenStack or KubeVirt VM) between hosts, as Calico routes it. During a migration
// two WorkloadEndpoints carry the same addresses, one on the source host and one on the target host, and a
// LiveMigration resource names the pair. Calico's rules, read from projectcalico/calico:
//
// - Role (felix/calc/live_migration_calculator.go): a local endpoint is a *target* when a LiveMigration's target
//   names it (directly, or by selector for KubeVirt), else a *source* when a source names it, else it has no role.
//   Endpoints are matched by (hostname, orchestrator, "<namespace>/<workload>", endpoint); a reference without an
//   endpoint matches every endpoint of the workload; the hostname does not count for orchestrator "k8s".
// - Per-endpoint state machine (felix/dataplane/linux/live_migration.go), states Base, Target, Live, TimeWait:
//     Base     --role target-->          Target
//     Target   --GARP/RARP seen-->       Live        (the VM runs on this host now: it announced itself)
//     Target   --role gone-->            TimeWait    (completed, the announcement was missed)
//     Live     --role gone-->            TimeWait    (the orchestrator deleted the LiveMigration: completed)
//     TimeWait --convergence time-->     Base        (liveMigrationRouteConvergenceTime, default 30 s)
//     Target/Live/TimeWait --role source, or endpoint deleted--> Base
// - Routes (felix/dataplane/linux/endpoint_mgr.go calculateRoutes): in Target the endpoint gets no route at all (the
//   VM is still running on the source); in Live and TimeWait its routes get the *elevated* priority (kernel metric
//   ipv4ElevatedRoutePriority/ipv6ElevatedRoutePriority, default 512, below the normal 1024).
// - BGP (confd/pkg/backends/calico/bgp_processor.go buildExportFilter/buildImportFilter and calico_aggr in
//   bird_aggr.cfg.template): a node exports a route with LOCAL_PREF 2^31-1 minus its kernel metric, so the target's
//   elevated /32 beats the source's normal one everywhere; an elevated /32 escapes the aggregation into the node's
//   block; a node that learns a route with LOCAL_PREF above 2^31-1 minus the normal priority lets it override its
//   own local workload route (preference override), so the source host forwards to the target too.
// So the /32 moves once, when the VM announces itself on the target; after completion the orchestrator deletes the
// source endpoint and only the target announces it.
//
// skein derives roles from the Model (pure); the state machine lives in MigrationTracker, which the controller
// feeds with role changes and the daemon with GARP/RARP sightings and the clock.
import type { LiveMigrationRef, Model, WorkloadEndpoint } from '../../config/index.js';
import { matches } from '../../config/index.js';

export type MigrationRole = 'source' | 'target';
export type MigrationState = 'target' | 'live' | 'timeWait';

/** Felix's defaults (felix/config/config_params.go). */
export const DEFAULT_ELEVATED_ROUTE_PRIORITY = 512;
export const DEFAULT_NORMAL_ROUTE_PRIORITY = 1024;
export const DEFAULT_CONVERGENCE_MS = 30_000;
/** confd's template.BirdIntMaxValue: LOCAL_PREF = this minus the kernel metric. */
export const BIRD_INT_MAX = 2147483647;
/** BIRD's `default bgp_local_pref`: the LOCAL_PREF it attaches to a received route that has none (an eBGP route). */
export const BIRD_DEFAULT_LOCAL_PREF = 100;

/**
 * The kernel metric Calico's BIRD writes a learned route at: confd's SetMetricForBGPRoutes filter
 * (confd/pkg/backends/calico/bgp_processor.go, in calico_kernel_programming of bird_ipam.cfg.template) sets
 * krt_metric to 2^31-1 minus the route's LOCAL_PREF; Calico's BIRD fork (1.6, `metric` of its kernel protocol left at
 * 0) writes krt_metric as the route's priority. So an ordinary mesh route (LOCAL_PREF 2^31-1-1024) goes in at 1024,
 * an elevated one at 512, and an eBGP route, which BIRD gives LOCAL_PREF 100 (proto/bgp/attrs.c), at 2147483547.
 * BIRD's filter integers are 32 bits: a LOCAL_PREF above 2^31-1 wraps, and so does this. 0 means no priority given
 * (the kernel's default: 0 for IPv4, 1024 for IPv6).
 */
export function kernelMetricOf(localPref: number | undefined): number {
  return (BIRD_INT_MAX - (localPref ?? BIRD_DEFAULT_LOCAL_PREF)) >>> 0;
}

/** The WorkloadEndpoint's id in the Model ("namespace/name"). */
export const endpointId = (w: WorkloadEndpoint): string => `${w.metadata.namespace ?? ''}/${w.metadata.name}`;

interface Owner { hostname: string; orchestratorID: string; workloadID: string; endpointID: string }

/** How a LiveMigration reference and an endpoint are compared (Felix's wepOwnerID). */
function ownerOf(w: WorkloadEndpoint): Owner {
  const orch = w.spec.orchestrator ?? '';
  // The v1 key's WorkloadID is "<namespace>/<workload>" (libcalico-go/lib/names/workloadendpoint.go); for
  // Kubernetes pods the workload part is the pod name.
  const workload = orch === 'k8s' ? w.spec.pod ?? w.spec.workload ?? '' : w.spec.workload ?? w.spec.pod ?? '';
  return { hostname: orch === 'k8s' ? '' : w.spec.node, orchestratorID: orch, workloadID: `${w.metadata.namespace ?? ''}/${workload}`, endpointID: w.spec.endpoint ?? '' };
}

function refMatches(ref: LiveMigrationRef, o: Owner): boolean {
  const host = ref.orchestratorID === 'k8s' ? '' : ref.hostname;
  return host === o.hostname && ref.orchestratorID === o.orchestratorID && ref.workloadID === o.workloadID
    && (ref.endpointID === '' || ref.endpointID === o.endpointID);
}

/**
 * The live-migration role of every endpoint of `nodeName` that has one (by endpoint id). Target wins over source,
 * as in Felix; a selector target is matched against the endpoint's labels in any namespace, as Felix's computed
 * selector is (libcalico-go's KubeVirt converter makes it unique with the migration job's UID). Felix also sees
 * the namespace's and profiles' labels: skein only the endpoint's own.
 */
export function migrationRoles(model: Model, nodeName: string): Map<string, MigrationRole> {
  const out = new Map<string, MigrationRole>();
  const lms = model.liveMigrations();
  if (lms.length === 0) return out;
  for (const w of model.workloadEndpoints(nodeName)) {
    const o = ownerOf(w);
    let role: MigrationRole | undefined;
    for (const lm of lms) {
      const t = lm.spec.target;
      if ((t?.workloadEndpoint && refMatches(t.workloadEndpoint, o))
        || (t?.selector && matches(t.selector, w.metadata.labels))) {
        role = 'target';
        break;
      }
      const s = lm.spec.source;
      const sref = s?.workloadEndpoint ?? s?.workload;
      if (sref && refMatches(sref, o)) role = 'source';
    }
    if (role) out.set(endpointId(w), role);
  }
  return out;
}

interface Fsm { state: MigrationState; deadline?: number }

/**
 * Felix's per-endpoint live-migration state machine. Inputs: the roles (setRoles, after every Model change), a
 * GARP/RARP seen on an endpoint's interface (announced), and the clock (tick). Each returns whether any state
 * changed, so the caller derives the node's state again only then.
 */
export class MigrationTracker {
  readonly #fsms = new Map<string, Fsm>();
  /** last role per endpoint, to feed the machine only with changes (Felix's monitor does the same) */
  readonly #roles = new Map<string, MigrationRole>();
  convergenceMs: number;

  constructor(convergenceMs = DEFAULT_CONVERGENCE_MS, private readonly now: () => number = Date.now) {
    this.convergenceMs = convergenceMs;
  }

  /** No endpoint has a role or a state: nothing a change of endpoints could move (the controller's shortcut). */
  get idle(): boolean {
    return this.#fsms.size === 0 && this.#roles.size === 0;
  }

  /** The endpoints not in Base, by id. */
  get states(): ReadonlyMap<string, MigrationState> {
    return new Map([...this.#fsms].map(([id, f]) => [id, f.state]));
  }

  state(id: string): MigrationState | undefined {
    return this.#fsms.get(id)?.state;
  }

  /** Endpoints whose interface should be watched for the VM's announcement (those in Target), id → interface. */
  watching(endpoints: ReadonlyMap<string, string>): Map<string, string> {
    const out = new Map<string, string>();
    for (const [id, f] of this.#fsms) {
      const dev = endpoints.get(id);
      if (f.state === 'target' && dev) out.set(id, dev);
    }
    return out;
  }

  /**
   * The current roles of this node's endpoints and the set of endpoints that exist (ids). An endpoint gone from
   * `present` is Felix's "deleted" input.
   */
  setRoles(roles: ReadonlyMap<string, MigrationRole>, present: ReadonlySet<string>): boolean {
    let changed = false;
    for (const id of [...this.#fsms.keys()]) {
      if (!present.has(id)) {
        this.#fsms.delete(id);
        changed = true;
      }
    }
    for (const id of [...this.#roles.keys()]) if (!present.has(id)) this.#roles.delete(id);
    for (const id of present) {
      const before = this.#roles.get(id);
      const now = roles.get(id);
      if (before === now) continue;
      if (now === undefined) this.#roles.delete(id);
      else this.#roles.set(id, now);
      changed = this.#input(id, now ?? 'none') || changed;
    }
    return changed;
  }

  /** A gratuitous ARP or RARP from the VM on the target's interface: it runs here now. */
  announced(id: string): boolean {
    return this.#input(id, 'garp');
  }

  /** Ends the TimeWaits whose convergence time has passed. */
  tick(): boolean {
    const t = this.now();
    let changed = false;
    for (const [id, f] of this.#fsms) if (f.state === 'timeWait' && f.deadline !== undefined && f.deadline <= t) changed = this.#input(id, 'timer') || changed;
    return changed;
  }

  /** When tick() next has something to do (ms since the epoch), or undefined. */
  nextDeadline(): number | undefined {
    let d: number | undefined;
    for (const f of this.#fsms.values()) if (f.deadline !== undefined && (d === undefined || f.deadline < d)) d = f.deadline;
    return d;
  }

  #input(id: string, input: 'none' | MigrationRole | 'garp' | 'timer'): boolean {
    const f = this.#fsms.get(id);
    const from = f?.state ?? 'base';
    let to: MigrationState | 'base' = from;
    switch (from) {
      case 'base': if (input === 'target') to = 'target'; break;
      case 'target': to = input === 'garp' ? 'live' : input === 'none' ? 'timeWait' : input === 'source' ? 'base' : from; break;
      case 'live': to = input === 'none' ? 'timeWait' : input === 'source' ? 'base' : from; break;
      case 'timeWait': to = input === 'timer' || input === 'source' ? 'base' : from; break;
    }
    if (to === from) return false;
    if (to === 'base') this.#fsms.delete(id);
    else {
      const next: Fsm = { state: to };
      if (to === 'timeWait') next.deadline = this.now() + this.convergenceMs;
      this.#fsms.set(id, next);
    }
    return true;
  }
}
