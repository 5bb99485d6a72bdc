// The failover benchmark's judge (issue 18): from `ip -ts monitor route nexthop` lines of one namespace, a model of
// that kernel's IPv4 routes and nexthop objects, and whether it still routes to a given host at each moment.
//
// "Routes to the dead host" means: the dead host's own block (which no one else originates, so any route for it
// leads to the dead host) is in the table, or some route's next hops — its own `via`/`nexthop via` lines, or the
// nexthop object (or group of objects) it points at — include the dead host's address. Connected and local routes
// carry no gateway and are not counted. Two kernel habits the model must follow, seen on Linux 6.x:
// - deleting a nexthop object removes every route that points at it with NO route notification (only
//   "Deleted id N ..." is printed), so those routes leave the model with their object;
// - a group that loses a member is re-announced ("id 14 group 13"), and its routes stay.
// Lines arrive as the kernel sent them; a multipath route's "\tnexthop via ..." lines follow its head line.
// It only reads text: no clock, no processes (test/ops/failover-judge.test.ts feeds it real lines).

/** One message as `ip -ts monitor` prints it (continuation lines folded in). */
export type MonitorEvent =
  | { kind: 'route'; tMs: number; deleted: boolean; key: string; dst: string; nhid: number | undefined; gateways: string[]; skip: boolean }
  | { kind: 'nexthop'; tMs: number; deleted: boolean; id: number; gateway: string | undefined; group: number[] };

const HEAD = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\] (Deleted )?(.*)$/;
const ROUTE_TYPES = new Set(['unicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'local', 'broadcast', 'multicast', 'anycast', 'nat']);
/** Route types that never send traffic to a gateway; kept out of the model. */
const NOT_FORWARDING = new Set(['local', 'broadcast', 'multicast', 'anycast']);

/** The timestamp of a `-ts` line in ms since the epoch: ip prints local time, which Date.parse reads as local too. */
export function stampMs(date: string, micros: string): number {
  return Date.parse(date) + Number(micros) / 1000;
}

/**
 * Folds monitor lines into events. Lines without a timestamp that start with a tab continue the previous route;
 * anything else unreadable is counted in `unread` (the caller decides whether that matters).
 */
export class MonitorParser {
  readonly events: MonitorEvent[] = [];
  unread = 0;
  #last: MonitorEvent | undefined;

  /** Feeds one line; returns the event it completed or started (a route's continuation lines amend it later). */
  push(line: string): MonitorEvent | undefined {
    if (line.startsWith('\t') || line.startsWith(' ')) {
      const gw = /^\s+nexthop via (\S+)/.exec(line);
      if (this.#last?.kind === 'route' && gw !== null) this.#last.gateways.push(gw[1]!);
      return undefined;
    }
    const m = HEAD.exec(line);
    if (m === null) {
      if (line.trim() !== '') this.unread++;
      return undefined;
    }
    const tMs = stampMs(m[1]!, m[2]!);
    const deleted = m[3] !== undefined;
    const words = m[4]!.trim().split(/\s+/);
    let ev: MonitorEvent | undefined;
    if (words[0] === 'id') ev = nexthopEvent(tMs, deleted, words);
    else ev = routeEvent(tMs, deleted, words);
    if (ev === undefined) {
      this.unread++;
      return undefined;
    }
    this.events.push(ev);
    this.#last = ev;
    return ev;
  }
}

function nexthopEvent(tMs: number, deleted: boolean, w: string[]): MonitorEvent | undefined {
  const id = Number(w[1]);
  if (!Number.isInteger(id)) return undefined;
  const at = (k: string): string | undefined => {
    const i = w.indexOf(k);
    return i >= 0 ? w[i + 1] : undefined;
  };
  // "group 12/13" or, with weights, "group 12,2/13"
  const group = (at('group') ?? '').split('/').filter((x) => x !== '').map((x) => Number(x.split(',')[0]));
  return { kind: 'nexthop', tMs, deleted, id, gateway: at('via'), group };
}

function routeEvent(tMs: number, deleted: boolean, w: string[]): MonitorEvent | undefined {
  let i = 0;
  let type = 'unicast';
  if (ROUTE_TYPES.has(w[0]!)) type = w[i++]!;
  const dst = w[i++];
  if (dst === undefined || !/^[0-9a-f.:]+(\/\d+)?$|^default$/.test(dst)) return undefined;
  const at = (k: string): string | undefined => {
    const j = w.indexOf(k, i);
    return j >= 0 ? w[j + 1] : undefined;
  };
  const table = at('table') ?? 'main';
  const nhidText = at('nhid');
  const via = at('via');
  // The kernel tells routes apart by destination, table, TOS and metric (priority); metric stands in for the rest.
  const key = `${dst} ${table} ${at('metric') ?? '0'}`;
  return {
    kind: 'route', tMs, deleted, key, dst,
    nhid: nhidText !== undefined ? Number(nhidText) : undefined,
    gateways: via !== undefined ? [via] : [],
    skip: NOT_FORWARDING.has(type) || table === 'local' || dst.includes(':'),
  };
}

interface ModelRoute { dst: string; nhid: number | undefined; gateways: string[] }

/** One namespace's kernel as the monitor has shown it so far. */
export class KernelModel {
  readonly routes = new Map<string, ModelRoute>();
  readonly nexthops = new Map<number, { gateway: string | undefined; group: number[] }>();

  apply(e: MonitorEvent): void {
    if (e.kind === 'route') {
      if (e.skip) return;
      if (e.deleted) this.routes.delete(e.key);
      else this.routes.set(e.key, { dst: e.dst, nhid: e.nhid, gateways: [...e.gateways] });
      return;
    }
    if (!e.deleted) {
      this.nexthops.set(e.id, { gateway: e.gateway, group: [...e.group] });
      return;
    }
    // The kernel takes the routes of a deleted object with it, silently; groups lose the member.
    this.nexthops.delete(e.id);
    for (const [k, r] of this.routes) if (r.nhid === e.id) this.routes.delete(k);
    for (const nh of this.nexthops.values()) {
      const i = nh.group.indexOf(e.id);
      if (i >= 0) nh.group.splice(i, 1);
    }
  }

  /** The gateways a route forwards to now (through its nexthop object when it has one). */
  gatewaysOf(r: ModelRoute): string[] {
    if (r.nhid === undefined) return r.gateways;
    const nh = this.nexthops.get(r.nhid);
    // An object the monitor never showed (it existed before the monitor started): the route's own lines, which
    // the kernel fills in from the object (net.ipv4.nexthop_compat_mode).
    if (nh === undefined) return r.gateways;
    if (nh.group.length === 0) return nh.gateway !== undefined ? [nh.gateway] : [];
    return nh.group.flatMap((id) => {
      const m = this.nexthops.get(id);
      return m?.gateway !== undefined ? [m.gateway] : [];
    });
  }

  /** Whether this kernel still sends anything to `host`: its block is present, or a route goes via its address. */
  routesTo(host: { ip: string; block: string }): boolean {
    for (const r of this.routes.values()) {
      if (r.dst === host.block) return true;
      if (this.gatewaysOf(r).includes(host.ip)) return true;
    }
    return false;
  }
}

/**
 * Follows one namespace: feed it lines as they come; `routesTo` answers at any moment, and `watch` reports the
 * first monitor timestamp at which the kernel stopped routing to a host (it must have been routing to it when
 * the watch began, else the watch reports `wasNotRouting`). An event is applied when the next head line (or a
 * flush) shows it complete, so a multipath route is judged with all its "nexthop via" lines.
 */
export class KernelFollower {
  readonly parser = new MonitorParser();
  readonly model = new KernelModel();
  #pending: MonitorEvent | undefined;
  #watch: { host: { ip: string; block: string }; sinceMs: number; stoppedAtMs: number | undefined; wasNotRouting: boolean; messages: number } | undefined;

  line(line: string): void {
    const ev = this.parser.push(line);
    if (ev === undefined) return;
    this.flush();
    this.#pending = ev;
  }

  /** Applies the event still waiting for continuation lines. */
  flush(): void {
    const ev = this.#pending;
    this.#pending = undefined;
    if (ev === undefined) return;
    this.model.apply(ev);
    const w = this.#watch;
    if (w === undefined || w.stoppedAtMs !== undefined || ev.tMs < w.sinceMs) return;
    w.messages++;
    // The model is walked whole for each message: after the first 256 messages of a watch (a kernel rewritten
    // route by route) only every 256th is judged, so the answer is late by at most 255 messages then.
    if (w.messages > 256 && w.messages % 256 !== 0) return;
    if (!this.model.routesTo(w.host)) w.stoppedAtMs = ev.tMs;
  }

  /** Whether the kernel routes to `host` now. */
  routesTo(host: { ip: string; block: string }): boolean {
    this.flush();
    return this.model.routesTo(host);
  }

  /** Starts watching for the kernel to stop routing to `host`, from `sinceMs` (CLOCK_REALTIME ms). */
  watch(host: { ip: string; block: string }, sinceMs: number): void {
    this.flush();
    this.#watch = { host, sinceMs, stoppedAtMs: undefined, wasNotRouting: !this.model.routesTo(host), messages: 0 };
  }

  /**
   * The open watch's answer: ms from `sinceMs` until the kernel no longer routed to the host (undefined: not yet),
   * and the route/nexthop messages the kernel sent from `sinceMs` up to and including that moment.
   */
  result(): { stoppedAfterMs: number | undefined; wasNotRouting: boolean; messages: number } | undefined {
    this.flush();
    const w = this.#watch;
    if (w === undefined) return undefined;
    if (w.stoppedAtMs === undefined && w.messages > 256 && !this.model.routesTo(w.host)) w.stoppedAtMs = this.parser.events.at(-1)?.tMs;
    return { stoppedAfterMs: w.stoppedAtMs !== undefined ? w.stoppedAtMs - w.sinceMs : undefined, wasNotRouting: w.wasNotRouting, messages: w.messages };
  }
}
