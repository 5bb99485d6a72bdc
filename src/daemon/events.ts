// Datastore change events on their way to the controller: gathered into one batch per burst (the file datastore
// and an etcd watch deliver related changes together), held until the first snapshot is applied, and held while
// the datastore is frozen.
//
// The freeze (docs/contract.md, "ClusterInformation"): `calicoctl datastore migrate lock` sets datastoreReady false
// around IPAM maintenance and migrations, when the datastore may be half-written. Calico's confd does not watch the
// flag at all (confd/pkg/backends/calico/ reads no ClusterInformation), so BIRD keeps every route; skein keeps what
// it announces and programs too, and applies nothing until the flag is true again, then everything at once.
import type { ChangeEvent, Model } from '../../config/index.js';
import type { ReadinessGate } from '../http.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

export interface ChangeBatchHost {
  log: Logger;
  metrics: Metrics;
  readiness: ReadinessGate;
  model: () => Model | undefined;
  stopping: () => boolean;
  /** datastoreReady has been true once: from then on a false means freeze, not withdraw */
  everReady: () => boolean;
  /** a batch to apply, oldest first */
  apply: (model: Model | undefined, events: ChangeEvent[]) => void;
}

export class ChangeBatcher {
  readonly #h: ChangeBatchHost;
  #pending: ChangeEvent[] = [];
  #scheduled = false;
  /** the first snapshot is applied: change events can be diffed */
  #live = false;
  /** changes held back while the datastore is frozen (datastoreReady false at run time), in arrival order */
  #frozen: ChangeEvent[] | undefined;

  constructor(h: ChangeBatchHost) {
    this.#h = h;
  }

  get live(): boolean {
    return this.#live;
  }

  push(ev: ChangeEvent): void {
    this.#h.metrics.datastoreChange(ev.kind);
    this.#pending.push(ev);
    if (this.#scheduled) return;
    this.#scheduled = true;
    // One diff per burst.
    setImmediate(() => this.flush());
  }

  /** The snapshot is applied: apply what waited for it, and every later batch. */
  goLive(): void {
    this.#live = true;
    this.flush();
  }

  flush(): void {
    const h = this.#h;
    this.#scheduled = false;
    // Until the snapshot is applied the controller has nothing to diff against: the events wait (they are
    // newer than the snapshot, so they are applied after it).
    if (!this.#live || h.stopping()) return;
    let events = this.#pending;
    this.#pending = [];
    if (events.length === 0) return;
    const model = h.model();
    if (model && h.everReady() && !model.datastoreReady()) {
      if (this.#frozen === undefined) {
        this.#frozen = [];
        h.log.warn('ClusterInformation datastoreReady is false: datastore frozen, keeping every announcement and kernel route and applying no datastore change until it is true again');
        h.readiness.setBlocker('cluster', 'datastore frozen (ClusterInformation datastoreReady false): announcements and kernel routes kept, datastore changes held');
        h.metrics.datastoreFrozen(true);
      }
      this.#frozen.push(...events);
      return;
    }
    if (this.#frozen !== undefined) {
      h.log.info('ClusterInformation datastoreReady is true again: applying the changes held during the freeze', { held: this.#frozen.length });
      events = [...this.#frozen, ...events];
      this.#frozen = undefined;
      h.readiness.setBlocker('cluster', undefined);
      h.metrics.datastoreFrozen(false);
    }
    h.apply(model, events);
  }
}
