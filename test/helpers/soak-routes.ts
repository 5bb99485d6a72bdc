// Routes over time, for the soak (issue #14: "no route was missing at any moment that the datastore did not ask to
// remove"). Two halves:
// - RouteMonitor follows one namespace's kernel routes of proto 171 continuously with `ip -ts monitor route`, started
//   before skeind so that it sees every write from an empty table on, and turns the kernel's messages into per-prefix
//   presence changes with the kernel's own timestamps;
// - judgeRoutes (pure) compares that timeline with the timeline of what the datastore asked for, and reports every
//   interval in which a prefix was missing from a kernel although the datastore had wanted it there, without a break,
//   for at least the settle time.
import type { ChildProcess } from 'node:child_process';
import { nsSpawn } from './netns.js';

/** The datastore's intent for one host: from t on, `prefix` should (want) or should not be in its kernel. */
export interface RouteIntent { t: number; host: string; prefix: string; want: boolean }
/** The kernel of one host: from t on, `prefix` is (present) or is not in its table. */
export interface KernelChange { t: number; host: string; prefix: string; present: boolean }

export interface Gap {
  host: string;
  prefix: string;
  from: number;
  to: number;
  /** 'removed': the kernel lost a route it had while the datastore wanted it; 'late': it was not there settleMs after the datastore asked */
  kind: 'removed' | 'late';
}

export interface Verdict {
  /** intervals in which a wanted route was missing (the soak fails on any) */
  gaps: Gap[];
  /** intervals in which an unwanted route stayed in a kernel longer than settleMs after the datastore asked for its removal */
  lingering: Gap[];
  /** prefixes (host/prefix pairs) whose timelines were compared */
  compared: number;
}

export interface JudgeInput {
  intents: readonly RouteIntent[];
  kernel: readonly KernelChange[];
  /** the window judged (both timelines may start earlier: each prefix starts unwanted and absent) */
  from: number;
  to: number;
  /** how long a kernel may take to follow a change of intent */
  settleMs: number;
}

/**
 * A prefix is required in a host's kernel at time x when the datastore wanted it there throughout [x - settleMs, x];
 * every moment in [from, to) at which a required prefix is absent belongs to a gap. Symmetrically, a prefix present
 * at x although unwanted throughout [x - settleMs, x] is lingering. Events at equal times apply in the order given
 * (intents of a time before kernel changes of the same time).
 */
export function judgeRoutes(input: JudgeInput): Verdict {
  const { from, to, settleMs } = input;
  type Ev = { t: number; intent: boolean; on: boolean; seq: number };
  const byKey = new Map<string, Ev[]>();
  const push = (host: string, prefix: string, e: Ev): void => {
    const k = `${host}\u0000${prefix}`;
    let l = byKey.get(k);
    if (l === undefined) byKey.set(k, (l = []));
    l.push(e);
  };
  let seq = 0;
  for (const i of input.intents) push(i.host, i.prefix, { t: i.t, intent: true, on: i.want, seq: seq++ });
  for (const c of input.kernel) push(c.host, c.prefix, { t: c.t, intent: false, on: c.present, seq: seq++ });
  const gaps: Gap[] = [];
  const lingering: Gap[] = [];
  for (const [k, evs] of byKey) {
    const [host, prefix] = k.split('\u0000') as [string, string];
    evs.sort((a, b) => a.t - b.t || a.seq - b.seq);
    // Walk the merged timeline in constant pieces: the breakpoints are the events and each intent's settle deadline.
    let want = false;
    let present = false;
    let since = -Infinity; // when the intent last changed
    let seenSince = false; // the kernel held the prefix at some moment since then
    let open: { g: Gap; linger: boolean } | undefined;
    const flush = (x: number): void => {
      if (open === undefined) return;
      open.g.to = Math.min(x, to);
      if (open.g.to > open.g.from) (open.linger ? lingering : gaps).push(open.g);
      open = undefined;
    };
    // the verdict on [x, next breakpoint), with the state after every change at x
    const judge = (x: number): void => {
      const settled = x >= since + settleMs;
      const verdict = !settled ? 'ok' : want && !present ? 'gap' : !want && present ? 'linger' : 'ok';
      const openVerdict = open === undefined ? 'ok' : open.linger ? 'linger' : 'gap';
      if (verdict === openVerdict) return;
      flush(x);
      if (verdict === 'ok' || x >= to) return;
      open = { g: { host, prefix, from: Math.max(x, from), to, kind: verdict === 'gap' && seenSince ? 'removed' : 'late' }, linger: verdict === 'linger' };
    };
    let i = 0;
    while (i < evs.length) {
      const x = (evs[i] as Ev).t;
      const deadline = since + settleMs;
      if (deadline > -Infinity && deadline < x && deadline > (i === 0 ? -Infinity : (evs[i - 1] as Ev).t)) judge(deadline);
      for (; i < evs.length && (evs[i] as Ev).t === x; i++) {
        const e = evs[i] as Ev;
        if (e.intent) {
          if (e.on !== want) { want = e.on; since = e.t; seenSince = present; }
        } else {
          present = e.on;
          if (present) seenSince = true;
        }
      }
      judge(x);
    }
    const deadline = since + settleMs;
    if (deadline > -Infinity && deadline > ((evs[evs.length - 1] as Ev | undefined)?.t ?? -Infinity)) judge(deadline);
    flush(Infinity);
  }
  const order = (a: Gap, b: Gap): number => a.from - b.from || a.host.localeCompare(b.host) || a.prefix.localeCompare(b.prefix);
  return { gaps: gaps.filter((g) => g.to > from).sort(order), lingering: lingering.filter((g) => g.to > from).sort(order), compared: byKey.size };
}

/** One line of `ip -ts monitor route`: a route added/replaced or deleted; undefined for what is not a route of ours. */
export interface MonitorLine { t?: number; deleted: boolean; prefix: string; id: string }

const ROUTE_TYPES = new Set(['unicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'local', 'broadcast', 'multicast', 'anycast', 'nat']);

/**
 * Parses one line of `ip -ts monitor route` (iproute2's print_route). Only main-table routes of proto 171 (or its
 * name, `skein`) count. A route's identity in the kernel is its destination, TOS and metric (IPv4's fib alias key;
 * IPv6 keys on destination and metric): a replace with the same identity is one route, and a route added beside it with
 * another metric is a second one, which the prefix stays present through. Continuation lines (multipath next hops)
 * start with white space and are skipped.
 */
export function parseMonitorLine(line: string, protos: readonly string[] = ['171', 'skein']): MonitorLine | undefined {
  let rest = line;
  let t: number | undefined;
  const ts = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?\]\s*/.exec(rest);
  if (ts) {
    // iproute2 prints local time without a zone (Date parses such a string as local time too) to the microsecond: kept
    // as a fraction of a millisecond, so that a route deleted and put back within one millisecond still leaves a gap
    t = new Date(ts[1] as string).getTime() + Number(`0${ts[2] ?? ''}`) * 1000;
    rest = rest.slice(ts[0].length);
  }
  if (rest === '' || /^\s/.test(rest)) return undefined;
  const words = rest.trim().split(/\s+/);
  let i = 0;
  const deleted = words[0] === 'Deleted';
  if (deleted) i++;
  if (ROUTE_TYPES.has(words[i] ?? '')) i++;
  let dst = words[i++];
  if (dst === undefined) return undefined;
  const opt = (name: string): string | undefined => {
    const k = words.indexOf(name, i);
    return k < 0 ? undefined : words[k + 1];
  };
  const proto = opt('proto');
  if (proto === undefined || !protos.includes(proto)) return undefined;
  const table = opt('table');
  if (table !== undefined && table !== 'main' && table !== '254') return undefined;
  const v6 = dst.includes(':');
  if (dst === 'default') dst = v6 ? '::/0' : '0.0.0.0/0';
  if (!dst.includes('/')) dst = `${dst}/${v6 ? 128 : 32}`;
  const metric = opt('metric') ?? opt('priority') ?? '0';
  const tos = opt('tos') ?? opt('dsfield') ?? '0';
  const out: MonitorLine = { deleted, prefix: dst, id: `${dst} ${tos} ${metric}` };
  if (t !== undefined && Number.isFinite(t)) out.t = t;
  return out;
}

/**
 * Turns parsed monitor lines into per-prefix presence changes (a prefix is present while any route of it is). Pure,
 * so the soak's timeline and the unit test go through the same code.
 */
export class PrefixTracker {
  private readonly routes = new Map<string, Set<string>>(); // prefix -> route identities
  readonly changes: KernelChange[] = [];
  constructor(readonly host: string) {}

  apply(l: MonitorLine, fallbackT: number): void {
    const t = l.t ?? fallbackT;
    let ids = this.routes.get(l.prefix);
    const was = ids !== undefined && ids.size > 0;
    if (l.deleted) ids?.delete(l.id);
    else {
      if (ids === undefined) this.routes.set(l.prefix, (ids = new Set()));
      ids.add(l.id);
    }
    const now = ids !== undefined && ids.size > 0;
    if (was !== now) this.changes.push({ t, host: this.host, prefix: l.prefix, present: now });
  }

  /** the prefixes present now */
  present(): Set<string> {
    return new Set([...this.routes].filter(([, ids]) => ids.size > 0).map(([p]) => p));
  }
}

/**
 * Follows the kernel routes of proto 171 in namespace `ns` (`ip -ts monitor route` run inside it) from now on. Start it
 * on an empty table (before skeind) so that the timeline is complete; stop() ends the monitor process.
 */
export class RouteMonitor {
  readonly tracker: PrefixTracker;
  private readonly child: ChildProcess;
  private buf = '';
  /** lines the monitor printed that were not understood (iproute2 errors, "Dump interrupted"...) */
  readonly oddLines: string[] = [];
  private readonly ready: Promise<void>;

  constructor(readonly ns: string, host: string) {
    this.tracker = new PrefixTracker(host);
    this.child = nsSpawn(ns, 'ip', ['-ts', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (d: Buffer) => this.feed(d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => { this.oddLines.push(d.toString().trim()); });
    // `ip monitor` has subscribed once the namespace switch is done; there is no message for it, so give it a moment
    this.ready = new Promise((r) => setTimeout(r, 300));
  }

  /** resolves once the monitor can be assumed to listen */
  started(): Promise<void> {
    return this.ready;
  }

  get changes(): readonly KernelChange[] {
    return this.tracker.changes;
  }

  /** still running (a monitor that died leaves a timeline with a hole: the soak must not judge it) */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private feed(s: string): void {
    this.buf += s;
    let nl: number;
    for (let n = 0; n < 1_000_000 && (nl = this.buf.indexOf('\n')) >= 0; n++) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const l = parseMonitorLine(line);
      if (l !== undefined) this.tracker.apply(l, Date.now());
    }
  }

  stop(): void {
    if (this.alive) this.child.kill('SIGTERM');
  }
}
