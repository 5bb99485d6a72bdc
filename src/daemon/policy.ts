// The daemon's side of routing policy: keeps the compiled node policy (src/controller/policy.ts) in step with the
// datastore, hands each peer its rule lists, says which peers' lists changed (the speaker then applies them without
// a reset: exports evaluated again, ROUTE-REFRESH for the import side), and answers the rules' interface question.
import { networkInterfaces } from 'node:os';
import type { Model } from '../../config/index.js';
import { checkRules, prefixText, type PeerRules, type PrefixKey } from '../../bgp/index.js';
import { compileNodePolicy, missingFilters, peerRules, type NodePolicy } from '../controller/policy.js';
import { addressBytes, bytesWithin } from '../ip.js';

/** Kinds whose changes can alter a node's compiled policy. */
export const RULE_KINDS: ReadonlySet<string> = new Set(['BGPFilter', 'IPPool', 'BGPConfiguration', 'BlockAffinity', 'Node']);

interface Subnet {
  name: string;
  addr: Uint8Array;
  len: number;
}

/** How long the interface list is reused before it is read again (a lookup per rule evaluation must be cheap). */
const IFACE_CACHE_MS = 2000;
/** most next hops routeInterface remembers (it starts again past this) */
const HOP_CACHE_MAX = 65_536;

export class PolicyWiring {
  #np: NodePolicy | undefined;
  /** per peer address: the rules last given to the speaker, as JSON, to tell which peers a change concerns */
  readonly #applied = new Map<string, string>();
  readonly #warned = new Set<string>();
  #subnets: Subnet[] = [];
  /**
   * #subnets is younger than IFACE_CACHE_MS: cleared by a timer rather than the clock read on each lookup (a
   * million lookups at a full table; reading the clock was ~0.16 s of the 1M ingest's profile).
   */
  #subnetsFresh = false;
  /** routeInterface's answers per next hop under the current #subnets ('' for none) */
  readonly #byHop = new Map<string, string>();
  /** local routes' interfaces (workload device routes), by prefix text */
  #localIf = new Map<string, string>();

  constructor(private readonly warn: (msg: string, fields: Record<string, unknown>) => void) {}

  /** Compile again from the whole Model (cheap: a few rules per pool, block and filter). */
  update(model: Model, nodeName: string): void {
    this.#np = compileNodePolicy(model, nodeName);
  }

  setLocalInterfaces(routes: readonly { prefix: string; interface: string }[]): void {
    this.#localIf = new Map(routes.map((r) => [r.prefix, r.interface]));
  }

  /** One local route's interface changed (undefined: it has none, or the route is gone). */
  setLocalInterface(prefix: string, iface: string | undefined): void {
    if (iface === undefined) this.#localIf.delete(prefix);
    else this.#localIf.set(prefix, iface);
  }

  /** The rule lists of a peer naming these filters; a named filter that does not exist is reported once. */
  rulesFor(address: string, filters: readonly string[]): PeerRules | undefined {
    const np = this.#np;
    if (np === undefined) return undefined;
    for (const f of missingFilters(np, filters)) {
      const k = `${address} ${f}`;
      if (this.#warned.has(k)) continue;
      this.#warned.add(k);
      this.warn('BGPPeer names a BGPFilter that does not exist; skipped as Calico does', { peer: address, filter: f });
    }
    try {
      const r = peerRules(np, filters);
      for (const set of [r.import4, r.import6, r.export4, r.export6]) checkRules(set);
      return r;
    } catch (e) {
      // config/ validates every field, so this is a rule config/ let through that the engine cannot run: keep the
      // peer on Calico's defaults (the export allow-list, import all) rather than stop, and say which peer.
      this.warn('a BGPFilter of this peer cannot be applied; using Calico\'s default policy for it', { peer: address, filters, err: (e as Error).message });
      return peerRules(np, []);
    }
  }

  /** Record what the speaker was given; true when it differs from the last time (or is the first time). */
  changed(address: string, rules: PeerRules | undefined): boolean {
    const s = rules === undefined ? '' : JSON.stringify(rules);
    if (this.#applied.get(address) === s) return false;
    this.#applied.set(address, s);
    return true;
  }

  forget(address: string): void {
    this.#applied.delete(address);
  }

  /**
   * A route's outgoing interface as BIRD's `ifname` would give it: for our own routes the workload's device (a
   * block's blackhole and a service range have none); for a learned route the interface whose subnet holds the
   * first next hop.
   */
  routeInterface(prefix: PrefixKey, nextHops: readonly string[], local: boolean): string | undefined {
    if (local) return this.#localIf.get(prefixText(prefix));
    const nh = nextHops[0];
    if (nh === undefined) return undefined;
    // Asked for every route an export rule tests (a million at 1M routes) with few distinct next hops: the answer
    // is kept per next hop until the interface list is read again.
    const subnets = this.#interfaces();
    const known = this.#byHop.get(nh);
    if (known !== undefined) return known === '' ? undefined : known;
    const b = addressBytes(nh);
    let best: Subnet | undefined;
    if (b !== undefined) {
      for (const s of subnets) {
        if (s.addr.length !== b.length || (best !== undefined && best.len >= s.len)) continue;
        if (bytesWithin(b, s.addr, s.len)) best = s;
      }
    }
    if (this.#byHop.size >= HOP_CACHE_MAX) this.#byHop.clear();
    this.#byHop.set(nh, best?.name ?? ''); // '' for none: no interface has an empty name
    return best?.name;
  }

  #interfaces(): Subnet[] {
    if (this.#subnetsFresh) return this.#subnets;
    const out: Subnet[] = [];
    for (const [name, list] of Object.entries(networkInterfaces())) {
      for (const a of list ?? []) {
        const cidr = a.cidr;
        if (cidr === null) continue;
        const slash = cidr.lastIndexOf('/');
        const addr = addressBytes(a.address.replace(/%.*$/, ''));
        if (addr === undefined) continue;
        out.push({ name, addr, len: Number(cidr.slice(slash + 1)) });
      }
    }
    this.#subnets = out;
    this.#subnetsFresh = true;
    // unref: a cache timer never keeps the process alive
    setTimeout(() => {
      this.#subnetsFresh = false;
    }, IFACE_CACHE_MS).unref();
    this.#byHop.clear();
    return out;
  }
}
